"""beexgen.codegen"""
