"""Static checks of the C: cppcheck, warning-free Cortex-M4 builds, the stack budget.

- cppcheck (--enable=warning,portability,performance, --std=c11, --inline-suppr,
  --error-exitcode=1) over firmware_templates/*.c (with the generated headers of a
  rendered mps2-an386 project on the include path) and over every rendered project of a
  tiny artifact: the host emulator's (platform_host.c) and each board's firmware (start-up,
  board drivers, platform_cortexm.c; checked as a 32-bit platform, in the configuration that is
  compiled: build_firmware's -D flags). Must be clean, except for
  the suppressions in SUPPRESS, each a reviewed false positive of cppcheck 2.10 in a file
  this test does not own (the owners may move them inline as `// cppcheck-suppress`).
- The firmware of every board in codegen/boards/ builds (a smaller model with
  the board's own BX_LINE_MAX on boards with less than 64 KiB of RAM: the micro:bit) with arm-none-eabi-gcc
  -Wall -Wextra -Werror (build_firmware's flags), fits, and the worst-case stack that
  build_firmware computes from -fstack-usage / -fcallgraph-info is known (no recursion,
  no unbounded frame) and within the stack the linker reserves.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from beexgen.codegen import boards, build as build_mod, firmware, render

from conftest import needs
from fixtures import tiny_artifact

TEMPLATES = Path(render.__file__).resolve().parent.parent / "firmware_templates"
CPPCHECK = ["cppcheck", "-q", "--enable=warning,portability,performance", "--error-exitcode=1",
            "--inline-suppr", "--std=c11"]
# (cppcheck id, file pattern, why it is a false positive)
SUPPRESS = [
    ("comparePointers", "*startup_cortexm.c",
     "the .data/.bss copy loops compare addresses of linker-script symbols (__data_start .. "
     "__data_end): one region to the linker, distinct objects to cppcheck"),
    ("comparePointers", "*platform_cortexm.c",
     "_sbrk compares the heap pointer with the linker symbols __heap_start / __heap_end"),
]

need_cppcheck = needs("cppcheck")
need_arm = needs(firmware.CC)
BOARDS = sorted(boards.BOARDS)


def cppcheck(files: list[Path], include: Path, extra: list[str] = ()) -> None:
    cmd = [*CPPCHECK, *extra, *[f"--suppress={i}:{pat}" for i, pat, _ in SUPPRESS], f"-I{include}",
           *map(str, sorted(files))]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and not r.stderr.strip(), \
        f"cppcheck findings (exit {r.returncode}):\n{' '.join(cmd)}\n{r.stderr[-8000:]}{r.stdout[-2000:]}"


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("static")
    return {"dir": d, "art": tiny_artifact(d / "art"), "fw": {}}


def firmware_build(work, board: str) -> firmware.FirmwareBuild:
    """build_firmware of a board, once per module (it raises on any warning: -Werror)."""
    if board not in work["fw"]:
        if boards.get_board(board).ram.length < 64 * 1024:
            work.setdefault("small", tiny_artifact(work["dir"] / "small", d_model=32, d_ff=32, n_blocks=2,
                                                   seq_max=16, vocab_size=150, wide=False))
            work["fw"][board] = firmware.build_firmware(work["small"], board, work["dir"] / board)
        else:
            work["fw"][board] = firmware.build_firmware(work["art"], board, work["dir"] / board)
    return work["fw"][board]


@need_cppcheck
@need_arm
def test_cppcheck_firmware_templates(work):
    """The hand-written sources themselves; generated headers from an mps2-an386 project."""
    inc = firmware_build(work, "mps2-an386").out_dir / "src"
    cppcheck(list(TEMPLATES.glob("*.c")), inc)


@need_cppcheck
def test_cppcheck_rendered_host_project(work):
    exe = build_mod.build_host(work["art"], work["dir"] / "host")
    src = exe.parent / "src"
    files = list(src.glob("*.c"))
    assert {"platform_host.c", "main.c", "bx_model_data.c", "bx_vocab_data.c", "bx_forward.c"} <= {p.name for p in files}
    cppcheck(files, src)


@need_cppcheck
@need_arm
@pytest.mark.parametrize("board", BOARDS)
def test_cppcheck_rendered_firmware_project(work, board):
    """The configuration that is compiled: the board header plus build_firmware's -D flags
    (with a -D, cppcheck checks only that configuration instead of guessing others: other
    boards' #if branches with this board's addresses are not a configuration that exists)."""
    b = firmware_build(work, board)
    src = b.out_dir / "src"
    files = list(src.glob("*.c"))
    assert {"startup_cortexm.c", "platform_cortexm.c", "main.c"} <= {p.name for p in files}
    defines = [f for f in b.cflags if f.startswith("-D")]
    assert defines
    cppcheck(files, src, ["--platform=unix32", *defines])


@need_arm
@pytest.mark.parametrize("board", BOARDS)
def test_firmware_builds_with_werror_and_stack_fits(work, board):
    b = firmware_build(work, board)
    print("\n" + firmware.format_size_table(b))
    assert {"-Wall", "-Wextra", "-Werror"} <= set(b.cflags)
    assert b.fits and b.elf.is_file(), b.problems()
    s = b.stack
    assert s.worst is not None, f"{board}: stack bound unknown: {s.notes}"
    assert 0 < s.main_bytes and s.worst <= b.stack_reserved, \
        f"{board}: worst-case stack {s.worst} B > {b.stack_reserved} B reserved (path {' > '.join(s.main_path)})"
    assert not any("recursion" in n or "unbounded" in n for n in s.notes), s.notes


@need_cppcheck
def test_cppcheck_fuzz_targets(work):
    """The fuzz targets and their platform (tests/fuzz/*.c), against a rendered project."""
    exe = build_mod.build_host(work["art"], work["dir"] / "host_fuzz")
    fuzz = Path(__file__).parent / "fuzz"
    cppcheck(list(fuzz.glob("*.c")), exe.parent / "src", [f"-I{fuzz}"])
