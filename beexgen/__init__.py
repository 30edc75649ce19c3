"""beexgen: text data set -> binarized early-exit transformer -> verified C for Cortex-M."""

__version__ = "0.1.0"
