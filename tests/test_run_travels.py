"""A run directory works from any current directory and after being moved or copied
(issue 20): `beexgen train` keeps a copy of a local data file in RUN/data/, and a run
reads its data from there. A tiny model on a small CSV, a few steps."""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

from fixtures import CORPUS

BEEXGEN = [sys.executable, "-m", "beexgen.cli"]


def beexgen(*args, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([*BEEXGEN, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def test_eval_from_another_directory_and_after_moving_the_run(tmp_path):
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    with open(work / "small.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for k in range(20):
            for i, t in enumerate(CORPUS):
                w.writerow([f"{t} {k}", "pos" if i % 2 else "neg"])
    r = beexgen("train", "small.csv", "--out", "run", "--steps", "2", "--batch-size", "16", "--d-model", "32",
                "--heads", "2", "--d-ff", "32", "--blocks", "1", "--seq-max", "16", "--vocab-size", "120",
                "--no-wide-prefit", "--board", "none", "--quiet", cwd=work)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (work / "run" / "data" / "small.csv").read_bytes() == (work / "small.csv").read_bytes()
    # from another directory, with the path typed at training ("small.csv") meaningless there
    other = beexgen("eval", "--json", work / "run", cwd=elsewhere)
    assert other.returncode == 0, other.stderr[-2000:]
    # moved, and the original data file gone
    shutil.move(str(work / "run"), str(elsewhere / "moved"))
    (work / "small.csv").unlink()
    moved = beexgen("eval", "--json", "moved", cwd=elsewhere)
    assert moved.returncode == 0, moved.stderr[-2000:]
    copied = shutil.copytree(elsewhere / "moved", tmp_path / "copy")
    again = beexgen("eval", "--json", copied, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert other.stdout == moved.stdout == again.stdout and '"accuracy' in other.stdout
