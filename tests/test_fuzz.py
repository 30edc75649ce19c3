"""The libFuzzer targets of tests/fuzz/: short seeded runs, regression replay, oracle checks.

tests/fuzz/build_fuzz.py builds fuzz_tokenizer and fuzz_protocol with clang
-fsanitize=fuzzer,address,undefined against the generated sources of a tiny artifact
(scripts/fuzz.sh runs them for minutes; see the targets' headers for their invariants).
Here, for each target:
  - a seeded run (-seed=1 -runs=20000, at most 20 s) starting from the checked-in corpus
    tests/fuzz/corpus/<target>/ must exit 0 (new inputs go to a temporary corpus, the
    checked-in one is only read);
  - every crash reproducer ever found, kept in tests/fuzz/regressions/<target>/, and every
    seed of the corpus is replayed (no fuzzing) and must pass;
  - the oracles are not vacuous: the target built against a deliberately broken copy of
    the C (main.c without the CRLF rule; a tokenizer accepting surrogates) must fail on a
    known input.
"""
from __future__ import annotations

import glob
import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import needs

FUZZ_DIR = Path(__file__).parent / "fuzz"
TARGETS = ["tokenizer", "protocol"]
RUNS = 20000
MAX_SECONDS = 20           # whichever comes first: a slow machine stops at 20 s
TIMEOUT = 300


def _have_libfuzzer() -> bool:
    """clang with libFuzzer (libclang-rt-14-dev)"""
    return shutil.which("clang") is not None and bool(
        glob.glob("/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a"))


pytestmark = needs(_have_libfuzzer)


def _load_build_fuzz():
    spec = importlib.util.spec_from_file_location("build_fuzz", FUZZ_DIR / "build_fuzz.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


build_fuzz = _load_build_fuzz()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("fuzz")
    return {"out": out, "exe": build_fuzz.build(out), "src": out / "src"}


def _inputs(d: Path) -> list[Path]:
    return sorted(p for p in d.glob("*") if p.is_file() and not p.name.startswith((".", "README")))


def _run(cmd: list, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=TIMEOUT, cwd=cwd)


def _report(r: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in r.stderr.splitlines()
             if re.search(r"INVARIANT|ERROR|SUMMARY|runtime error|input \(|output \(|Test unit|^\s+#\d", ln)]
    return "\n".join(lines[:60]) or r.stderr[-4000:]


@pytest.mark.parametrize("target", TARGETS)
def test_seeded_run_over_the_corpus(built, target, tmp_path):
    seeds = FUZZ_DIR / "corpus" / target
    assert len(_inputs(seeds)) >= 20, f"checked-in corpus {seeds} is missing or too small"
    work = tmp_path / "corpus"
    work.mkdir()
    r = _run([built["exe"][target], work, seeds, "-seed=1", f"-runs={RUNS}", f"-max_total_time={MAX_SECONDS}",
              "-max_len=4096", "-timeout=25", f"-artifact_prefix={tmp_path}/", "-print_final_stats=1"], tmp_path)
    execs = re.search(r"stat::number_of_executed_units:\s+(\d+)", r.stderr)
    print(f"\nfuzz_{target}: exit {r.returncode}, {execs.group(1) if execs else '?'} executions")
    assert r.returncode == 0, f"fuzz_{target} found a problem (crash file in {tmp_path}):\n{_report(r)}"


@pytest.mark.parametrize("target", TARGETS)
def test_regressions_and_corpus_replay(built, target, tmp_path):
    files = _inputs(FUZZ_DIR / "regressions" / target) + _inputs(FUZZ_DIR / "corpus" / target)
    r = _run([built["exe"][target], *files], tmp_path)
    assert r.returncode == 0, f"fuzz_{target} fails on a saved input:\n{_report(r)}"
    assert f"Executed {files[-1]}" in r.stderr


# A mutation of the C under test and an input on which the target must then fail.
MUTANTS = {
    "protocol": ("main.c", "} else if (c == BX_LF && was_cr) {", "} else if (0) {",
                 b"!ping\r\n!ping\n", "reply count"),
    "tokenizer": ("bx_tokenizer.c", "hi = 0x9Fu;", "hi = 0xBFu;",
                  b"ok \xed\xa0\x80", "bx_utf8_valid disagrees"),
}


@pytest.mark.parametrize("target", TARGETS)
def test_oracle_catches_a_planted_bug(built, target, tmp_path):
    name, old, new, data, message = MUTANTS[target]
    src = tmp_path / "src"
    shutil.copytree(built["src"], src)
    text = (src / name).read_text()
    assert old in text, f"{name} changed: update MUTANTS[{target!r}]"
    (src / name).write_text(text.replace(old, new))
    exe = build_fuzz.compile_target(target, src, tmp_path)
    (tmp_path / "input").write_bytes(data)
    clean = _run([built["exe"][target], tmp_path / "input"], tmp_path)
    assert clean.returncode == 0, _report(clean)
    r = _run([exe, tmp_path / "input"], tmp_path)
    assert r.returncode != 0 and message in r.stderr, f"the planted bug was not caught:\n{r.stderr[-3000:]}"
