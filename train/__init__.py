"""beexgen.train"""
