"""Build the libFuzzer targets of tests/fuzz/ (clang, -fsanitize=fuzzer,address,undefined).

    python tests/fuzz/build_fuzz.py [OUT_DIR] [--line-max N] [target ...]

OUT_DIR (default build/fuzz) receives art/ (a tiny artifact, tests/fixtures.py, made
once and reused), src/ (the generated C project: codegen/project.py write_sources, portable kernels, board "fuzz",
cost unit "ns") and one executable per target: fuzz_tokenizer, fuzz_protocol.

The protocol target is built with a short BX_LINE_MAX (64 by default, against 512 on the
devices) so the fuzzer reaches the LINE_TOO_LONG paths with small inputs; every other
line rule is independent of the size. main.c is compiled with -Dmain=bx_main_for_fuzz
and platform_fuzz.c's bx_platform_exit longjmps back into the fuzz target.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from beexgen.codegen import cflags, project

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
ROOT = TESTS.parent
TARGETS = ("tokenizer", "protocol")
CLANG = os.environ.get("CLANG") or shutil.which("clang") or shutil.which("clang-14") or "clang"
CFLAGS = cflags.STD + cflags.FUZZ + cflags.EXACT + cflags.WARN
LINE_MAX = 64
# portable sources of the generated project (no main.c: it is compiled on its own)
PROTOCOL_SOURCES = ["bx_engine.c", "bx_wide.c", "bx_kernels.c", "bx_forward.c", "bx_model_data.c", "bx_tokenizer.c",
                    "bx_vocab_data.c", "bx_selftest.c", "bx_protocol.c"]
TOKENIZER_SOURCES = ["bx_tokenizer.c", "bx_vocab_data.c"]


class FuzzBuildError(RuntimeError):
    pass


def _run(cmd: list[str]) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise FuzzBuildError(f"failed (exit {r.returncode}):\n{' '.join(cmd)}\n{r.stderr[-6000:]}")


def render(out_dir: Path, line_max: int = LINE_MAX) -> Path:
    """The tiny artifact (once) and its generated C project; returns the src dir."""
    sys.path.insert(0, str(TESTS))
    from beexgen.core import artifact
    from fixtures import tiny_artifact

    art_dir = out_dir / "art"
    try:
        art = artifact.load(art_dir)
    except Exception:
        if art_dir.exists():
            shutil.rmtree(art_dir)
        art = tiny_artifact(art_dir)
    src = out_dir / "src"
    project.write_sources(art, src, board_name="fuzz", cost_unit="ns", line_max=line_max,
                          target=project.PORTABLE, command="tests/fuzz/build_fuzz.py")
    return src


def compile_target(target: str, src: Path, out_dir: Path) -> Path:
    """Compile and link one fuzz target; returns the executable."""
    if target not in TARGETS:
        raise ValueError(f"unknown fuzz target {target!r}: want one of {TARGETS}")
    obj = out_dir / "obj" / target
    obj.mkdir(parents=True, exist_ok=True)
    inc = [f"-I{src}", f"-I{HERE}"]
    units: list[tuple[Path, list[str]]] = [(HERE / f"fuzz_{target}.c", [])]
    if target == "tokenizer":
        units += [(src / s, []) for s in TOKENIZER_SOURCES]
    else:
        units += [(src / s, []) for s in PROTOCOL_SOURCES]
        units += [(src / "main.c", ["-Dmain=bx_main_for_fuzz"]), (HERE / "platform_fuzz.c", [])]
    objects = []
    for c, extra in units:
        o = obj / (c.stem + ".o")
        _run([CLANG, *CFLAGS, *extra, *inc, "-c", "-o", str(o), str(c)])
        objects.append(o)
    exe = out_dir / f"fuzz_{target}"
    _run([CLANG, *CFLAGS, "-o", str(exe), *map(str, objects), "-lm"])
    return exe


def build(out_dir: str | Path = ROOT / "build" / "fuzz", targets=TARGETS, line_max: int = LINE_MAX) -> dict:
    """Render once, build the targets; returns {target: executable}."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    src = render(out, line_max)
    return {t: compile_target(t, src, out) for t in targets}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", nargs="?", default=str(ROOT / "build" / "fuzz"))
    ap.add_argument("--line-max", type=int, default=LINE_MAX)
    ap.add_argument("targets", nargs="*", default=list(TARGETS))
    a = ap.parse_args(argv)
    try:
        for t, exe in build(a.out_dir, a.targets or TARGETS, a.line_max).items():
            print(exe)
    except FuzzBuildError as e:
        print(e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
