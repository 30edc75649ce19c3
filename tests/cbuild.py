"""Helpers for tests that compile the project's C with the host gcc."""
from __future__ import annotations

import subprocess
from pathlib import Path

from beexgen.codegen import render

from beexgen.codegen import build

HOST_CFLAGS = build.HOST_CFLAGS + build.HOST_OPT_CFLAGS      # test the optimised paths the emulator uses
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g", "-O1"]
TESTS_C = Path(__file__).parent / "c"


def render_numerics(out_dir: Path) -> Path:
    env = render.environment()
    from beexgen.core import numerics
    return render.render_to(env, "bx_numerics.h.j2", out_dir / "bx_numerics.h",
                            constants=sorted(numerics.constants().items()))


def isa_levels() -> dict[str, list[str]]:
    """Every x86 kernel path this machine can run (name -> gcc options), so a test can
    compare each path, not only the fastest, with the reference."""
    return build.host_isa_levels()


def gcc(out: Path, sources: list[Path], include: list[Path], extra: list[str] = (),
        isa: list[str] | None = None) -> Path:
    """Compile with the host emulator's flags; isa replaces its x86 options (None: the
    build machine's, as the emulator uses)."""
    flags = HOST_CFLAGS if isa is None else build.HOST_CFLAGS + isa
    cmd = ["gcc", *flags, *extra, *[f"-I{p}" for p in include], "-o", str(out), *map(str, sources)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise AssertionError(f"gcc failed:\n{' '.join(cmd)}\n{r.stderr[-4000:]}")
    return out
