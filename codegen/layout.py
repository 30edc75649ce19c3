"""The exported C library's names and layouts, defined once: the CLI's options (stdlib
only, so `beexgen --help` needs no toolchain), codegen/project.py and codegen/export.py
read them from here."""

DEFAULT_PREFIX = "bx"                # of every global C name, macro and file
FORMATS = ("cmake", "make", "zephyr", "platformio", "arduino")   # export-c --format; the first is the default
