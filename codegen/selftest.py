"""The library self-test's golden sentences (firmware_templates/bx_selftest.c).

    golden = golden_set(art, texts)          # texts: the test split, in its order
    export_c(art, "lib", golden=golden)      # -> src/<prefix>_golden.h, <prefix>_selftest()

The reference answers come from beexgen's own build of the library (the portable C
with the exactness flags, on this machine): the C that tests/test_export.py and the
e2e tests prove equal to the PyTorch deploy mirror, class, exit and logit bits. From the
texts, in order, the first that reach an exit or a class not yet covered are kept
(at most MAX_GOLDEN), so the self-test runs every exit and every class the texts reach,
and the next ones up to MIN_GOLDEN.
Everything here is numpy + subprocess: never torch.
"""
from __future__ import annotations

import struct
import subprocess
import tempfile
from pathlib import Path

from beexgen.core import artifact as art_mod
from beexgen.codegen import cflags, project, render

DRIVER = "bx_golden_driver.c"
MAX_GOLDEN = 16
MIN_GOLDEN = 8
CANDIDATES = 400            # texts tried, from the start of the split


class SelftestError(RuntimeError):
    """The reference build for the golden answers failed."""


def reference_answers(art: art_mod.Artifact, texts: list[str], line_max: int = project.LINE_MAX) -> list:
    """Per text: (cls, exit, [logit bits]) of beexgen's reference build, or None (refused)."""
    with tempfile.TemporaryDirectory(prefix="beexgen-golden-") as d:
        src = Path(d) / "src"
        files = project.write_sources(art, src, board_name="golden", cost_unit="none", line_max=line_max,
                                      target=project.PORTABLE, app=[], command="beexgen golden")
        render.copy_sources([DRIVER], src)
        exe = Path(d) / "golden"
        cmd = ["gcc", *cflags.STD, "-O2", *cflags.EXACT, f"-I{src}", "-o", str(exe),
               *[str(p) for p in files if p.suffix == ".c"], str(src / DRIVER)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            raise SelftestError(f"building the golden reference failed:\n{' '.join(cmd)}\n{r.stderr[-4000:]}")
        data = b"".join(struct.pack("<I", len(b)) + b for b in (t.encode("utf-8") for t in texts))
        r = subprocess.run([str(exe)], input=data, capture_output=True, timeout=600)
        lines = r.stdout.decode().splitlines()
        if r.returncode or len(lines) != len(texts):
            raise SelftestError(f"the golden reference failed (exit {r.returncode}): {r.stderr.decode()[-2000:]}")
    out = []
    for ln in lines:
        f = ln.split()
        out.append(None if f[0] == "err" else (int(f[0]), int(f[1]), [int(x, 16) for x in f[2:]]))
    return out


def choose(answers: list) -> list[int]:
    """Indices of the first answers that reach an exit or a class not yet covered, then
    the first others up to MIN_GOLDEN (more sentences, more weights exercised)."""
    seen, keep = set(), []
    for i, a in enumerate(answers):
        if a is None:
            continue
        new = {("cls", a[0]), ("exit", a[1])} - seen
        if new:
            seen |= new
            keep.append(i)
            if len(keep) == MAX_GOLDEN:
                break
    rest = [i for i, a in enumerate(answers) if a is not None and i not in keep]
    return sorted(keep + rest[:max(0, MIN_GOLDEN - len(keep))])


def golden_set(art: art_mod.Artifact | str | Path, texts: list[str], line_max: int = project.LINE_MAX) -> list[dict]:
    """The golden sentences for bx_golden.h.j2: text, len (bytes), cls, exit, logits (bits)."""
    art = art if isinstance(art, art_mod.Artifact) else art_mod.load(art)
    texts = [t for t in texts if 0 < len(t.encode("utf-8")) <= line_max][:CANDIDATES]
    answers = reference_answers(art, texts, line_max)
    return [{"text": texts[i], "len": len(texts[i].encode("utf-8")), "cls": answers[i][0], "exit": answers[i][1],
             "logits": answers[i][2]} for i in choose(answers)]


def run_texts(art: art_mod.Artifact) -> list[str] | None:
    """The test split of the training run the artifact came from (RUN/split.json beside
    RUN/artifact), or None when there is none."""
    if art.path is None:
        return None
    run = Path(art.path).parent
    if not (run / "split.json").is_file():
        return None
    from beexgen.codegen import m4bench
    return m4bench.test_texts(run, CANDIDATES)


_DEFAULT: dict[tuple[str, str, int], list[dict]] = {}


def default_golden(art: art_mod.Artifact, line_max: int = project.LINE_MAX) -> list[dict]:
    """golden_set of the artifact's training run's test split ([] when there is none);
    computed once per artifact and line length in a process (builds of several boards)."""
    key = (art.hash, str(art.path), line_max)
    if key not in _DEFAULT:
        texts = run_texts(art)
        _DEFAULT[key] = golden_set(art, texts, line_max) if texts else []
    return [dict(g) for g in _DEFAULT[key]]
