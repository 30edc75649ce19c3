"""The package layers, checked statically: every import statement (at the top of a module or
inside a function) of the project's own Python, read with ast.

    beexgen.core      the bottom: the standard library and numpy, nothing of the project above it
    train/, codegen/  import the core, never the host
    host/             the core and pyserial (and click for the command), never torch
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# repository folder -> the package it installs as (pyproject.toml's package-dir)
PACKAGES = {"beexgen/core": "beexgen.core", "train": "beexgen.train", "codegen": "beexgen.codegen",
            "host": "beexgen.host"}
# package -> module prefixes it must not import
FORBIDDEN = {
    "beexgen.core": ("beexgen.host", "beexgen.train", "beexgen.codegen", "beexgen.cli", "beexgen.bench",
                     "torch", "jinja2", "serial", "click", "tqdm"),
    "beexgen.train": ("beexgen.host",),
    "beexgen.codegen": ("beexgen.host",),
    "beexgen.host": ("beexgen.train", "beexgen.codegen", "beexgen.cli", "beexgen.bench", "torch", "numpy",
                     "jinja2", "tokenizers", "safetensors"),
}


def imports(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:                     # relative: resolve against the package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module
            out.append((node.lineno, mod))
            out += [(node.lineno, f"{mod}.{a.name}") for a in node.names]
    return out


def test_the_layers_hold():
    bad = []
    for folder, package in PACKAGES.items():
        files = sorted((ROOT / folder).glob("*.py"))
        assert files, folder
        for f in files:
            for line, mod in imports(f, package):
                for banned in FORBIDDEN[package]:
                    if mod == banned or mod.startswith(banned + "."):
                        bad.append(f"{f.relative_to(ROOT)}:{line} imports {mod} ({package} must not import {banned})")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("source, package, banned", [
    ("from beexgen.host import client\n", "beexgen.codegen", "beexgen.host"),
    ("def f():\n    import torch\n", "beexgen.core", "torch"),
    ("from .transport import open_transport\n", "beexgen.host", None),
])
def test_the_check_sees_imports(tmp_path, source, package, banned):
    """The walker finds imports inside functions and resolves relative ones."""
    f = tmp_path / "m.py"
    f.write_text(source)
    mods = [m for _, m in imports(f, package)]
    if banned:
        assert any(m == banned or m.startswith(banned + ".") for m in mods), mods
    else:
        assert "beexgen.host.transport" in mods, mods
