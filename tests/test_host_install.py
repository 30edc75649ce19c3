"""A host-only install works: `pip install '.[host]'` in a fresh venv (no system site
packages: no torch, no numpy), then that venv's `beexgen-infer --emulator` answers a test
file against the host emulator exactly as the full install does.

The emulator and the artifact are built with the main environment (they need the build
extra); only the client side runs in the venv. The project is copied first, so that no
build/ or egg-info left in the work tree leaks into the installed package.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from click.testing import CliRunner

from beexgen.codegen import build
from beexgen.host import cli

from fixtures import CORPUS, tiny_artifact

ROOT = Path(__file__).resolve().parent.parent
IGNORE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "runs", ".cache", ".benchmarks",
                                ".pytest_cache")
# pip's words when it cannot reach an index (no network, no local wheel): skip, not fail
OFFLINE = re.compile(r"No matching distribution|Could not find a version|Failed to establish|"
                     r"Network is unreachable|Temporary failure in name resolution|Max retries exceeded")
SAME = ("label", "cls", "conf", "exit", "blocks", "tokens", "bmacs", "flops", "logits_hex", "unit", "gold")


def run(argv, **kw) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=300, env=env, **kw)


@pytest.fixture(scope="module")
def host_venv(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostinstall")
    src = d / "src"
    shutil.copytree(ROOT, src, ignore=IGNORE)
    venv.EnvBuilder(with_pip=True, system_site_packages=False, clear=True).create(d / "venv")
    py = d / "venv" / "bin" / "python"
    p = run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", f"{src}[host]"])
    if p.returncode:
        if OFFLINE.search(p.stdout + p.stderr):
            pytest.skip("pip cannot install beexgen[host] here: no index reachable and no local wheel "
                        f"of click/pyserial/setuptools ({(p.stdout + p.stderr).strip().splitlines()[-1]})")
        pytest.fail(f"pip install '.[host]' failed:\n{p.stdout}\n{p.stderr}")
    return {"dir": d, "src": src, "bin": d / "venv" / "bin", "py": py}


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostdev")
    art = tiny_artifact(d / "art")
    exe = build.build_host(art, d / "build")
    f = d / "test.tsv"                       # label<TAB>text, with a text the device refuses
    f.write_text("".join(f"{['class0', 'class1', 'class2'][i % 3]}\t{t}\n" for i, t in enumerate(CORPUS))
                 + "class0\t   \n", encoding="utf-8")
    return {"art": art, "exe": exe, "file": f}


def test_the_host_venv_has_no_torch_and_no_numpy(host_venv):
    p = run([host_venv["py"], "-c", "import importlib.util as u, sys; "
             "print([m for m in ('torch', 'numpy', 'jinja2', 'serial', 'click') if u.find_spec(m)])"])
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["['serial',", "'click']"], p.stdout


def json_lines(out: str) -> list[dict]:
    return [json.loads(s) for s in out.splitlines()]


def test_host_only_beexgen_infer_answers_like_the_full_install(host_venv, device):
    args = ["--emulator", device["exe"], "--artifact", device["art"].path, "--json", "--no-progress",
            device["file"]]
    p = run([host_venv["bin"] / "beexgen-infer", *args])
    assert p.returncode == cli.EXIT_DEVICE, p.stderr          # the blank text: err EMPTY
    got = json_lines(p.stdout)
    want = CliRunner().invoke(cli.main, [str(a) for a in args])
    assert want.exit_code == cli.EXIT_DEVICE, want.output
    want = json_lines(want.stdout)
    assert len(got) == len(want) == len(CORPUS) + 1
    for g, w in zip(got[:-1], want[:-1]):
        assert {k: g[k] for k in SAME} == {k: w[k] for k in SAME}     # cost is wall time: not compared
    assert got[-1]["error"]["name"] == want[-1]["error"]["name"] == "EMPTY"
    # every labelled line in the denominator, the refused blank one too
    assert re.search(rf"accuracy: \d+/{len(CORPUS) + 1} .*1 refused or not answered", p.stderr), p.stderr
    # the card's entry point, run as a script by the venv's python
    p = run([host_venv["py"], host_venv["src"] / "host" / "infer.py", "--emulator", device["exe"], "--info"])
    assert p.returncode == 0 and f"hash:     {device['art'].hash}" in p.stdout, p.stdout + p.stderr


def test_host_only_beexgen_reads_the_example_tsv(host_venv, device):
    p = run([host_venv["bin"] / "beexgen-infer", "--emulator", device["exe"], "--no-progress",
             ROOT / "examples" / "rotten_tomatoes.tsv"])
    n = len((ROOT / "examples" / "rotten_tomatoes.tsv").read_text().splitlines())
    assert p.returncode == 0 and len(p.stdout.splitlines()) == n, p.stdout + p.stderr
    assert all(s.endswith("wrong") for s in p.stdout.splitlines())   # fresh/rotten: not the tiny model's classes


@pytest.mark.parametrize("argv, extra", [(["train", "examples/rotten_tomatoes.tsv"], "train"),
                                         (["bench"], "bench"),
                                         (["build", "{art}", "--target", "host"], "build")])
def test_host_only_beexgen_says_which_extra_a_command_needs(host_venv, device, argv, extra):
    p = run([host_venv["bin"] / "beexgen", "--help"])
    assert p.returncode == 0 and "Typical flow" in p.stdout, p.stderr
    p = run([host_venv["bin"] / "beexgen", *(a.format(art=device["art"].path) for a in argv)], cwd=ROOT)
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr
    assert f"pip install 'beexgen[{extra}]'" in p.stderr, p.stderr


def test_bench_without_scikit_learn_names_the_extra(monkeypatch, tmp_path):
    """The full install less scikit-learn (sys.modules[name] = None: find_spec says missing)."""
    from beexgen import cli as app
    monkeypatch.setitem(sys.modules, "sklearn", None)
    res = CliRunner().invoke(app.main, ["bench", "--out", str(tmp_path / "b")])
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert "beexgen bench needs sklearn, not installed: pip install 'beexgen[bench]'" in res.output
    assert not (tmp_path / "b").exists()           # checked before anything ran
