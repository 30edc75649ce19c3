"""Helpers for tests that compile the project's C with the host gcc."""
from __future__ import annotations

import subprocess
from pathlib import Path

from beexgen.codegen import render

from beexgen.codegen.build import HOST_CFLAGS, HOST_OPT_CFLAGS

HOST_CFLAGS = HOST_CFLAGS + HOST_OPT_CFLAGS      # test the optimised paths the emulator uses
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g", "-O1"]
TESTS_C = Path(__file__).parent / "c"


def render_numerics(out_dir: Path) -> Path:
    env = render.environment()
    from beexgen import numerics
    return render.render_to(env, "bx_numerics.h.j2", out_dir / "bx_numerics.h",
                            constants=sorted(numerics.constants().items()))


def gcc(out: Path, sources: list[Path], include: list[Path], extra: list[str] = ()) -> Path:
    cmd = ["gcc", *HOST_CFLAGS, *extra, *[f"-I{p}" for p in include], "-o", str(out), *map(str, sources)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise AssertionError(f"gcc failed:\n{' '.join(cmd)}\n{r.stderr[-4000:]}")
    return out
