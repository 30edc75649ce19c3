"""Stream text to a beexgen device and print its predictions: the entry point.

    python host/infer.py --port /dev/ttyACM0 reviews.txt      # or: beexgen-infer ...

The work is split like mpremote's: host/transport.py moves lines over a serial port, a
socket or a pty; host/client.py speaks the protocol (request ids, pipelining, retries,
strict replies through beexgen.core.protocol); host/cli.py is the command (options,
input files, output, the summary). This module re-exports what scripts and tests use.
"""
from __future__ import annotations

from beexgen.host.cli import (EXIT_DEVICE, EXIT_HASH, EXIT_INTERRUPTED, EXIT_OK,  # noqa: F401
                              EXIT_TRANSPORT, EXIT_USAGE, main)
from beexgen.host.client import Client  # noqa: F401

if __name__ == "__main__":
    main()
