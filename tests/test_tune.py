"""`beexgen tune` (beexgen/tune.py): a real Optuna study over a tiny space on a tiny data
set cut from trec6, each trial trained, built with arm-none-eabi-gcc and counted in QEMU.

- a 4-trial search writes the study, the report and best/; best/ builds for mps2-an386
  and its firmware answers the test split exactly as the PyTorch deploy mirror;
- a search killed (SIGKILL, then SIGINT) mid-trial resumes: no finished trial is lost,
  the interrupted one runs again;
- two processes sharing one SQLite study finish N trials together, none run twice;
- a board nothing in the space fits ends with one clear line, no traceback.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from beexgen import tune
from beexgen.core import artifact
from beexgen.codegen import emulate, firmware
from beexgen.train import data

from conftest import needs
from test_e2e import classify_all, compare, reference, split_texts

pytestmark = needs("arm-none-eabi-gcc", "qemu-system-arm")

SPACE = """
epochs = 2
batch_size = 32
max_train = 320
vocab_size = [300, 400]
n_blocks = [1, 2]
d_model = [32, 64]
n_heads = 2
d_ff = [32, 64]
seq_max = [16, 24]
bigram_buckets = [0, 256]
lr = {low = 2e-3, high = 5e-3, log = true}
policy = ["confidence", "entropy"]
tolerance = {low = 0.0, high = 0.02}
"""
BOARD = "mps2-an386"
TIMEOUT = 600


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 450-sentence slice of trec6 (every class present) and the tiny space."""
    d = tmp_path_factory.mktemp("tune_data")
    src = data.cache_dir() / "trec6.jsonl"
    if not src.is_file():
        pytest.fail(f"{src} missing: run `make setup` first")
    lines = src.read_text().splitlines()[:450]
    (d / "tiny.jsonl").write_text("\n".join(lines) + "\n")
    (d / "space.toml").write_text(SPACE)
    return d / "tiny.jsonl", d / "space.toml"


def cmd(dataset, space, out, *extra) -> list[str]:
    return [sys.executable, "-m", "beexgen.cli", "tune", str(dataset), "--board", BOARD, "--space", str(space),
            "--out", str(out), *map(str, extra)]


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def run(args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=TIMEOUT, env=ENV, **kw)


def load(url: str, name: str):
    """The study, through tune's own storage opener: the test polls while a tune process
    may be creating the schema, the race open_storage waits out (a bare URL here once
    failed with IntegrityError on alembic_version)."""
    return optuna.load_study(study_name=name, storage=tune.open_storage(url))


def finished(study_or_trials) -> list:
    ts = study_or_trials.get_trials(deepcopy=False) if hasattr(study_or_trials, "get_trials") else study_or_trials
    return [t for t in ts if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


def test_tune_writes_study_report_and_best_which_runs_in_qemu_equal_to_pytorch(tiny, tmp_path):
    dataset, space = tiny
    out = tmp_path / "t"
    r = run(cmd(dataset, space, out, "--trials", 4, "--seed", 0, "--jobs", 2, "--max-ms", 1000))
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [l for l in r.stderr.splitlines() if l.startswith("trial ")]
    assert len(lines) == 4 and all("best so far" in l for l in lines), r.stderr[-2000:]
    study = load(f"sqlite:///{out / tune.STUDY_DB}", f"tune-tiny-{BOARD}")
    assert len(finished(study)) == 4
    for f in ("report.md", "pareto_ms.png", "pareto_flash.png"):
        assert (out / f).stat().st_size > 0
    md = (out / "report.md").read_text()
    assert "## Pareto front" in md and "## Trials" in md and "bow_lr" in md
    best = out / tune.BEST_DIR
    meta = json.loads((best / "tune.json").read_text())
    chosen = study.trials[meta["trial"]]
    assert meta["accuracy"] == chosen.user_attrs["accuracy"] and chosen.user_attrs["qemu_equals_pytorch"][0] == \
        chosen.user_attrs["n_val"]
    # the pick: the fastest trial within one standard error of the top validation accuracy
    ok = tune.feasible(study, 1000.0)
    top = max(ok, key=lambda t: t.user_attrs["accuracy"]).user_attrs
    se = (top["accuracy"] * (1 - top["accuracy"]) / top["n_val"]) ** 0.5
    near = [t for t in ok if t.user_attrs["accuracy"] >= top["accuracy"] - se]
    assert chosen.user_attrs["ms_mean"] == min(t.user_attrs["ms_mean"] for t in near)
    # best/ is an ordinary run directory: build it like `beexgen build`, and QEMU == PyTorch
    art = artifact.load(best / "artifact")
    fw = firmware.build_firmware(art, BOARD, tmp_path / "fw")
    _, texts, ids, _, all_ids = split_texts(best)
    with emulate.start_qemu(fw.elf, BOARD, serial="tcp") as h:
        replies, _ = classify_all(h.url, texts)
    compare(replies, *reference(art, ids, all_ids, art.policy)[1:])


def _wait(pred, timeout=TIMEOUT, proc=None):
    t0 = time.time()
    while not pred():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"tune ended early: {proc.stderr.read()[-2000:]}")
        assert time.time() - t0 < timeout, "timed out"
        time.sleep(0.5)


def test_killed_tune_resumes_without_losing_finished_trials(tiny, tmp_path):
    dataset, space = tiny
    out = tmp_path / "k"
    url, name = f"sqlite:///{out / tune.STUDY_DB}", f"tune-tiny-{BOARD}"
    args = cmd(dataset, space, out, "--trials", 3, "--seed", 1)

    def trials():
        """The study's trials so far (none while the process is still creating it)."""
        if not (out / tune.STUDY_DB).exists():
            return []
        try:
            return load(url, name).get_trials(deepcopy=False)
        except KeyError:          # the database is there, the study not yet
            return []

    def interrupt(sig, after_one: bool):
        """Start the search (after_one: let a trial finish), stop it with sig while a trial trains."""
        old = {t.number for t in trials()}
        # SIGINT at its default: a suite started in the background by a shell without job
        # control (`cmd &`) ignores SIGINT, and the tune would inherit that
        p = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=ENV,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            if after_one:
                _wait(lambda: len(finished(trials())) > 0, proc=p)
            training = lambda: [t for t in trials() if t.state == TrialState.RUNNING and t.number not in old
                                and (out / tune.TRIALS_DIR / f"{t.number:04d}" / "history.jsonl").exists()]
            _wait(lambda: bool(training()), proc=p)         # a trial is in its training loop
            os.kill(p.pid, sig)
            p.wait(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        return {t.number: t.values for t in finished(load(url, name))}

    before = interrupt(signal.SIGKILL, after_one=True)
    assert len(before) == 1
    after_int = interrupt(signal.SIGINT, after_one=False)     # stops the killed trial's second run
    assert after_int == before
    r = run(args)
    assert r.returncode == 0, r.stderr[-3000:]
    study = load(url, name)
    done = {t.number: t for t in finished(study)}
    assert len(done) == 3 and all(done[k].values == v for k, v in after_int.items())
    # the two interrupted trials failed and ran again with the same settings
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(failed) == 2
    for t in failed:
        assert any(d.params == t.params for d in done.values()), (t.number, t.params)
    assert (out / tune.BEST_DIR / "artifact" / "meta.json").exists()


def test_two_processes_share_one_study_and_run_no_trial_twice(tiny, tmp_path):
    dataset, space = tiny
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    procs = [subprocess.Popen(cmd(dataset, space, tmp_path / w, "--trials", 4, "--storage", url, "--study", "s",
                                  "--quiet"), stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=ENV)
             for w in ("a", "b")]
    for p in procs:
        _, err = p.communicate(timeout=TIMEOUT)
        assert p.returncode == 0, err[-3000:]
    study = load(url, "s")
    assert len(finished(study)) == 4
    assert all(t.state != TrialState.RUNNING for t in study.trials)
    # each trial ran in exactly one of the two processes (its run directory is in one --out)
    ran = {w: {int(p.name) for p in (tmp_path / w / tune.TRIALS_DIR).iterdir()}
           for w in ("a", "b") if (tmp_path / w / tune.TRIALS_DIR).exists()}
    assert not set.intersection(*ran.values()) if len(ran) == 2 else True
    assert {t.number for t in finished(study)} <= set.union(*ran.values())
    for t in finished(study):
        assert Path(t.user_attrs["dir"]).parent.parent.name in ran


def test_impossible_budget_is_one_clear_message(tiny, tmp_path):
    dataset, _ = tiny
    space = tmp_path / "big.toml"
    space.write_text("d_model = [256, 512]\nseq_max = 128\nn_blocks = [2, 3]\nvocab_size = 4000\n")
    r = run([sys.executable, "-m", "beexgen.cli", "tune", str(dataset), "--board", "microbit", "--space",
             str(space), "--out", str(tmp_path / "i"), "--trials", 2])
    assert r.returncode == 1
    assert "no model of the search space fits microbit" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_impossible_latency_is_one_clear_message(tiny, tmp_path):
    dataset, space = tiny
    r = run(cmd(dataset, space, tmp_path / "l", "--trials", 2, "--max-ms", 0.001))
    assert r.returncode == 1
    assert "no model of the search space runs within --max-ms 0.001 on mps2-an386" in r.stderr \
        and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "l" / tune.TRIALS_DIR).exists()          # nothing trained


def test_space_names_are_settings(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("d_modle = [32, 64]\n")
    with pytest.raises(tune.TuneError, match="unknown setting.*d_modle"):
        tune.load_space(bad)
    bad.write_text("d_model = ['wide']\n")
    with pytest.raises(tune.TuneError, match="not of type int"):
        tune.load_space(bad)
    space = tune.load_space()          # the shipped space: every name a setting
    assert {"d_model", "n_blocks", "vocab_size", "bigram_buckets", "policy", "tolerance", "lr", "steps"} <= set(space)
