"""beexgen.host"""
