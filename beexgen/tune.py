"""`beexgen tune`: the most accurate model that fits a board and a latency, searched.

    beexgen tune trec6 --board nucleo-f411re --max-ms 20 --trials 20 --out runs/tune

A study of Optuna (multi-objective: validation accuracy up, M4 milliseconds down, flash
down; constraint: milliseconds <= --max-ms) over the search space of
beexgen/tune_space.toml (or --space FILE). Each trial:

1. samples settings (TrainConfig / ModelConfig fields and the exit policy's options);
2. builds the firmware of an untrained artifact of those dimensions for the board
   (codegen/fit.py): a model whose RAM or flash cannot fit is pruned before training;
   with --max-ms, so is one slower than that even when every validation sentence leaves
   at its first exit (the same untrained firmware in QEMU: `latency_floor`);
3. trains (one torch thread), reporting each epoch's validation accuracy to Optuna's
   MedianPruner, which stops a trial falling behind the earlier ones at the same epoch.
   Optuna prunes single-objective studies only, so the learning curves live in a
   companion study `<study>.epochs` in the same storage;
4. exports the artifact with the policy calibrated on the validation split, builds the
   firmware for the board (flash and RAM from the real build and its linker map);
5. measures validation accuracy under that policy (PyTorch deploy mirror, with its 95 %
   Wilson interval) and, in QEMU -icount on an emulated board of the same core, the
   M4 instructions of every validation sentence; the firmware's answers must equal the
   mirror's. Milliseconds = instructions x CYCLES_PER_INSTRUCTION / the board's clock.

The test split is never read. The storage (SQLite in OUT, or --storage URL) keeps every
finished trial: a search stopped by Ctrl-C or killed resumes where it stopped (an
interrupted trial runs again), and several processes or machines share one study.
At the end: OUT/report.md with the Pareto front and the plots, and OUT/best/, the
picked trial as an ordinary run directory (`beexgen build OUT/best/artifact` works).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import socket
import sys
import threading
import time
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPACE_FILE = Path(__file__).with_name("tune_space.toml")
# Cycles per instruction on a Cortex-M4 running from flash: QEMU counts instructions, the
# board's clock counts cycles. 1.4 is the upper end of the 1.0-1.4 the README states
# (flash wait states hidden by the ART accelerator, a binary layer's loads stalling).
from beexgen.bench.m4 import CYCLES_PER_INSTR  # noqa: E402  (the README's stated range, defined once)
CYCLES_PER_INSTRUCTION = CYCLES_PER_INSTR[1]     # its upper end: a latency budget takes the pessimistic side
MAX_FAILED_IN_A_ROW = 5     # a worker stops, with the error, when this many trials fail one after another
STUDY_DB = "study.db"              # the default storage: SQLite in --out
TRIALS_DIR = "trials"              # OUT/trials/<number>: each trial's run directory
BEST_DIR = "best"
HEARTBEAT_S = 2                    # a running trial's heartbeat; after GRACE_S without one it
GRACE_S = 8                        # counts as crashed, fails and is queued to run again
DEFAULT_TRIALS = 20
PICKS = ("accuracy", "flash")
POLICY_KEY = "policy"
LATENCY = ("mean", "p95")


class TuneError(RuntimeError):
    """Bad input or a budget nothing fits: a one-line message, no traceback."""


# --------------------------------------------------------------------------- the space

def setting_names() -> dict[str, str]:
    """Every name a space may use -> where it goes: "train", "model" or "policy"."""
    from beexgen.core.policy import POLICY_OPTIONS
    from beexgen.train import config
    out = {f.name: "train" for f in config.cli_fields(config.TrainConfig)}
    out.update({f.name: "model" for f in config.cli_fields(config.ModelConfig)})
    out[POLICY_KEY] = "policy"
    for opts in POLICY_OPTIONS.values():
        out.update({k: "policy" for k in opts})
    for k in ("threads", "device"):     # the tuner's own: one thread per trial, the CPU
        out.pop(k, None)
    return out


@dataclass
class Dim:
    """One setting of the space: fixed (value), a choice (choices) or a range."""
    name: str
    kind: str                          # "fixed", "choice", "int", "float"
    value: object = None
    choices: list | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None

    def describe(self) -> str:
        if self.kind == "fixed":
            return f"{self.value!r}"
        if self.kind == "choice":
            return "one of " + ", ".join(map(repr, self.choices))
        return f"{self.low:g} .. {self.high:g}" + (" (log)" if self.log else "") + (f" step {self.step:g}" if self.step else "")

    def values(self) -> list:
        """The values a size-minimal model may take (for the impossible-budget check)."""
        if self.kind == "fixed":
            return [self.value]
        if self.kind == "choice":
            return list(self.choices)
        return [self.low, self.high]


def load_space(path: str | Path | None = None) -> dict[str, Dim]:
    """The space file (beexgen/tune_space.toml by default), checked against the settings."""
    path = Path(path) if path else SPACE_FILE
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise TuneError(f"--space {path}: no such file") from None
    except tomllib.TOMLDecodeError as e:
        raise TuneError(f"--space {path}: not valid TOML ({e})") from None
    names = setting_names()
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise TuneError(f"{path}: unknown setting(s) {', '.join(unknown)}; a space names fields of "
                        f"train/config.py or the policy's options: {', '.join(sorted(names))}")
    hints = _hints()
    space = {}
    for name, v in raw.items():
        where = f"{path}: {name}"
        if isinstance(v, dict):
            extra = set(v) - {"low", "high", "log", "step"}
            if extra or "low" not in v or "high" not in v:
                raise TuneError(f"{where}: a range is {{low = ..., high = ...[, log = true][, step = ...]}}")
            lo, hi = v["low"], v["high"]
            is_int = isinstance(lo, int) and isinstance(hi, int) and not isinstance(lo, bool)
            if not lo <= hi or (v.get("log") and lo <= 0):
                raise TuneError(f"{where}: want low <= high (and low > 0 with log)")
            space[name] = Dim(name, "int" if is_int else "float", low=lo, high=hi, log=bool(v.get("log")),
                              step=v.get("step"))
        elif isinstance(v, list):
            if not v or any(isinstance(x, (list, dict)) for x in v):
                raise TuneError(f"{where}: a choice is a non-empty list of plain values")
            space[name] = Dim(name, "choice", choices=list(v))
        else:
            space[name] = Dim(name, "fixed", value=v)
        _check_type(space[name], hints.get(name), where)
    return space


def _hints() -> dict:
    from beexgen.train import config
    h = {**typing.get_type_hints(config.TrainConfig), **typing.get_type_hints(config.ModelConfig)}
    h[POLICY_KEY] = str
    return h


def _check_type(d: Dim, hint, where: str) -> None:
    if hint is None:
        return
    base = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    kind = base[0]
    if typing.get_origin(kind) is list or kind is dict:
        raise TuneError(f"{where}: a list-valued setting cannot be searched")
    ok = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}.get(kind)
    for x in d.values():
        if ok and (not isinstance(x, ok) or (kind is not bool and isinstance(x, bool))):
            raise TuneError(f"{where}: {x!r} is not of type {kind.__name__}")
    if d.name == POLICY_KEY:
        from beexgen.core.policy import POLICY_OPTIONS
        bad = [x for x in d.values() if x not in POLICY_OPTIONS]
        if bad:
            raise TuneError(f"{where}: unknown policy {bad[0]!r} ({', '.join(POLICY_OPTIONS)})")


def suggest(trial, space: dict[str, Dim]) -> dict:
    """The trial's settings: {name: value} for every dimension of the space."""
    out = {}
    for name, d in space.items():
        if d.kind == "fixed":
            out[name] = d.value
        elif d.kind == "choice":
            out[name] = trial.suggest_categorical(name, d.choices)
        elif d.kind == "int":
            out[name] = trial.suggest_int(name, int(d.low), int(d.high), step=int(d.step or 1), log=d.log)
        else:
            out[name] = trial.suggest_float(name, float(d.low), float(d.high), step=d.step, log=d.log)
    return out


def split_settings(values: dict) -> tuple[dict, dict, str, dict]:
    """(TrainConfig kwargs, ModelConfig overrides, policy name, its calibration options)."""
    from beexgen.core.policy import DEFAULT_POLICY, POLICY_OPTIONS
    names = setting_names()
    train = {k: v for k, v in values.items() if names.get(k) == "train"}
    model = {k: v for k, v in values.items() if names.get(k) == "model"}
    pol = values.get(POLICY_KEY, DEFAULT_POLICY)
    opts = {k: v for k, v in values.items() if names.get(k) == "policy" and k in POLICY_OPTIONS[pol]}
    return train, model, pol, opts


def smallest(space: dict[str, Dim]) -> dict:
    """The settings of the smallest model of the space (each size setting at its least)."""
    out = {}
    for name in ("d_model", "d_ff", "n_blocks", "seq_max", "vocab_size", "bigram_buckets", "n_heads"):
        if name in space:
            vals = [v for v in space[name].values() if v is not None]
            if name == "n_blocks":
                vals = [v for v in vals if v >= 1] or vals
            if vals:
                out[name] = min(vals)
    for name in ("slfn", "wide"):
        if name in space and False in space[name].values():
            out[name] = False
    return out


# --------------------------------------------------------------------------- the data

@dataclass
class Data:
    classes: list[str]
    train_texts: list[str]
    train_y: np.ndarray
    val_texts: list[str]
    val_y: np.ndarray


def load_data(dataset: str, out: Path, train_kw: dict) -> Data:
    """The training and validation splits (OUT/data/split.json); the test split is not read."""
    from beexgen.train import config
    from beexgen.train.trainer import prepare_data
    cfg = config.TrainConfig(dataset=dataset, out=str(out / "data"),
                             **{k: v for k, v in train_kw.items() if k in ("seed", "val_frac", "test_frac",
                                                                          "text_column", "label_column")})
    (out / "data").mkdir(parents=True, exist_ok=True)
    ds, classes, labels, split = prepare_data(cfg, out / "data", progress=False)
    tr, va = list(split.train), list(split.val)
    return Data(classes, [ds.texts[i] for i in tr], labels[tr], [ds.texts[i] for i in va], labels[va])


def wilson(k: int, n: int) -> tuple[float, float]:
    """95 % Wilson score interval of k right out of n (scipy)."""
    from scipy.stats import binomtest
    if n == 0:
        return 0.0, 1.0
    ci = binomtest(int(k), int(n)).proportion_ci(0.95, method="wilson")
    return float(ci.low), float(ci.high)


def linear_baselines(train_texts, train_y, eval_texts, eval_y) -> dict[str, float]:
    """Accuracy of the two linear baselines (binary bag of words LR, TF-IDF uni+bigram LR),
    their C chosen by 3-fold cross-validation on the training split alone."""
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    out = {}
    for name, vec in (("bow_lr", CountVectorizer(binary=True)),
                      ("tfidf_lr", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True))):
        x = vec.fit_transform(train_texts)
        lr = GridSearchCV(LogisticRegression(max_iter=2000), {"C": [0.1, 1.0, 10.0, 100.0]}, cv=3).fit(x, train_y)
        out[name] = float((lr.predict(vec.transform(eval_texts)) == np.asarray(eval_y)).mean())
    return out


# --------------------------------------------------------------------------- boards

def counting_board(board: str) -> str:
    """The emulated board whose QEMU counts the instructions of `board`'s core: the
    board itself when QEMU runs it, else one of the same core."""
    from beexgen.codegen import boards
    b = boards.get_board(board)
    if b.emulated:
        return b.name
    same = sorted(n for n, x in boards.BOARDS.items() if x.emulated and x.core == b.core)
    if not same:
        raise TuneError(f"no QEMU board has {board}'s core {b.core}: its instructions cannot be counted")
    return same[0]


def fit_check(model_cfg: dict, board: str) -> dict:
    """RAM and flash of the untrained artifact's firmware (codegen/fit.py), before training;
    raises Pruned(reason) when it cannot fit."""
    from beexgen.codegen import build, fit
    from beexgen.codegen.firmware import FirmwareTooBig
    from beexgen.core.validate import ArtifactError
    from beexgen.train.tokenizer import build_empty
    try:
        b = fit.ram_check(model_cfg, build_empty(fit.placeholder_vocab(model_cfg["vocab_size"])).to_str(), board)
    except FirmwareTooBig as e:
        raise Pruned("RAM: " + "; ".join(e.build.problems()), ram=e.build.ram_used,
                     flash=e.build.flash_used) from None
    except ArtifactError as e:
        raise Pruned(f"not exportable: {str(e).split(': ', 1)[-1]}") from None
    except build.BuildError as e:
        raise Pruned(f"build failed: {str(e)[:200]}") from None
    if b.flash_used > b.flash_total:
        raise Pruned(f"flash: about {b.flash_used:,} B > {b.flash_total:,} B", ram=b.ram_used, flash=b.flash_used)
    return {"ram_estimate": b.ram_used, "flash_estimate": b.flash_used}


def latency_floor(model_cfg: dict, board: str, texts: list[str], latency: str, timeout: float,
                  work: Path) -> float:
    """Milliseconds (mean or p95 over `texts`) that no trained model of these dimensions can
    beat: the untrained artifact's firmware in QEMU with every sentence leaving at the first
    exit (confidence thresholds 0). Its placeholder vocabulary makes each unknown word one
    [UNK], never more tokens than a trained WordPiece vocabulary gives, so the bound holds."""
    from beexgen.codegen import boards, fit, firmware
    from beexgen.train.tokenizer import build_empty
    qboard = counting_board(board)
    art = fit.placeholder_artifact(model_cfg, build_empty(fit.placeholder_vocab(model_cfg["vocab_size"])).to_str(),
                                   work / "floor-artifact")
    fw = firmware.build_firmware(art, qboard, work / "floor-build")
    n_exits = model_cfg["n_blocks"] + int(bool(model_cfg.get("wide")))
    cost = [r.cost for r in measure_qemu(fw.elf, qboard, texts, timeout, policy=("confidence", [0.0] * (n_exits - 1)))]
    instr = float(np.mean(cost)) if latency == "mean" else float(np.percentile(cost, 95))
    return instr * CYCLES_PER_INSTRUCTION / boards.get_board(board).clock_hz * 1e3


class Pruned(Exception):
    def __init__(self, reason: str, **attrs):
        super().__init__(reason)
        self.reason, self.attrs = reason, attrs


def model_config(train_kw: dict, model_kw: dict, n_classes: int):
    """The ModelConfig a trial will train (vocabulary at its requested size; the id bigram
    buckets 0 unless searched, as the trainer's default; the word tables, unless searched,
    are filled by the trainer from --size-budget)."""
    from beexgen.train import config
    cfg = config.TrainConfig(dataset="-", out="-", **train_kw)
    try:
        m = config.ModelConfig(vocab_size=cfg.vocab_size, n_classes=n_classes,
                               **{**model_kw, "bigram_buckets": model_kw.get("bigram_buckets", 0)})
    except (ValueError, TypeError) as e:
        raise Pruned(f"invalid settings: {e}") from None
    if m.n_exits == 0:
        raise Pruned("invalid settings: no exit (no blocks and no wide exit)")
    return m


# --------------------------------------------------------------------------- one trial

@dataclass
class Options:
    dataset: str
    board: str
    out: str
    storage: str
    study: str
    trials: int | None
    minutes: float | None
    max_ms: float | None
    space: str | None
    latency: str = "mean"
    seed: int | None = None
    qemu_timeout: float = 600.0
    worker_index: int = 0              # --jobs: this process's index (its sampler's seed differs)


def measure_qemu(elf: Path, board: str, texts: list[str], timeout: float, policy: tuple | None = None) -> list:
    """Every text through the firmware in QEMU -icount (under `policy`, a (name, thresholds)
    pair, else the artifact's): the replies, cost= in instructions."""
    from beexgen.codegen import emulate
    from beexgen.host.client import Client
    from beexgen.host.transport import open_transport
    t0 = time.time()
    with emulate.start_qemu(elf, board, serial="tcp") as h:
        with Client(open_transport(h.url, timeout=30), timeout=60) as c:
            c.handshake(30)
            if policy:
                c.set_policy(*policy)
            out = []
            for t in texts:
                out.append(c.classify(t))
                if time.time() - t0 > timeout:
                    raise TimeoutError(f"QEMU: {len(out)} of {len(texts)} sentences in {timeout:.0f} s")
            return out


def run_trial(trial, opt: Options, space: dict, data: Data, curves, pruner_trial) -> tuple[float, float, float]:
    """Train, export, build, measure one trial; returns (accuracy, ms, flash bytes)."""
    from beexgen.codegen import boards, firmware
    from beexgen.core import artifact
    from beexgen.train import config, deploy, policies
    from beexgen.train import tokenizer as tok_mod
    from beexgen.train.export import export_run
    from beexgen.train.trainer import train

    values = suggest(trial, space)
    train_kw, model_kw, pol, pol_opts = split_settings(values)
    n_classes = len(data.classes)
    mcfg = model_config(train_kw, model_kw, n_classes)
    try:
        policies.calibration_options(pol, **pol_opts)
    except Exception as e:          # CalibrationError: options that cannot work together
        raise Pruned(f"invalid policy options: {e}") from None
    trial.set_user_attr("model", mcfg.to_dict())
    pre = fit_check(mcfg.to_dict(), opt.board)
    trial.set_user_attr("fit_estimate", pre)

    run_dir = Path(opt.out) / TRIALS_DIR / f"{trial.number:04d}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    if opt.max_ms:               # a model too slow even leaving at its first exit: pruned before training
        try:
            floor = latency_floor(mcfg.to_dict(), opt.board, data.val_texts, opt.latency, opt.qemu_timeout,
                                  run_dir / "build")
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
        trial.set_user_attr("ms_floor", floor)
        if floor > opt.max_ms:
            raise Pruned(f"latency: at least {floor:.1f} ms ({opt.latency}) even leaving at the first exit "
                         f"> --max-ms {opt.max_ms:g}")
    trial.set_user_attr("dir", str(run_dir.resolve()))
    trial.set_user_attr("host", socket.gethostname())
    cfg = config.TrainConfig(dataset=opt.dataset, out=str(run_dir), threads=1, device="cpu",
                             **{**train_kw, "model": {**model_kw, "bigram_buckets": mcfg.bigram_buckets}})

    def on_epoch(epoch: int, rec: dict) -> None:
        acc = max(rec["val_acc"])
        pruner_trial.report(acc, epoch)
        trial.set_user_attr("epochs_done", epoch)
        if pruner_trial.should_prune():
            raise Pruned(f"pruned at epoch {epoch}: validation accuracy {acc:.4f} below the median")

    t0 = time.time()
    train(cfg, progress=False, on_epoch=on_epoch)
    art = export_run(run_dir, policy_name=pol, **pol_opts)
    trial.set_user_attr("train_seconds", round(time.time() - t0, 1))

    # the board's real build: flash and RAM
    b = boards.get_board(opt.board)
    try:
        fw = firmware.build_firmware(art, opt.board, run_dir / "build" / opt.board)
        fits = True
    except firmware.FirmwareTooBig as e:
        fw, fits = e.build, False
    trial.set_user_attr("flash", fw.flash_used)
    trial.set_user_attr("ram", fw.ram_used)
    trial.set_user_attr("flash_total", fw.flash_total)
    trial.set_user_attr("ram_total", fw.ram_total)
    trial.set_user_attr("fits", fits)
    if not fits:
        raise Pruned("does not fit: " + "; ".join(fw.problems()), flash=fw.flash_used, ram=fw.ram_used)

    # validation accuracy under the calibrated policy (the deploy mirror)
    tok = tok_mod.load_tokenizer(run_dir / "tokenizer.json")
    all_v = [tok_mod.encode_all(tok, t) for t in data.val_texts]
    ids_v = [tok_mod.model_ids(a, mcfg.seq_max) for a in all_v]
    res = deploy.run(deploy.DeployModel(art), ids_v, all_v)
    depth = res.depth(artifact.Policy[art.policy["name"].upper()], art.policy["thresholds"])
    cls, _ = res.at_exit(depth)
    right = int((cls == data.val_y).sum())
    n = len(data.val_y)
    acc = right / n
    lo, hi = wilson(right, n)

    # M4 instructions of every validation sentence, QEMU -icount; the firmware == the mirror
    qboard = counting_board(opt.board)
    qfw = firmware.build_firmware(art, qboard, run_dir / "build" / f"count-{qboard}")
    replies = measure_qemu(qfw.elf, qboard, data.val_texts, opt.qemu_timeout)
    same = sum(r.cls == c and r.exit_depth == d for r, c, d in zip(replies, cls.tolist(), depth.tolist()))
    if same != n:
        raise RuntimeError(f"trial {trial.number}: the firmware answered {n - same} of {n} validation "
                           f"sentences differently from the PyTorch deploy mirror")
    instr = np.array([r.cost for r in replies], dtype=np.float64)
    to_ms = CYCLES_PER_INSTRUCTION / b.clock_hz * 1e3
    attrs = {"accuracy": acc, "accuracy_low": lo, "accuracy_high": hi, "n_val": n,
             "instructions_mean": float(instr.mean()), "instructions_p95": float(np.percentile(instr, 95)),
             "ms_mean": float(instr.mean() * to_ms), "ms_p95": float(np.percentile(instr, 95) * to_ms),
             "qemu_equals_pytorch": [same, n], "counted_on": qboard,
             "policy": art.policy, "seconds": round(time.time() - t0, 1)}
    for k, v in attrs.items():
        trial.set_user_attr(k, v)
    ms = attrs["ms_" + opt.latency]
    trial.set_constraint("ms_over_budget", ms - opt.max_ms if opt.max_ms else 0.0)   # <= 0: within --max-ms
    shutil.rmtree(run_dir / "build", ignore_errors=True)      # rebuilt from the artifact when needed
    curves.tell(pruner_trial, acc)
    return acc, ms, float(fw.flash_used)


# --------------------------------------------------------------------------- the study

def storage_url(opt_storage: str | None, out: Path) -> str:
    return opt_storage or f"sqlite:///{(out / STUDY_DB).resolve()}"


def open_storage(url: str):
    import optuna
    import warnings
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    kw = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    for attempt in range(6):
        try:
            with warnings.catch_warnings():           # heartbeats are "experimental" in Optuna 5
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=kw, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3))
        except Exception as e:        # a wrong URL, a missing driver, a server not answering
            racing = "IntegrityError" in type(e).__name__ or "already exists" in str(e) or "locked" in str(e)
            if racing and attempt < 5:                  # two workers creating the schema at once
                time.sleep(0.5 + attempt)
                continue
            raise TuneError(f"--storage {url}: {type(e).__name__}: {str(e).splitlines()[0]}") from None


def open_study(opt: Options, storage, space_text: str):
    """The study (created, or loaded and checked to be the same search) and its companion
    single-objective study of learning curves for the pruner."""
    import optuna
    study = optuna.create_study(study_name=opt.study, storage=storage, load_if_exists=True,
                                directions=["maximize", "minimize", "minimize"])
    # TPE reads each trial's set_constraint; a seeded sampler is seeded afresh on resume and
    # per --jobs worker (else each would replay the first one's samples)
    seed = None if opt.seed is None else opt.seed + len(study.trials) + 7919 * opt.worker_index
    study.sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=6)
    want = {"dataset": opt.dataset, "board": opt.board, "max_ms": opt.max_ms, "latency": opt.latency,
            "space": space_text}
    have = study.user_attrs.get("problem")       # one attribute: a second worker sees all of it or none
    if have is None:
        study.set_user_attr("problem", want)
    else:
        diff = [k for k, v in want.items() if have.get(k) != v]
        if diff:
            raise TuneError(f"study {opt.study!r} in {opt.storage} searches another problem ("
                            + ", ".join(f"{k}: {have.get(k)!r}" for k in diff if k != "space")
                            + (", another space" if "space" in diff else "") + "): give it another --study name")
    curves = optuna.create_study(study_name=opt.study + ".epochs", storage=storage, load_if_exists=True,
                                 direction="maximize",
                                 pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1))
    return study, curves


def _counts(study) -> dict[str, int]:
    from optuna.trial import TrialState
    c = {s: 0 for s in TrialState}
    for t in study.get_trials(deepcopy=False):
        c[t.state] += 1
    return c


class _Heartbeat:
    """Records a running trial's heartbeat every HEARTBEAT_S (what Optuna's optimize() does)."""

    def __init__(self, storage, trial_id: int):
        self.storage, self.trial_id, self.stop = storage, trial_id, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.is_set():
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:
                pass
            self.stop.wait(HEARTBEAT_S)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def progress_line(n_done: int, total: int | None, t, best) -> str:
    a = t.user_attrs
    p = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())
    head = f"trial {n_done}/{total or '?'} (#{t.number}) {t.state.name.lower()}"
    if "accuracy" in a:
        body = (f"acc {a['accuracy']:.4f} [{a['accuracy_low']:.3f}, {a['accuracy_high']:.3f}]  "
                f"{a['ms_mean']:.2f} ms (p95 {a['ms_p95']:.2f})  flash {a['flash'] / 1024:.0f} KB  "
                f"RAM {a['ram'] / 1024:.0f} KB  fits")
    else:
        body = a.get("prune_reason", "")
    b = (f"best so far: #{best.number} acc {best.user_attrs['accuracy']:.4f}, {best.user_attrs['ms_mean']:.2f} ms"
         if best is not None else "best so far: none within the budget")
    return f"{head} | {body} | {p} | {b}"


def worker(opt: Options, quiet: bool = False) -> int:
    """Run trials until the study holds opt.trials finished ones (or opt.minutes pass);
    returns how many this process finished. Several workers may share the storage."""
    import optuna
    from optuna.trial import TrialState
    import torch

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = Path(opt.out)
    space = load_space(opt.space)
    space_text = (Path(opt.space) if opt.space else SPACE_FILE).read_text()
    storage = open_storage(opt.storage)
    study, curves = open_study(opt, storage, space_text)
    data = load_data(opt.dataset, out, {k: d.value for k, d in space.items() if d.kind == "fixed"})
    t_end = time.time() + opt.minutes * 60 if opt.minutes else None
    done_here = 0
    failed_in_a_row = 0                 # this worker's trials failing one after another (not pruned)
    while True:
        if failed_in_a_row >= MAX_FAILED_IN_A_ROW:
            raise TuneError(f"{failed_in_a_row} trials in a row failed, the last with: "
                            f"{study.get_trials(deepcopy=False)[trial.number].user_attrs.get('error', '?')}; "
                            "stopping (the study keeps them; fix the cause and run the same command to resume)")
        optuna.storages.fail_stale_trials(study)           # crashed workers' trials: failed, queued again
        c = _counts(study)
        finished = c[TrialState.COMPLETE] + c[TrialState.PRUNED]
        if opt.trials and finished >= opt.trials:
            break
        if t_end and time.time() >= t_end:
            break
        if opt.trials and finished + c[TrialState.RUNNING] >= opt.trials and not c[TrialState.WAITING]:
            time.sleep(HEARTBEAT_S)                         # the rest of the budget is running elsewhere
            continue
        trial = study.ask()
        mine = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                                     TrialState.RUNNING))
                if t.number < trial.number]
        if opt.trials and len(mine) >= opt.trials:       # another worker asked in the same instant
            fixed = storage.get_trial(trial._trial_id).system_attrs.get("fixed_params")
            trial.set_user_attr("prune_reason", "not run: the budget was taken by another worker")
            study.tell(trial, state=TrialState.FAIL)
            if fixed:                                    # a queued re-run: queue it again
                study.enqueue_trial(fixed)
            continue
        pruner_trial = curves.ask()
        trial.set_user_attr("epochs_trial", pruner_trial.number)
        with _Heartbeat(storage, trial._trial_id):
            try:
                values = run_trial(trial, opt, space, data, curves, pruner_trial)
                study.tell(trial, values)
                failed_in_a_row = 0
            except Pruned as e:
                trial.set_user_attr("prune_reason", e.reason)
                for k, v in e.attrs.items():
                    trial.set_user_attr(k, v)
                study.tell(trial, state=TrialState.PRUNED)
                curves.tell(pruner_trial, state=TrialState.PRUNED)
                failed_in_a_row = 0
            except KeyboardInterrupt:
                # stopped by the user: the trial is failed and queued to run again on resume
                study.tell(trial, state=TrialState.FAIL)
                curves.tell(pruner_trial, state=TrialState.FAIL)
                study.enqueue_trial(trial.params)
                raise
            except Exception as e:                      # a bug or a tool failing: kept, reported, search goes on
                trial.set_user_attr("error", f"{type(e).__name__}: {e}"[:500])
                study.tell(trial, state=TrialState.FAIL)
                curves.tell(pruner_trial, state=TrialState.FAIL)
                failed_in_a_row += 1
                print(f"trial #{trial.number} failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        done_here += 1
        if not quiet:
            t = study.get_trials(deepcopy=False)[trial.number]
            fin = _counts(study)
            n_fin = fin[TrialState.COMPLETE] + fin[TrialState.PRUNED]
            best = pick(study, opt.max_ms, opt.latency)
            print(progress_line(n_fin, opt.trials, t, best), file=sys.stderr, flush=True)
    return done_here


def _worker_entry(opt_dict: dict) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        worker(Options(**opt_dict))
    except KeyboardInterrupt:
        pass


# --------------------------------------------------------------------------- the pick

def feasible(study, max_ms: float | None, latency: str = "mean") -> list:
    from optuna.trial import TrialState
    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        a = t.user_attrs
        if a.get("fits") and (max_ms is None or a["ms_" + latency] <= max_ms):
            out.append(t)
    return out


def pick(study, max_ms: float | None, latency: str = "mean", how: str = "accuracy"):
    """The chosen trial: the most accurate within max_ms, or, by the one-standard-error
    rule, a cheaper one no more than one standard error of the top accuracy below it
    (sqrt(p (1 - p) / n) on the n validation sentences: the same within the split's
    noise): the lowest ms (how="accuracy") or the smallest flash (how="flash"). how may
    also be a trial number. None when no trial is feasible."""
    ok = feasible(study, max_ms, latency)
    if how not in PICKS:
        num = int(how)
        hit = [t for t in ok if t.number == num]
        return hit[0] if hit else None
    if not ok:
        return None
    top = max(ok, key=lambda t: t.user_attrs["accuracy"])
    p, n = top.user_attrs["accuracy"], top.user_attrs["n_val"]
    floor = p - math.sqrt(p * (1 - p) / n)
    near = [t for t in ok if t.user_attrs["accuracy"] >= floor]
    key = (lambda t: (t.user_attrs["ms_" + latency], t.user_attrs["flash"])) if how == "accuracy" else \
          (lambda t: (t.user_attrs["flash"], t.user_attrs["ms_" + latency]))
    return min(near, key=lambda t: (*key(t), -t.user_attrs["accuracy"], t.number))


def pareto(trials: list, latency: str = "mean") -> list:
    """Trials no other trial beats on accuracy, ms and flash at once."""
    def v(t):
        a = t.user_attrs
        return (-a["accuracy"], a["ms_" + latency], a["flash"])
    front = []
    for t in trials:
        if not any(all(x <= y for x, y in zip(v(o), v(t))) and v(o) != v(t) for o in trials):
            front.append(t)
    return sorted(front, key=lambda t: t.user_attrs["ms_" + latency])


def export_best(t, out: Path) -> Path:
    """Copy the picked trial's run directory (config, split, tokenizer, checkpoint,
    artifact) to OUT/best: an ordinary run directory."""
    src = Path(t.user_attrs["dir"])
    if not (src / "artifact" / "meta.json").exists():
        raise TuneError(f"trial #{t.number} ran on {t.user_attrs.get('host')} in {src}, not found here: "
                        f"run `beexgen tune` with the same --storage/--study there, or train its settings "
                        f"({t.params}) with `beexgen train`")
    dst = out / BEST_DIR
    tmp = out / (BEST_DIR + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("build"))
    (tmp / "tune.json").write_text(json.dumps({"trial": t.number, "params": t.params, **{
        k: t.user_attrs[k] for k in ("accuracy", "accuracy_low", "accuracy_high", "ms_mean", "ms_p95",
                                     "instructions_mean", "instructions_p95", "flash", "ram", "policy")}},
        indent=2) + "\n")
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)
    return dst


# --------------------------------------------------------------------------- the report

def write_report(study, opt: Options, out: Path, chosen, baselines: dict | None) -> Path:
    """OUT/report.md, OUT/pareto_ms.png, OUT/pareto_flash.png, OUT/importance.png."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.trial import TrialState

    lat = opt.latency
    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE and "accuracy" in t.user_attrs]
    ok = feasible(study, opt.max_ms, lat)
    front = pareto(done, lat)
    L = [f"# beexgen tune: {opt.dataset} on {opt.board}", ""]
    L.append(f"Study `{opt.study}`, {len(study.trials)} trials ({len(done)} measured, "
             f"{sum(t.state == TrialState.PRUNED for t in study.trials)} pruned, "
             f"{sum(t.state == TrialState.FAIL for t in study.trials)} failed or re-queued). "
             f"Budget: {'--max-ms ' + format(opt.max_ms, 'g') + ' (' + lat + ')' if opt.max_ms else 'no latency limit'}; "
             f"flash and RAM of the board. Accuracy is on the validation split under each trial's "
             f"calibrated exit policy (the test split is not read); ms = M4 instructions (QEMU -icount) x "
             f"{CYCLES_PER_INSTRUCTION} cycles per instruction / the board's clock.")
    L.append("")
    if chosen is not None:
        a = chosen.user_attrs
        L += ["## Chosen model", "",
              f"Trial #{chosen.number}: validation accuracy {a['accuracy']:.4f} "
              f"(95 % Wilson [{a['accuracy_low']:.4f}, {a['accuracy_high']:.4f}], n = {a['n_val']}), "
              f"{a['ms_mean']:.2f} ms mean, {a['ms_p95']:.2f} ms p95 "
              f"({a['instructions_mean'] / 1e6:.2f} M / {a['instructions_p95'] / 1e6:.2f} M instructions), "
              f"flash {a['flash']:,} of {a['flash_total']:,} B, RAM {a['ram']:,} of {a['ram_total']:,} B, "
              f"policy {a['policy']['name']}.", "",
              "Settings: " + ", ".join(f"`{k}={v}`" for k, v in chosen.params.items()), "",
              f"Run directory: `{out / BEST_DIR}` (`beexgen build {out / BEST_DIR}/artifact --board {opt.board}`).", ""]
    else:
        L += ["## Chosen model", "", "None: no measured trial fits the board within the latency budget.", ""]
    if baselines:
        L += ["Linear baselines on the validation split (no M4 build): "
              + ", ".join(f"{k} {v:.4f}" for k, v in baselines.items()), ""]

    def plot(xkey, xlabel, fname, scale=1.0):
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        xs = [t.user_attrs[xkey] * scale for t in done]
        ax.scatter(xs, [t.user_attrs["accuracy"] for t in done], s=18, c="#999999", label="trials")
        fx = [t.user_attrs[xkey] * scale for t in front]
        ax.plot(fx, [t.user_attrs["accuracy"] for t in front], "o-", c="C0", ms=5, label="Pareto front")
        if chosen is not None:
            ca = chosen.user_attrs
            ax.errorbar([ca[xkey] * scale], [ca["accuracy"]],
                        yerr=[[ca["accuracy"] - ca["accuracy_low"]], [ca["accuracy_high"] - ca["accuracy"]]],
                        fmt="*", c="C3", ms=14, label=f"chosen #{chosen.number}")
        for (k, v), st in zip((baselines or {}).items(), ("--", ":")):
            ax.axhline(v, ls=st, c="C2", label=f"{k} (validation)")
        if opt.max_ms and xkey.startswith("ms"):
            ax.axvline(opt.max_ms, c="C1", lw=1, label=f"--max-ms {opt.max_ms:g}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("validation accuracy")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=110)
        plt.close(fig)

    if done:
        plot("ms_" + lat, f"ms per sentence ({lat}, {opt.board})", "pareto_ms.png")
        plot("flash", "flash (KB)", "pareto_flash.png", 1 / 1024)
        L += ["## Pareto front", "", "![accuracy vs ms](pareto_ms.png) ![accuracy vs flash](pareto_flash.png)", "",
              "| trial | accuracy | ms mean | ms p95 | flash KB | RAM KB | within budget |", "|---|---|---|---|---|---|---|"]
        for t in front:
            a = t.user_attrs
            L.append(f"| #{t.number} | {a['accuracy']:.4f} | {a['ms_mean']:.2f} | {a['ms_p95']:.2f} | "
                     f"{a['flash'] / 1024:.0f} | {a['ram'] / 1024:.0f} | {'yes' if t in ok else 'no'} |")
        L.append("")
    # parameter importances for accuracy (fANOVA over the measured trials)
    try:
        imp = optuna.importance.get_param_importances(
            study, target=lambda t: t.values[0], evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
    except Exception as e:                 # too few trials, one value per parameter
        imp = {}
        L += ["## Parameter importances", "", f"Not computed: {type(e).__name__}: {e}", ""]
    if imp:
        fig, ax = plt.subplots(figsize=(6.4, 0.3 * len(imp) + 1.2))
        names = list(imp)[::-1]
        ax.barh(names, [imp[n] for n in names], color="C0")
        ax.set_xlabel("importance for validation accuracy (fANOVA)")
        fig.tight_layout()
        fig.savefig(out / "importance.png", dpi=110)
        plt.close(fig)
        L += ["## Parameter importances", "", "![importances](importance.png)", "",
              "| setting | importance |", "|---|---|"] + [f"| {k} | {v:.3f} |" for k, v in imp.items()] + [""]
    names = sorted({k for t in study.trials for k in t.params})
    L += ["## Trials", "", "| # | state | accuracy [95 %] | ms mean | ms p95 | flash KB | RAM KB | note | "
          + " | ".join(names) + " |", "|" + "---|" * (8 + len(names))]
    for t in study.trials:
        a = t.user_attrs
        accs = f"{a['accuracy']:.4f} [{a['accuracy_low']:.3f}, {a['accuracy_high']:.3f}]" if "accuracy" in a else ""
        f = lambda k, d=1.0, fmt=".2f": format(a[k] * d, fmt) if isinstance(a.get(k), (int, float)) else ""
        note = a.get("prune_reason") or a.get("error") or ("over --max-ms" if t.state == TrialState.COMPLETE
                                                            and t not in ok else "")
        L.append(f"| {t.number} | {t.state.name.lower()} | {accs} | {f('ms_mean')} | {f('ms_p95')} | "
                 f"{f('flash', 1 / 1024, '.0f')} | {f('ram', 1 / 1024, '.0f')} | {note.replace('|', '/')[:80]} | "
                 + " | ".join(str(t.params.get(n, "")) for n in names) + " |")
    md = out / "report.md"
    md.write_text("\n".join(L) + "\n")
    return md


# --------------------------------------------------------------------------- the command

def check_budget(opt: Options, space: dict) -> None:
    """Before any training: the smallest model of the space must fit the board, and with
    --max-ms the fastest must be able to meet it."""
    from beexgen.codegen import boards
    from beexgen.train import data as data_mod
    small = smallest(space)
    fixed = {k: d.value for k, d in space.items() if d.kind == "fixed"}
    train_kw, model_kw, _, _ = split_settings({**fixed, **small})
    ds = data_mod.load_dataset(opt.dataset, text_column=fixed.get("text_column"),
                               label_column=fixed.get("label_column"), progress=False)
    n_classes = len(data_mod.class_names(ds))
    try:
        m = model_config(train_kw, model_kw, n_classes)
        fit_check(m.to_dict(), opt.board)
    except Pruned as e:
        b = boards.get_board(opt.board)
        raise TuneError(f"no model of the search space fits {opt.board} ({b.flash.length // 1024} KB flash, "
                        f"{b.ram.length // 1024} KB RAM): even the smallest ("
                        + ", ".join(f"{k} {v}" for k, v in small.items()) + f") fails the check, {e.reason}. "
                        "Pick a bigger board or give a space with smaller settings (--space).") from None
    if not opt.max_ms:
        return
    # the fastest model: the smallest, with the wide exit when the space allows it (exit 0 is a table lookup)
    if "wide" in space and True in space["wide"].values():
        model_kw = {**model_kw, "wide": True}
    try:
        m = model_config(train_kw, model_kw, n_classes)
    except Pruned:
        return
    import tempfile
    texts = load_data(opt.dataset, Path(opt.out), fixed).val_texts
    with tempfile.TemporaryDirectory(prefix="beexgen-tune-") as d:
        floor = latency_floor(m.to_dict(), opt.board, texts, opt.latency, opt.qemu_timeout, Path(d))
    if floor > opt.max_ms:
        raise TuneError(f"no model of the search space runs within --max-ms {opt.max_ms:g} on {opt.board}: even "
                        f"the fastest ({', '.join(f'{k} {v}' for k, v in small.items())}), every sentence leaving "
                        f"at its first exit, takes {floor:.2f} ms ({opt.latency}, {CYCLES_PER_INSTRUCTION} cycles "
                        "per instruction). Raise --max-ms or give a space with smaller settings (--space).")


def tune(opt: Options, jobs: int = 1, how: str = "accuracy", quiet: bool = False) -> dict:
    """The whole command: the search (jobs processes), then the pick, best/ and the report."""
    import multiprocessing as mp
    from beexgen.codegen import boards
    out = Path(opt.out)
    out.mkdir(parents=True, exist_ok=True)
    boards.get_board(opt.board)
    space = load_space(opt.space)
    counting_board(opt.board)
    check_budget(opt, space)
    open_study(opt, open_storage(opt.storage), (Path(opt.space) if opt.space else SPACE_FILE).read_text())
    t0 = time.time()
    procs = []
    ctx = mp.get_context("spawn")
    for i in range(1, jobs):
        p = ctx.Process(target=_worker_entry, args=({**dataclasses.asdict(opt), "worker_index": i},))
        p.start()
        procs.append(p)
    try:
        worker(opt, quiet)
    finally:
        for p in procs:
            p.join()
    return finish(opt, how, minutes=(time.time() - t0) / 60)


def finish(opt: Options, how: str = "accuracy", minutes: float | None = None) -> dict:
    """The pick, OUT/best and the report over the study as it stands."""
    out = Path(opt.out)
    storage = open_storage(opt.storage)
    space_text = (Path(opt.space) if opt.space else SPACE_FILE).read_text()
    study, _ = open_study(opt, storage, space_text)
    chosen = pick(study, opt.max_ms, opt.latency, how)
    fixed = {k: d.value for k, d in load_space(opt.space).items() if d.kind == "fixed"}
    data = load_data(opt.dataset, out, fixed)
    base = linear_baselines(data.train_texts, data.train_y, data.val_texts, data.val_y)
    best_dir = export_best(chosen, out) if chosen is not None else None
    md = write_report(study, opt, out, chosen, base)
    return {"study": study, "chosen": chosen, "best": best_dir, "report": md, "baselines_val": base,
            "minutes": minutes}
