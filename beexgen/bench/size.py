"""Bench stage: bytes. The packed artifact beside the float32 twin, the paper's
architecture and the bag-of-words LR, and the firmware on the default board
(flash, RAM, worst-case stack)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Size:
    artifact_bytes: int = 0
    paper_model_bytes: int = 0
    twin_bytes: int = 0
    bow_lr_fp32_bytes: int = 0
    bow_lr_int8_bytes: int = 0
    board: str = ""                       # the default board (codegen/boards.py DEFAULT_BOARD)
    board_flash_bytes: int = 0
    board_ram_bytes: int = 0
    board_stack_bytes: int = 0
    board_table: str = field(default="", metadata={"json": False})   # the build's size table (OUT/bench.md)


def measure(ds: str, out: Path, ctx, bow) -> Size:
    from beexgen.core import artifact
    from beexgen.codegen import boards, firmware

    paper = artifact.load(out / ds / "paper" / "artifact")
    fw = firmware.build_firmware(ctx.art, boards.DEFAULT_BOARD, out / ds / "build" / boards.DEFAULT_BOARD)
    return Size(artifact_bytes=int(ctx.report["size"]["total"]), paper_model_bytes=int(paper.size_report()["total"]),
                twin_bytes=int(ctx.report["fp32_twin_bytes"]), bow_lr_fp32_bytes=int(bow.bytes_fp32),
                bow_lr_int8_bytes=int(bow.bytes_int8), board=boards.DEFAULT_BOARD,
                board_flash_bytes=int(fw.flash_used), board_ram_bytes=int(fw.ram_used),
                board_stack_bytes=int(fw.stack.worst), board_table=firmware.format_size_table(fw))
