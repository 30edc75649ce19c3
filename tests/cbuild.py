"""Helpers for tests that compile the project's C with the host gcc or arm-none-eabi-gcc,
with the flags of codegen/cflags.py (the flags the generated build files carry)."""
from __future__ import annotations

import subprocess
from pathlib import Path

from beexgen.codegen import boards, cflags, project, render

SANITIZE = cflags.SANITIZE
TESTS_C = Path(__file__).parent / "c"
# the host's kernel files: the portable ones and the x86 paths (codegen/project.py)
HOST_KERNELS = project.kernel_files(project.HOST)


def render_numerics(out_dir: Path) -> Path:
    env = render.environment()
    from beexgen.core import numerics
    return render.render_to(env, "bx_numerics.h.j2", out_dir / "bx_numerics.h",
                            constants=sorted(numerics.constants().items()))


def isa_levels() -> dict[str, list[str]]:
    """Every x86 kernel path this machine can run (name -> gcc options), so a test can
    compare each path, not only the fastest, with the reference."""
    return cflags.host_isa_levels()


def gcc(out: Path, sources: list[Path], include: list[Path], extra: list[str] = (),
        isa: list[str] | None = None) -> Path:
    """Compile with the host emulator's flags; isa replaces its x86 options (None: the
    build machine's, as the emulator uses)."""
    cmd = ["gcc", *cflags.host_cflags(isa), *extra, *[f"-I{p}" for p in include], "-o", str(out),
           *map(str, sources)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise AssertionError(f"gcc failed:\n{' '.join(cmd)}\n{r.stderr[-4000:]}")
    return out


def arm_flags(board: str = "mps2-an386", stack_usage: bool = True) -> list[str]:
    """The firmware's arm-none-eabi-gcc flags for a board's core."""
    return cflags.arm_cflags(boards.get_board(board).arch_flags(), stack_usage=stack_usage)
