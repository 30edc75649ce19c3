"""Output directories: the one rule every command that writes a directory follows.

beexgen writes a marker file (MARKER) into every output directory it creates. `--force`
replaces only such a directory; anything else is refused, force or not:
- an empty path, the current directory, one of its parents, the home or root directory;
- a training run (checkpoint.pt) or an artifact (meta.json + weights.safetensors),
  at the top or anywhere below;
- a non-empty directory beexgen did not create (no marker).
A directory that does not exist or is empty is created (or adopted) and marked; a build
directory of an earlier beexgen (its build.json manifest, LEGACY_MARKS) counts as marked.

`prepare(path, force=..., command=...)` is the whole rule; `beexgen export-c` and
`beexgen build` call it. Pure Python (pathlib, shutil).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

MARKER = ".beexgen-output"          # written by beexgen into each output directory it creates
_RUN_FILES = ("checkpoint.pt",)
_ARTIFACT_FILES = ("meta.json", "weights.safetensors")
_SCAN_LIMIT = 20000                 # entries looked at when searching a directory for runs/artifacts


class OutputDirError(ValueError):
    """An output directory beexgen refuses to write into or replace."""


LEGACY_MARKS = ("build.json",)      # the manifest every `beexgen build` wrote before MARKER existed


def is_marked(path: str | Path) -> bool:
    """path is a directory beexgen created (its marker)."""
    return (Path(path) / MARKER).is_file()


def _legacy(path: Path) -> bool:
    return any((path / m).is_file() for m in LEGACY_MARKS)


def _precious(path: Path) -> str | None:
    """What in `path` (or below) must not be deleted: a run or an artifact, or None."""
    for i, (root, dirs, files) in enumerate(os.walk(path)):
        if i > _SCAN_LIMIT:
            return "a directory too large to check"
        names = set(files)
        if any(f in names for f in _RUN_FILES):
            return f"a training run ({Path(root) / _RUN_FILES[0]})"
        if all(f in names for f in _ARTIFACT_FILES):
            return f"an artifact ({Path(root) / _ARTIFACT_FILES[0]})"
    return None


def _mark(path: Path, command: str) -> None:
    (path / MARKER).write_text(json.dumps({"made_by": command}) + "\n")


def prepare(path: str | Path | None, *, force: bool = False, command: str = "beexgen",
            reuse: bool = False) -> Path:
    """The output directory `path`, ready to write into and marked as beexgen's.

    force: replace a non-empty directory beexgen made (marker present), else refuse.
    reuse: a command that rewrites its own files in place (`beexgen build`) may write into
    a non-empty directory beexgen made without --force. Raises OutputDirError otherwise."""
    if path is None or str(path).strip() == "":
        raise OutputDirError(f"{command}: the output directory is empty ('')")
    p = Path(path).expanduser()
    real = p.resolve()
    cwd = Path.cwd().resolve()
    if real == cwd or real in cwd.parents or real == Path.home().resolve() or real == Path(real.anchor):
        raise OutputDirError(f"{command}: refusing to write into {p} (the current directory, one of its "
                             "parents, home or root): give a new directory")
    if p.exists() and not p.is_dir():
        raise OutputDirError(f"{command}: {p} exists and is not a directory")
    if p.is_dir() and any(p.iterdir()):
        what = _precious(p)
        if what:
            raise OutputDirError(f"{command}: refusing to write into {p}: it holds {what}; give a new directory")
        if not (is_marked(p) or (reuse and not force and _legacy(p))):
            raise OutputDirError(f"{command}: {p} is a non-empty directory beexgen did not create "
                                 f"(no {MARKER}); give a new or empty directory")
        if force:
            shutil.rmtree(p)
        elif not reuse:
            raise OutputDirError(f"{command}: {p} exists and is not empty (pass --force to replace it: "
                                 "beexgen created it)")
    p.mkdir(parents=True, exist_ok=True)
    if not (p / MARKER).is_file():
        _mark(p, command)
    return p
