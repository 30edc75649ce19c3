"""Put a firmware build on a real board.

`flash(board, build_dir)` uses the first tool of the board's [flash_tools] table
(codegen/boards/<board>.toml: tool -> arguments, in the order written there) found on
PATH, printing the exact command it runs; the tools are board data, not a table here. Without any of them it explains the drag-and-drop route (NUCLEO
boards show up as a USB drive; copying fw.bin onto it programs the chip) and returns 1.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from beexgen.codegen import boards as boards_mod
from beexgen.codegen.firmware import FW


def flash_command(board: boards_mod.Board, build_dir: Path, tool: str) -> list[str]:
    files = {"elf": build_dir / f"{FW}.elf", "bin": build_dir / f"{FW}.bin", "hex": build_dir / f"{FW}.hex"}
    return [tool, *(a.format(**{k: str(v) for k, v in files.items()}) for a in board.flash_tools[tool])]


def flash(board: str | boards_mod.Board, build_dir: str | Path, *, out=sys.stdout) -> int:
    """Program the board with build_dir/fw.*; returns the tool's exit status, or 1 when no
    tool is available (after printing how to copy fw.bin by hand), 2 for emulated boards."""
    board = boards_mod.get_board(board) if isinstance(board, str) else board
    build_dir = Path(build_dir)
    if not (build_dir / f"{FW}.elf").is_file():
        print(f"{build_dir}/{FW}.elf not found: build first (beexgen build --target cortex-m --board {board.name})",
              file=out)
        return 1
    if board.emulated and not board.flash_tools:
        print(f"{board.name} is emulated by QEMU (-M {board.qemu_machine}); nothing to flash. "
              f"Run it with beexgen.codegen.emulate.start_qemu.", file=out)
        return 2
    for tool in board.flash_tools:                      # the board file's order
        if shutil.which(tool):
            cmd = flash_command(board, build_dir, tool)
            print("$ " + " ".join(cmd), file=out, flush=True)
            return subprocess.run(cmd).returncode
    bin_path = (build_dir / f"{FW}.bin").resolve()
    print(f"No flashing tool found (looked for {', '.join(board.flash_tools)} on PATH).",
          file=out)
    if board.usb_drive_hint:
        print(f"Copy the image onto the board's USB drive instead: plug the {board.name} in, wait for the drive "
              f"{board.usb_drive_hint} to appear, then\n"
              f"    cp {bin_path} /media/$USER/{board.usb_drive_hint}/ && sync\n"
              f"The ST-Link programs the flash and resets the board; the serial line is {board.serial_hint}.",
              file=out)
    else:
        print(f"Program {bin_path} at 0x{board.flash.origin:08x} with your board's programmer.", file=out)
    return 1
