"""`beexgen bench`: the results table, measured side by side in one run.

For each offline data set and the default configuration:
  accuracy  final exit, each exit policy, the full-precision twin, and a bag-of-words
            logistic regression (what a user would deploy otherwise) at float32 and int8;
  compute   mean exit depth, binary MACs and float ops per sentence, reduction vs full depth;
  size      packed artifact vs the float32 twin, flash / RAM / stack on nucleo-f411re;
  device    M4 instructions per sentence under QEMU (-icount), mean / p95 / per exit depth,
            and whether every reply equals the host emulator's and PyTorch's;
  speed     host emulator vs PyTorch eager batch 1 on the same model, microseconds per
            sentence, same run, same sentences;
  kernel    M4 instructions per 32 binary MACs of the binary linear kernel over whole calls
            on the model's shapes (portable and DSP paths), beside CMSIS-DSP's q7 peer;
  profile   M4 instructions per stage of the firmware (codegen/m4bench.py).
Writes OUT/bench.json and OUT/bench.md; `--readme` puts the summary table into README.md.
"""
from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from beexgen import bench_accuracy
from beexgen.train.config import TWIN_DIR

CYCLES_PER_INSTR = (1.0, 1.4)   # stated assumption for the cycle estimate (see cycle_note)
CYCLE_NOTE = ("cycles ~ instructions x 1.0-1.4 on a Cortex-M4 at 100 MHz with flash wait "
              "states hidden by the ART accelerator (an assumption: QEMU has no timing model)")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- training

SEEDS = (0, 1, 2)          # the shipped model and both baselines are reported as a 3-seed mean


def line_max_for(texts: list[str]) -> int:
    """The line length the bench's builds get: the device reads a text whole (no cut can
    keep the answer), so the power of two that holds the longest text with its line end
    and request overhead, and at least the default."""
    from beexgen.core.protocol import LINE_MAX
    return max(LINE_MAX, 1 << (max(len(t.encode()) + 3 for t in texts) - 1).bit_length())


def run_dirs(ds: str, out: Path) -> dict[str, Path]:
    """Runs of one data set: the shipped model (seed 0), its full-precision twin and the
    paper's architecture (--no-wide) on the same split and tokenizer, and seeds 1, 2
    (each seed its own split, tokenizer and model)."""
    base = out / ds
    return {"model": base, "twin": base / TWIN_DIR, "paper": base / "paper",
            **{f"seed{s}": base / f"seed{s}" for s in SEEDS[1:]}}


def _train_job(job: tuple) -> tuple[str, float]:
    """One training in a worker process (one torch thread: several run side by side)."""
    import torch
    torch.set_num_threads(1)
    from beexgen.train.trainer import TrainConfig, train

    name, kw = job
    t0 = time.time()
    train(TrainConfig(**kw), progress=False)
    return name, time.time() - t0


def ensure_runs(datasets, out: Path, reuse: bool, epochs: int | None, jobs: int) -> dict:
    """Train what is missing (everything with reuse=False), `jobs` trainings at a time,
    then export the binarized runs. Returns training seconds by run name."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from beexgen.train.export import export_run
    from beexgen.train.trainer import TrainConfig, prepare, share_data

    from beexgen.codegen.boards import DEFAULT_BOARD
    kw = {"epochs": epochs} if epochs else {}
    kw["size_budget"] = bench_accuracy.default_train_budget(DEFAULT_BOARD)    # as `beexgen train --board` sets it
    spec = {"model": {}, "twin": {"full_precision": True}, "paper": {"model": {"wide": False}},  # cf. twin_config
            **{f"seed{s}": {"seed": s} for s in SEEDS[1:]}}
    todo = []
    for ds in datasets:
        dirs = run_dirs(ds, out)
        prepare(TrainConfig(dataset=ds, out=str(dirs["model"]), **kw), progress=False)  # split + tokenizer
        for name, extra in spec.items():
            d = dirs[name]
            if reuse and (d / "checkpoint.pt").exists():
                continue
            d.mkdir(parents=True, exist_ok=True)
            if name in ("twin", "paper"):        # the same data and ids as the shipped model
                share_data(dirs["model"], d)
            todo.append((f"{ds}/{name}", {"dataset": ds, "out": str(d), **kw, **extra}))
    times = {}
    if todo:
        log(f"training {len(todo)} runs, {jobs} at a time: {', '.join(n for n, _ in todo)}")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as ex:
            for name, secs in ex.map(_train_job, todo):
                times[name] = secs
                log(f"{name}: trained in {secs / 60:.1f} min")
    for ds in datasets:
        for name, d in run_dirs(ds, out).items():
            fresh = f"{ds}/{name}" in times
            if name != "twin" and (fresh or not (d / "artifact" / "meta.json").exists()):
                export_run(d)
    return times


# --------------------------------------------------------------------------- baselines

def wilson(acc: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval of an accuracy measured on n sentences."""
    if n == 0:
        return (0.0, 1.0)
    den = 1 + z * z / n
    mid = (acc + z * z / (2 * n)) / den
    half = z * float(np.sqrt(acc * (1 - acc) / n + z * z / (4 * n * n))) / den
    return (float(mid - half), float(mid + half))


TFIDF_C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def tfidf_lr(run) -> dict:
    """TF-IDF of word uni+bigrams (sublinear tf, min_df 2) + logistic regression with C
    tuned on the validation split: the stronger linear baseline."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    tr, va, te = (list(getattr(run.split, k)) for k in ("train", "val", "test"))
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, lowercase=True)
    xtr = vec.fit_transform([run.texts[i] for i in tr])
    xva, xte = (vec.transform([run.texts[i] for i in idx]) for idx in (va, te))
    best = None
    for c in TFIDF_C_GRID:
        clf = LogisticRegression(C=c, max_iter=3000).fit(xtr, run.labels[tr])
        v = float((clf.predict(xva) == run.labels[va]).mean())
        if best is None or v > best[0]:
            best = (v, c, clf)
    v, c, clf = best
    pred = clf.predict(xte)
    return {"accuracy": float((pred == run.labels[te]).mean()), "C": c, "val_accuracy": v,
            "features": len(vec.vocabulary_), "pred": pred}


def seed_accuracy(run_dir: Path) -> dict:
    """Test accuracy of a run's artifact (default policy, full depth) and of both
    baselines on that run's split: one seed of the 3-seed means."""
    from beexgen.core import artifact
    from beexgen.train import deploy
    from beexgen.train.trainer import load_run

    run = load_run(run_dir)
    art = artifact.load(run_dir / "artifact")
    ids, y, _ = run.part("test")
    res = deploy.run(deploy.DeployModel(art), ids, run.all_part("test"))
    depth = res.depth(artifact.Policy[art.policy["name"].upper()], art.policy["thresholds"])
    return {"default_policy": float((res.at_exit(depth)[0] == y).mean()),
            "full_depth": float((res.cls[:, -1] == y).mean()), "exit0": bench_accuracy.exit0_accuracy(res, y),
            "bow": bag_of_words(run)["accuracy"], "tfidf": tfidf_lr(run)["accuracy"], "n": int(len(y))}


def bag_of_words(run) -> dict:
    """Logistic regression on binary bag-of-words (sklearn), same split; float32 and int8."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    tr, te = list(run.split.train), list(run.split.test)
    vec = CountVectorizer(binary=True, min_df=2, ngram_range=(1, 1), lowercase=True)
    xtr = vec.fit_transform([run.texts[i] for i in tr])
    xte = vec.transform([run.texts[i] for i in te])
    ytr, yte = run.labels[tr], run.labels[te]
    clf = LogisticRegression(C=1.0, max_iter=2000).fit(xtr, ytr)
    acc = float((clf.predict(xte) == yte).mean())
    w, b = clf.coef_.astype(np.float32), clf.intercept_.astype(np.float32)
    scale = np.abs(w).max(axis=1, keepdims=True) / 127.0          # per-class symmetric int8
    wq = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
    scores = (xte @ (wq.astype(np.float32) * scale).T) + b
    if scores.shape[1] == 1:
        pred = (scores[:, 0] > 0).astype(int)
    else:
        pred = scores.argmax(1)
    acc8 = float((clf.classes_[np.asarray(pred).ravel()] == yte).mean())
    vocab_bytes = sum(len(t.encode()) + 1 for t in vec.vocabulary_)
    n_w = w.size
    return {"accuracy": acc, "accuracy_int8": acc8, "features": len(vec.vocabulary_), "pred": clf.predict(xte),
            "bytes_fp32": 4 * (n_w + b.size) + vocab_bytes,
            "bytes_int8": n_w + 4 * (b.size + scale.size) + vocab_bytes}


# --------------------------------------------------------------------------- C targets

def device_replies(port: str, texts: list[str], policy: tuple | None = None) -> list:
    """Classify texts through host/client.py's Client (ids, window, retries, strict replies);
    a list of Reply (or DeviceError) in order."""
    from beexgen.host.client import Client
    from beexgen.core.protocol import DeviceError
    from beexgen.host.transport import open_transport

    with Client(open_transport(port, timeout=30), timeout=60) as c:
        c.handshake(30)
        if policy:
            c.set_policy(*policy)
        out = []
        for t in texts:
            try:
                out.append(c.classify(t))
            except DeviceError as e:
                out.append(e)
        return out


def qemu_replies(elf: Path, board: str, texts: list[str]) -> list:
    from beexgen.codegen import emulate
    with emulate.start_qemu(elf, board, serial="tcp") as h:
        return device_replies(h.url, texts)


# --------------------------------------------------------------------------- PyTorch speed

SPEED_PASSES = 3
PROFILE_N = 100            # test sentences profiled stage by stage on the M4 (0.5 s each)


def torch_batch1_us(model, ids: list[list[int]], all_ids: list[list[int]], repeat: int = 1) -> float:
    """PyTorch eager, batch 1, every exit (the wide exit's bag included), microseconds per sentence."""
    import torch

    from beexgen.train.trainer import wide_batch, wide_rows

    model.eval()
    rows = wide_rows(model.cfg, ids, all_ids)
    xs = [(torch.tensor([s]), torch.tensor([len(s)]), wide_batch(rows, [i])) for i, s in enumerate(ids)]
    with torch.no_grad():
        for x, n, w in xs[:20]:
            model(x, n, w)
        t0 = time.perf_counter()
        for _ in range(repeat):
            for x, n, w in xs:
                model(x, n, w)
        return (time.perf_counter() - t0) / (repeat * len(xs)) * 1e6


# --------------------------------------------------------------------------- one data set

def accuracy_block(run_dir: Path, art, run, res_t, y_t, bow: dict, tfidf: dict) -> dict:
    """Accuracy of the shipped model and its peers on the seed-0 test split, each with
    its 95 % Wilson interval."""
    from beexgen.core import artifact
    from beexgen.train import deploy, evaluate

    n = len(y_t)
    depth = res_t.depth(artifact.Policy[art.policy["name"].upper()], art.policy["thresholds"])
    acc = {"default_policy": float((res_t.at_exit(depth)[0] == y_t).mean()),
           "full_depth": float((res_t.cls[:, -1] == y_t).mean())}
    paper = artifact.load(run_dir / "paper" / "artifact")
    ids_t, _, _ = run.part("test")
    rp = deploy.run(deploy.DeployModel(paper), ids_t, run.all_part("test"))
    pd = rp.depth(artifact.Policy[paper.policy["name"].upper()], paper.policy["thresholds"])
    acc["paper_model"] = float((rp.cls[:, -1] == y_t).mean())
    acc["paper_default_policy"] = float((rp.at_exit(pd)[0] == y_t).mean())
    twin = evaluate.twin_exit_accuracy(run_dir / TWIN_DIR)       # every exit's, loaded and run once
    acc["twin"] = twin[-1]
    acc["bow_lr"], acc["tfidf_lr"] = bow["accuracy"], tfidf["accuracy"]
    return {"n": n, "accuracy": acc, "twin_exit_acc": twin, "wilson95": {k: wilson(v, n) for k, v in acc.items()},
            "paper_size": paper.size_report()["total"], "paper_policy": paper.policy["name"]}


def bench_dataset(ds: str, out: Path, *, qemu_n: int | None, budget: float = 0.3) -> dict:
    import torch

    from beexgen.core import artifact
    from beexgen.codegen import boards, build as build_mod, firmware
    from beexgen.train import deploy, evaluate, policies
    from beexgen.train.trainer import load_run

    run_dir = out / ds
    rec = {"dataset": ds}
    run = load_run(run_dir)
    art = artifact.load(run_dir / "artifact")
    cfg = art.config
    ids_t, y_t, idx_t = run.part("test")
    ids_v, y_v, _ = run.part("val")
    all_t, all_v = run.all_part("test"), run.all_part("val")
    len_t = np.array([len(s) for s in ids_t])
    len_v = np.array([len(s) for s in ids_v])
    nid_t = np.array([len(a) for a in all_t])
    dm = deploy.DeployModel(art)
    res_t, res_v = deploy.run(dm, ids_t, all_t), deploy.run(dm, ids_v, all_v)
    rec["bow"], rec["tfidf"] = bag_of_words(run), tfidf_lr(run)      # fitted once, reported twice
    rec.update(accuracy_block(run_dir, art, run, res_t, y_t, rec["bow"], rec["tfidf"]))
    rec["acc19"] = bench_accuracy.figures(
        art, res_t, y_t, res_t.depth(artifact.Policy[art.policy["name"].upper()], art.policy["thresholds"]),
        {k: rec[k].pop("pred") for k in ("bow", "tfidf")}, rec["bow"]["bytes_int8"], boards.DEFAULT_BOARD)
    rec["seeds"] = {"0": {"default_policy": rec["accuracy"]["default_policy"],
                          "full_depth": rec["accuracy"]["full_depth"], "exit0": rec["acc19"].exit0,
                          "bow": rec["accuracy"]["bow_lr"], "tfidf": rec["accuracy"]["tfidf_lr"], "n": len(y_t)}}
    for s in SEEDS[1:]:
        rec["seeds"][str(s)] = seed_accuracy(run_dirs(ds, out)[f"seed{s}"])
    rec["seed_mean"] = {k: (None if any(v[k] is None for v in rec["seeds"].values())
                            else float(np.mean([v[k] for v in rec["seeds"].values()])))
                        for k in ("default_policy", "full_depth", "exit0", "bow", "tfidf")}

    # accuracy and compute per policy (calibrated on validation, measured on test)
    pols = {"default": art.policy,
            **{name: policies.calibrate(name, res_v, y_v, len_v, cfg, budget=budget, unit="compute")
               for name in policies.CALIBRATORS if name != "none"}}  # each with its default options
    rec["policies"] = {}
    for name, pol in pols.items():
        ev = policies.evaluate_policy(res_t, y_t, len_t, cfg, pol["name"], pol["thresholds"], n_ids=nid_t)
        ev.pop("depth")
        rec["policies"][name] = ev
    from beexgen.train import report as report_mod
    md = report_mod.make_report(res_t, y_t, len_t, cfg, {k: v for k, v in pols.items() if k != "default"},
                                run_dir / "report", res_val=res_v, labels_val=y_v, lengths_val=len_v,
                                title=f"{ds} (beexgen bench)", twin_acc=rec["twin_exit_acc"])
    rec["report"] = str(md)
    rep = evaluate.evaluate(art, ids_t, y_t, res=res_t, all_ids=all_t)
    rec["exit_acc"] = rep["exit_acc"]
    rec["first_exit"] = rep["first_exit"]
    rec["default_eval"] = {k: rep[k] for k in ("policy_acc", "mean_depth", "bmacs", "flops", "ops_rel",
                                               "depth_hist", "over_seq_max")}
    rec["size"] = {"artifact": rep["size"], "fp32_twin_bytes": rep["fp32_twin_bytes"],
                   "ratio": rep["size_ratio"]}
    log(f"{ds}: accuracy done (default policy {rec['accuracy']['default_policy']:.4f}, "
        f"twin {rec['accuracy']['twin']:.4f}, bow {rec['bow']['accuracy']:.4f}, tfidf {rec['tfidf']['accuracy']:.4f})")

    # firmware for the real board: size table
    bdir = run_dir / "build"
    fw = firmware.build_firmware(art, boards.DEFAULT_BOARD, bdir / boards.DEFAULT_BOARD)
    rec["nucleo"] = {"flash_used": fw.flash_used, "flash_total": fw.flash_total, "ram_used": fw.ram_used,
                     "ram_total": fw.ram_total, "stack_worst": fw.stack.worst, "stack_reserved": fw.stack_reserved,
                     "table": firmware.format_size_table(fw)}

    # host emulator vs PyTorch deploy vs QEMU, and speed
    texts = [run.texts[i] for i in idx_t]
    # one emulator per x86 kernel path this machine has (portable C up to the fastest);
    # the last is what `beexgen build --target host` makes
    line_max = line_max_for(texts)
    rec["line_max"] = line_max
    exes = {name: build_mod.build_host(art, bdir / ("host-" + name), isa=name, line_max=line_max)
            for name in build_mod.host_isa_levels()}
    exe = list(exes.values())[-1]
    parsed = device_replies(f"exec:{exe}", texts)
    host_full = device_replies(f"exec:{exe}", texts, policy=("none", []))
    if any(isinstance(p, Exception) for p in parsed + host_full):
        raise RuntimeError(f"{ds}: the host emulator refused test sentences: "
                           f"{[str(p) for p in parsed if isinstance(p, Exception)][:3]}")
    depth_ref = res_t.depth(artifact.Policy[art.policy["name"].upper()], art.policy["thresholds"])
    cls_ref, logit_ref = res_t.at_exit(depth_ref)
    same = sum(p.cls == c and p.exit_depth == d and np.array_equal(np.array(p.logits, np.float32), lg)
               for p, c, d, lg in zip(parsed, cls_ref, depth_ref, logit_ref))
    rec["host_vs_pytorch_identical"] = f"{same}/{len(parsed)}"
    # Speed, full depth: SPEED_PASSES passes over the test sentences, PyTorch and each host
    # build taking turns (so a noisy neighbour slows both alike); each figure is the median
    # of its per-pass means. Every x86 kernel path this machine has is timed too (portable
    # C up to the fastest): what a user on an older CPU would see. Replies must not change.
    strip = lambda s: re.sub(r" (cost|unit)=\S+", "", s)
    passes: dict[str, list[float]] = {"torch": [], **{n: [] for n in exes}}
    torch.set_num_threads(1)
    for _ in range(SPEED_PASSES):
        passes["torch"].append(torch_batch1_us(run.model, ids_t, all_t))
        for name, path in exes.items():
            reps = device_replies(f"exec:{path}", texts, policy=("none", []))
            if any(isinstance(p, Exception) or strip(p.line) != strip(q.line) for p, q in zip(reps, host_full)):
                raise RuntimeError(f"{ds}: the host emulator's {name} path answers differently from the default build")
            passes[name].append(statistics.mean(r.cost for r in reps) / 1e3)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    med = {k: statistics.median(v) for k, v in passes.items()}
    torch_us, host_full_us = med["torch"], med[list(exes)[-1]]
    host_us = statistics.mean(p.cost for p in parsed) / 1e3
    rec["speed"] = {"host_us_policy": host_us, "host_us_full": host_full_us,
                    "torch_eager_b1_us_full": torch_us, "ratio_full": torch_us / host_full_us,
                    "host_us_full_by_isa": {n: med[n] for n in exes}, "passes": SPEED_PASSES}
    log(f"{ds}: host {host_full_us:.0f} us full depth vs PyTorch {torch_us:.0f} us")

    # QEMU (mps2-an386): instruction counts and identity with the host emulator
    qb = firmware.build_firmware(art, "mps2-an386", bdir / "mps2-an386", line_max=line_max)
    n = len(texts) if not qemu_n else min(qemu_n, len(texts))
    qp = qemu_replies(qb.elf, "mps2-an386", texts[:n])
    rec["qemu_vs_host_identical"] = f"{sum(strip(a.line) == strip(b.line) for a, b in zip(qp, parsed[:n]))}/{n}"
    cost = np.array([p.cost for p in qp], dtype=np.float64)
    dep = np.array([p.exit_depth for p in qp])
    rec["m4"] = {"n": n, "mean": float(cost.mean()), "p95": float(np.percentile(cost, 95)),
                 "unit": qp[0].unit,
                 "by_depth": {int(d): float(cost[dep == d].mean()) for d in sorted(set(dep.tolist()))},
                 "cycles_ms_at_100mhz": [float(cost.mean() * c / 1e5) for c in CYCLES_PER_INSTR]}
    # per-stage profile (unicorn on the same firmware, summing to QEMU's cost=) on the
    # first PROFILE_N test sentences, and the int8 peer's estimate for this model
    from beexgen.codegen import m4bench
    prof = m4bench.profile(qb.elf, texts[:PROFILE_N], board="mps2-an386", work_dir=bdir / "profile")
    rec["m4_profile"] = {k: int(round(v)) for k, v in prof["stages"].items()}
    rec["m4_profile_meta"] = {k: prof[k] for k in ("total", "cost_mean", "tokens_mean", "exit_depth_mean")
                              if k in prof} | {"sentences": min(PROFILE_N, len(texts))}
    rec["int8"] = m4bench.int8_estimate(art, tokens=float(np.mean(len_t)), blocks=cfg["n_blocks"])
    # whole-model instructions per binary MAC (all layers, floats included), full depth
    rec["m4"]["instr_per_bmac_all"] = float(cost.mean() / np.mean([p.bmacs for p in qp]))
    log(f"{ds}: M4 {rec['m4']['mean'] / 1e6:.2f} M instr/sentence mean; QEMU==host {rec['qemu_vs_host_identical']}")
    return rec


# --------------------------------------------------------------------------- cores

# One QEMU board per Cortex-M core (codegen/boards/*.toml); `python -m beexgen.bench
# --cores RUN` runs this block alone over an existing run.
CORE_BOARDS = ("microbit", "mps2-an385", "mps2-an386", "mps2-an500", "mps2-an505", "mps3-an547")


def cores_bench(run_dir: Path, work: Path, n: int | None = None, core_boards=CORE_BOARDS) -> dict:
    """The run's default model on every core: for each board of core_boards the firmware
    build (flash, RAM) and, when it fits, QEMU -icount instructions per sentence over the
    first n test sentences (all by default) and how many replies equal the host
    emulator's; when it does not fit, the build's reason. The "cores" key of docs/bench.json."""
    from beexgen.core import artifact
    from beexgen.codegen import boards, build as build_mod, firmware
    from beexgen.train.trainer import load_run

    run = load_run(run_dir)
    art = artifact.load(Path(run_dir) / "artifact")
    _, _, idx_t = run.part("test")
    texts = [run.texts[i] for i in idx_t]
    texts = texts[:n] if n else texts
    line_max = line_max_for(texts)
    exe = build_mod.build_host(art, Path(work) / "host", line_max=line_max)
    host = device_replies(f"exec:{exe}", texts)
    strip = lambda s: re.sub(r" (cost|unit)=\S+", "", s)   # noqa: E731
    out = {}
    for name in core_boards:
        b = boards.get_board(name)
        rec = {"board": name, "float_abi": "hard" if b.cpu.hard_float else "soft",
               "flash_total": b.flash.length, "ram_total": b.ram.length, "dataset": Path(run_dir).name}
        try:
            fw = firmware.build_firmware(art, name, Path(work) / name, line_max=line_max)
        except firmware.FirmwareTooBig as e:
            rec.update(fits=False, flash_bytes=e.build.flash_used, ram_bytes=e.build.ram_used,
                       reason="; ".join(e.build.problems()), instructions_mean=None, qemu_equals_host=None)
            log(f"cores: {b.core} ({name}) does not fit: {rec['reason']}")
            out[b.core] = rec
            continue
        t0 = time.time()
        qp = qemu_replies(fw.elf, name, texts)
        same = sum(not isinstance(a, Exception) and strip(a.line) == strip(h.line) for a, h in zip(qp, host))
        cost = np.array([p.cost for p in qp if not isinstance(p, Exception)], dtype=np.float64)
        rec.update(fits=True, flash_bytes=fw.flash_used, ram_bytes=fw.ram_used, stack_worst=fw.stack.worst,
                   instructions_mean=int(round(cost.mean())), instructions_p95=int(round(np.percentile(cost, 95))),
                   qemu_equals_host=[int(same), len(texts)], seconds=round(time.time() - t0, 1))
        log(f"cores: {b.core} ({name}) {cost.mean() / 1e6:.2f} M instr/sentence, QEMU==host {same}/{len(texts)}")
        out[b.core] = rec
    return out


def cores_markdown(cores: dict) -> str:
    """The per-core table (README, between <!-- bench-cores:begin/end --> markers)."""
    first = next(iter(cores.values()))
    L = [f"The default model ({first['dataset']}) on every Cortex-M core QEMU emulates: instructions per "
         "test sentence under `-icount` (default exit policy), the firmware's flash and RAM "
         "(statics + reserved stack), and how many replies equal the host emulator's:", "",
         "| core | board | float | instructions / sentence (mean, p95) | flash | RAM | QEMU == host |",
         "|---|---|---|---|---|---|---|"]
    for core, r in cores.items():
        size = f"{r['flash_bytes'] / 1024:.0f} KB | {r['ram_bytes'] / 1024:.0f} KB"
        if r["fits"]:
            L.append(f"| {core} | {r['board']} | {r['float_abi']} | {r['instructions_mean'] / 1e6:.2f} M "
                     f"({r['instructions_p95'] / 1e6:.2f} M) | {size} | {r['qemu_equals_host'][0]}/{r['qemu_equals_host'][1]} |")
        else:
            L.append(f"| {core} | {r['board']} | {r['float_abi']} | does not fit: {r['reason']} | {size} | - |")
    return "\n".join(L) + "\n"


# --------------------------------------------------------------------------- tables

def _pct(x): return f"{100 * x:.1f}"


def _ci(r, key) -> str:
    lo, hi = r["wilson95"][key]
    return f"{_pct(r['accuracy'][key])} [{_pct(lo)}-{_pct(hi)}]"


def _exit_name(e: int) -> str:
    return "0 (wide)" if e == 0 else str(e)


def markdown(results: list[dict], meta: dict, kernel: dict) -> str:
    L = []
    L.append(f"Measured by `{meta['command']}` on {meta['machine']} ({meta['date']}, "
             f"{meta['minutes']:.1f} min). Test split of each data set (seeded 80/10/10, "
             "stratified; seed 0 unless a row says otherwise); thresholds calibrated on the validation "
             "split; [a-b] is the 95 % Wilson interval.")
    L.append("")
    L.append("| | " + " | ".join(r["dataset"] for r in results) + " |")
    L.append("|---|" + "---|" * len(results))
    row = lambda name, f: L.append(f"| {name} | " + " | ".join(f(r) for r in results) + " |")
    row("**accuracy, shipped model, default policy** ", lambda r: f"**{_ci(r, 'default_policy')}**")
    row("accuracy, shipped model, full depth", lambda r: _ci(r, "full_depth"))
    row("bag-of-words LR (binary words) / TF-IDF uni+bigram LR (C tuned)",
        lambda r: f"{_ci(r, 'bow_lr')} / {_ci(r, 'tfidf_lr')}")
    row("mean of 3 seeds: shipped (default policy) / BoW LR / TF-IDF LR",
        lambda r: " / ".join(_pct(r["seed_mean"][k]) for k in ("default_policy", "bow", "tfidf")))
    row("per seed 0, 1, 2: shipped (default policy)",
        lambda r: ", ".join(_pct(v["default_policy"]) for v in r["seeds"].values()))
    for name, cell in bench_accuracy.table_rows(results):
        row(name, cell)
    row("paper's architecture (--no-wide): full depth / its default policy",
        lambda r: f"{_ci(r, 'paper_model')} / {_pct(r['accuracy']['paper_default_policy'])}")
    row("full-precision twin (same wide exit in float32), final exit", lambda r: _ci(r, "twin"))
    row("accuracy by exit (" + ", ".join(_exit_name(e) for e in range(results[0]["first_exit"],
                                                                     results[0]["first_exit"] + len(results[0]["exit_acc"])))
        + ")", lambda r: " / ".join(_pct(a) for a in r["exit_acc"]))
    row("default policy (calibrated)", lambda r: f"{r['policies']['default']['policy']} "
        + ",".join(f"{t:.3g}" for t in r["policies"]["default"]["thresholds"]))
    row("sentences leaving at each exit, default policy",
        lambda r: " / ".join(str(h) for h in r["policies"]["default"]["depth_hist"]))
    row("**compute saved vs full depth, default policy**",
        lambda r: f"**{100 * (1 - r['policies']['default']['ops_rel']):.0f} %**")
    def pol(r, p):
        a, n = r["policies"][p]["accuracy"], r["n"]
        lo, hi = wilson(a, n)
        return f"{_pct(a)} [{_pct(lo)}-{_pct(hi)}] / {100 * (1 - r['policies'][p]['ops_rel']):.0f} %"
    for p in [p for p in results[0]["policies"] if p != "default"]:
        row(f"{p} policy: accuracy / compute saved", lambda r, p=p: pol(r, p))
    row("test texts longer than seq_max (head + tail) / line buffer of the bench's builds",
        lambda r: f"{r['default_eval']['over_seq_max']} / {r['line_max']} B")
    row("artifact bytes, shipped (paper model) [twin, ratio]",
        lambda r: f"{r['size']['artifact']['total'] / 1024:.0f} KB ({r['paper_size'] / 1024:.0f} KB) "
                  f"[{r['size']['fp32_twin_bytes'] / 1024:.0f} KB, {r['size']['ratio']:.1f}x]")
    row("bag-of-words LR bytes fp32 / int8", lambda r: f"{r['bow']['bytes_fp32'] / 1024:.0f} / {r['bow']['bytes_int8'] / 1024:.0f} KB")
    row("nucleo-f411re flash / RAM / stack",
        lambda r: f"{r['nucleo']['flash_used'] / 1024:.0f} / {r['nucleo']['ram_used'] / 1024:.0f} KB / {r['nucleo']['stack_worst']} B")
    row("M4 instructions / sentence, mean (p95)",
        lambda r: f"{r['m4']['mean'] / 1e6:.2f} M ({r['m4']['p95'] / 1e6:.2f} M)")
    row("M4 instructions by exit",
        lambda r: ", ".join(f"{d}: {v / 1e6:.2f} M" for d, v in r["m4"]["by_depth"].items()))
    row("est. ms / sentence at 100 MHz", lambda r: "{:.1f}-{:.1f}".format(*r["m4"]["cycles_ms_at_100mhz"]))
    row("host emulator us / sentence, full depth", lambda r: f"{r['speed']['host_us_full']:.0f}")
    row("PyTorch eager batch-1 us / sentence, full depth", lambda r: f"{r['speed']['torch_eager_b1_us_full']:.0f}")
    row("speed-up of the C over PyTorch", lambda r: f"{r['speed']['ratio_full']:.0f}x")
    from beexgen.codegen.build import HOST_ISA_NAMES
    isa_names = [n for n in HOST_ISA_NAMES if all(n in r["speed"].get("host_us_full_by_isa", {}) for r in results)]
    if isa_names:
        by = lambda r, n: r["speed"]["host_us_full_by_isa"][n]
        row(f"speed-up over PyTorch by x86 path ({' / '.join(isa_names)})",
            lambda r: " / ".join(f"{r['speed']['torch_eager_b1_us_full'] / by(r, n):.0f}x" for n in isa_names))
    row("C == PyTorch (class, exit, logits bits)", lambda r: r["host_vs_pytorch_identical"])
    row("QEMU firmware == host emulator (replies)", lambda r: r["qemu_vs_host_identical"])
    L.append("")
    shapes = list(kernel["binary_instr_per_32_macs"])
    L.append("Binary linear kernel on the model's shapes, whole calls on the M4 (mps2-an386 build, "
             "counted in unicorn), beside CMSIS-DSP's `arm_mat_vec_mult_q7` (the int8 peer) on the same shapes:")
    L.append("")
    L.append("| shape (in x out) | " + " | ".join(shapes) + " |")
    L.append("|---|" + "---|" * len(shapes))
    L.append("| binary, instructions per 32 MACs (default / DSP / portable C) | " + " | ".join(
        f"{kernel['binary_instr_per_32_macs'][s]:.2f} / {kernel['dsp_instr_per_32_macs'][s]:.2f} / "
        f"{kernel['portable_instr_per_32_macs'][s]:.2f}" for s in shapes) + " |")
    L.append("| binary, instructions per call | " + " | ".join(f"{kernel['binary_instr'][s]:,}" for s in shapes) + " |")
    L.append("| CMSIS-DSP q7, instructions per call | " + " | ".join(f"{kernel['cmsis_dsp_q7_instr'][s]:,}" for s in shapes) + " |")
    L.append("| **q7 / binary** | " + " | ".join(f"**{kernel['q7_over_binary'][s]:.1f}x**" for s in shapes) + " |")
    L.append("")
    stages = list(results[0]["m4_profile"])
    L.append(f"M4 instructions per sentence by stage (default model and policy, mean over the first "
             f"{PROFILE_N} test sentences; the stages sum to the firmware's `cost=`):")
    L.append("")
    L.append("| stage | " + " | ".join(r["dataset"] for r in results) + " |")
    L.append("|---|" + "---|" * len(results))
    for st in stages:
        L.append(f"| {st} | " + " | ".join(f"{r['m4_profile'].get(st, 0):,}" for r in results) + " |")
    L.append("| **total (= mean cost=)** | " + " | ".join(f"**{sum(r['m4_profile'].values()):,}**" for r in results) + " |")
    L.append("| int8 peer (same shapes, q7 matrix products only) | " + " | ".join(
        f"{r['int8']['instr_per_sentence']:,.0f} ({r['int8']['flash_bytes'] / 1024:.0f} KB flash)" for r in results) + " |")
    L.append(f"Cycle estimate: {CYCLE_NOTE}. Compute = float ops + binary MACs / 64 (beexgen/core/cost.py).")
    return "\n".join(L) + "\n"


def kernel_bench(work: Path) -> dict:
    """The binary linear kernel on the model's shapes (portable and DSP paths), whole
    calls, and CMSIS-DSP's q7 peer on the same shapes and board (codegen/m4bench.py)."""
    from beexgen.codegen import m4bench
    k = m4bench.kernel_figures(work_dir=work / "binary")
    q = m4bench.q7_figures(binary=k, work_dir=work / "q7")
    log("kernel: " + ", ".join(f"{s} {v:.2f}" for s, v in k["binary_instr_per_32_macs"].items())
        + " instructions per 32 binary MACs; q7 / binary " + ", ".join(f"{v:.1f}x" for v in q["q7_over_binary"].values()))
    return {**k, **q}


def bench_json(results: list[dict], meta: dict, kernel: dict) -> dict:
    """docs/bench.json: the README table's figures for machines, from the same run as the table
    (each key is written here only; the README's bench section says what each measures)."""
    def pct(x): return round(100 * float(x), 2)
    out = {"meta": meta, "datasets": {}, "kernel": kernel, "cores": {
        "cortex-m4": {"board": "mps2-an386", "instructions_mean": int(round(results[0]["m4"]["mean"])),
                      "flash_bytes": int(results[0]["nucleo"]["flash_used"]),
                      "ram_bytes": int(results[0]["nucleo"]["ram_used"]),
                      "qemu_equals_host": [int(x) for x in results[0]["qemu_vs_host_identical"].split("/")]}}}
    for r in results:
        a, e0 = r["accuracy"], r["first_exit"]
        hist = r["policies"]["default"]["depth_hist"]
        nb = lambda s: [int(x) for x in s.split("/")]  # noqa: E731
        out["datasets"][r["dataset"]] = {
            "accuracy_default_policy": pct(a["default_policy"]), "accuracy_full_depth": pct(a["full_depth"]),
            "accuracy_paper_model": pct(a["paper_model"]), "accuracy_twin": pct(a["twin"]),
            "accuracy_bow_lr": pct(a["bow_lr"]), "accuracy_tfidf_lr": pct(a["tfidf_lr"]),
            "wilson95": {k: [pct(lo), pct(hi)] for k, (lo, hi) in r["wilson95"].items()},
            "seed_mean": {k: None if v is None else pct(v) for k, v in r["seed_mean"].items()},
            "seeds": {s: {k: (v if k == "n" or v is None else pct(v)) for k, v in d.items()}
                      for s, d in r["seeds"].items()},
            **bench_accuracy.json_keys(r["acc19"]),
            "default_policy": {"name": r["policies"]["default"]["policy"],
                               "thresholds": r["policies"]["default"]["thresholds"]},
            "artifact_bytes": int(r["size"]["artifact"]["total"]), "twin_bytes": int(r["size"]["fp32_twin_bytes"]),
            "paper_model_bytes": int(r["paper_size"]),
            "compute_saved_default_policy": round(1 - r["policies"]["default"]["ops_rel"], 4),
            "exit_histogram": {str(e0 + i): int(h) for i, h in enumerate(hist)},
            "m4_instructions_mean": int(round(r["m4"]["mean"])), "m4_instructions_p95": int(round(r["m4"]["p95"])),
            "m4_by_exit": {str(k): int(round(v)) for k, v in r["m4"]["by_depth"].items()},
            "m4_profile": r["m4_profile"], "m4_profile_sentences": r["m4_profile_meta"]["sentences"],
            "int8_peer_instructions_estimate": int(round(r["int8"]["instr_per_sentence"])),
            "int8_peer_flash_bytes": int(r["int8"]["flash_bytes"]),
            "host_us_per_sentence": round(r["speed"]["host_us_full"], 2),
            "pytorch_us_per_sentence": round(r["speed"]["torch_eager_b1_us_full"], 2),
            "host_speedup": round(r["speed"]["ratio_full"], 2),
            "c_equals_pytorch": nb(r["host_vs_pytorch_identical"]),
            "qemu_equals_host": nb(r["qemu_vs_host_identical"]),
            "texts_over_seq_max": int(r["default_eval"]["over_seq_max"]),
        }
    return out


def update_readme(readme: Path, md: str, tag: str = "bench") -> None:
    text = readme.read_text()
    a, b = f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"
    if a not in text or b not in text:
        raise SystemExit(f"{readme}: no {a} ... {b} markers")
    head, rest = text.split(a, 1)
    _, tail = rest.split(b, 1)
    readme.write_text(head + a + "\n" + md + b + tail)


def main(datasets=None, out="runs/bench", reuse=True, epochs=None, qemu_n=None, readme=None,
         jobs: int = 2, json_out: str | None = "docs/bench.json") -> dict:
    from beexgen.train.data import OFFLINE
    datasets = list(datasets or OFFLINE)             # every offline data set by default
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    train_times = ensure_runs(datasets, out, reuse, epochs, jobs)
    results = [bench_dataset(ds, out, qemu_n=qemu_n) for ds in datasets]
    kernel = kernel_bench(out / "kernels")
    meta = {"command": "beexgen bench" + ("" if not qemu_n else f" --qemu-n {qemu_n}"),
            "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.processor() or platform.platform()}",
            "date": time.strftime("%Y-%m-%d"), "minutes": round((time.time() - t0) / 60, 1),
            "commit": _commit(), "train_seconds": {k: round(v) for k, v in train_times.items()}}
    md = markdown(results, meta, kernel)
    doc = bench_json(results, meta, kernel)
    doc["cores"] = cores = cores_bench(out / datasets[0], out / "cores")
    (out / "bench.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2,
                                               default=bench_accuracy.json_default) + "\n")
    (out / "bench.md").write_text(md + "\n" + "\n\n".join(f"### {r['dataset']}: nucleo-f411re\n```\n{r['nucleo']['table']}\n```" for r in results) + "\n")
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(doc, indent=2, default=float) + "\n")
    if readme:
        update_readme(Path(readme), md)
        update_readme(Path(readme), cores_markdown(cores), tag="bench-cores")
    print(md)
    return {"meta": meta, "results": results}


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent.parent).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def cores_main(argv=None) -> None:
    """python -m beexgen.bench --cores RUN [--n N] [--work DIR] [--json docs/bench.json] [--readme README.md]:
    the per-core block alone over an existing run; merges its "cores" into the JSON file."""
    import click

    @click.command()
    @click.option("--cores", "run_dir", required=True, type=click.Path(exists=True, file_okay=False),
                  help="A bench run directory (e.g. runs/bench/rotten_tomatoes); only read.")
    @click.option("--n", type=int, help="Test sentences per core [all].")
    @click.option("--work", default="runs/bench/cores", show_default=True, type=click.Path(file_okay=False),
                  help="Where the builds go.")
    @click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Merge into this bench.json.")
    @click.option("--readme", type=click.Path(exists=True, dir_okay=False),
                  help="Write the table between this file's <!-- bench-cores:begin/end --> markers.")
    def cmd(run_dir, n, work, json_out, readme):
        cores = cores_bench(Path(run_dir), Path(work), n=n)
        if json_out:
            p = Path(json_out)
            doc = json.loads(p.read_text()) if p.is_file() else {}
            doc["cores"] = cores
            p.write_text(json.dumps(doc, indent=2, default=float) + "\n")
        md = cores_markdown(cores)
        if readme:
            update_readme(Path(readme), md, tag="bench-cores")
        print(md)

    cmd.main(args=argv, prog_name="python -m beexgen.bench", standalone_mode=True)


if __name__ == "__main__":
    cores_main()
