"""beexgen.firmware_templates"""
