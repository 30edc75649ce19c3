"""The bench's driver: train what is missing, run every stage on every data set, write
docs/bench.json and the README from the stages' dataclasses (record.py, readme.py)."""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from beexgen.bench import accuracy, cores, kernels, latency, m4, parity, policies, size, speed
from beexgen.bench import tune as bench_tune
from beexgen.bench.common import SEEDS, log, run_dirs
from beexgen.bench.record import Bench, DatasetBench, Meta
from beexgen.bench import readme as readme_mod


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

    from beexgen.bench.paired import default_train_budget
    from beexgen.codegen.boards import DEFAULT_BOARD
    kw = {"epochs": epochs} if epochs else {}
    kw["size_budget"] = default_train_budget(DEFAULT_BOARD)     # as `beexgen train --board` sets it
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


@dataclass
class DatasetContext:
    """A data set's seed-0 run, loaded once and read by every stage (not written)."""
    run: object
    art: object
    ids_t: list
    y_t: np.ndarray
    all_t: list
    len_t: np.ndarray
    nid_t: np.ndarray
    res_t: object
    y_v: np.ndarray
    len_v: np.ndarray
    res_v: object
    texts: list[str]
    report: dict               # train/evaluate.py evaluate() on test, default policy
    tfidf: dict
    twin_exit_acc: list[float]


def load_context(run_dir: Path) -> DatasetContext:
    from beexgen.core import artifact
    from beexgen.train import deploy, evaluate
    from beexgen.train.config import TWIN_DIR
    from beexgen.train.trainer import load_run

    run = load_run(run_dir)
    art = artifact.load(run_dir / "artifact")
    ids_t, y_t, idx_t = run.part("test")
    ids_v, y_v, _ = run.part("val")
    all_t, all_v = run.all_part("test"), run.all_part("val")
    dm = deploy.DeployModel(art)
    res_t, res_v = deploy.run(dm, ids_t, all_t), deploy.run(dm, ids_v, all_v)
    return DatasetContext(
        run=run, art=art, ids_t=ids_t, y_t=y_t, all_t=all_t, len_t=np.array([len(s) for s in ids_t]),
        nid_t=np.array([len(a) for a in all_t]), res_t=res_t, y_v=y_v, len_v=np.array([len(s) for s in ids_v]),
        res_v=res_v, texts=[run.texts[i] for i in idx_t],
        report=evaluate.evaluate(art, ids_t, y_t, res=res_t, all_ids=all_t),
        tfidf=accuracy.tfidf_lr(run), twin_exit_acc=evaluate.twin_exit_accuracy(run_dir / TWIN_DIR))


def bench_dataset(ds: str, out: Path, *, qemu_n: int | None) -> DatasetBench:
    ctx = load_context(out / ds)
    bow = accuracy.bag_of_words(ctx.run)                 # fitted once, read by accuracy and size
    acc = accuracy.measure(ds, out, ctx, bow)
    log(f"{ds}: accuracy done (default policy {acc.accuracy_default_policy} %, twin {acc.accuracy_twin} %)")
    pol = policies.measure(ds, out, ctx)
    sz = size.measure(ds, out, ctx, bow)
    bdir = out / ds / "build"
    host = parity.host_run(ctx, bdir)
    sp = speed.measure(ctx, host)
    dev = m4.measure(ctx, bdir, qemu_n)
    par = parity.measure(ctx, host, dev.replies)
    lat = latency.measure(ctx, bdir, dev.elf, [p.cost for p in dev.replies])
    log(f"{ds}: QEMU==host {par.qemu_equals_host}, C==PyTorch {par.c_equals_pytorch}")
    return DatasetBench(accuracy=acc, policies=pol, size=sz, m4=dev, speed=sp, parity=par, latency=lat)


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def main(datasets=None, out="runs/bench", reuse=True, epochs=None, qemu_n=None, readme=None,
         jobs: int = 2, json_out: str | None = "docs/bench.json") -> Bench:
    from beexgen.train.data import OFFLINE
    datasets = list(datasets or OFFLINE)             # every offline data set by default
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    train_times = ensure_runs(datasets, out, reuse, epochs, jobs)
    results = {ds: bench_dataset(ds, out, qemu_n=qemu_n) for ds in datasets}
    kernel = kernels.measure(out / "kernels")
    core = cores.measure(out / datasets[0], out / "cores")
    meta = Meta(command="beexgen bench" + ("" if not qemu_n else f" --qemu-n {qemu_n}"),
                machine=f"{platform.machine()} {os.cpu_count()} cores, {platform.processor() or platform.platform()}",
                date=time.strftime("%Y-%m-%d"), minutes=round((time.time() - t0) / 60, 1), commit=_commit(),
                train_seconds={k: round(v) for k, v in train_times.items()})
    tuned = None
    if bench_tune.DATASET in datasets:     # the fixed-budget `beexgen tune` (a finished study in OUT/tune is reused)
        tuned = bench_tune.run(out, default_run=out / bench_tune.DATASET, jobs=jobs)
    if tuned is not None and tuned.plot and json_out:    # the README shows the Pareto plot: it goes beside bench.json
        plot = Path(json_out).parent / "tune_pareto_ms.png"
        shutil.copyfile(tuned.plot, plot)
        tuned.plot = plot.as_posix()
    b = Bench(meta=meta, datasets=results, kernel=kernel, cores=core, tune=tuned)
    # the README renders what docs/bench.json stores (its rounded figures), not the unrounded
    # ones: a value like 86.45 must not print 86.4 in the table and 86.5 from the file
    b = Bench.from_json(json.loads(json.dumps(b.to_json())))
    b.write(out / "bench.json")
    md = readme_mod.table(b)
    (out / "bench.md").write_text(md + "\n" + "\n\n".join(
        f"### {ds}: {r.size.board}\n```\n{r.size.board_table}\n```" for ds, r in results.items()) + "\n")
    if json_out:
        b.write(json_out)
    if readme:
        readme_mod.write(Path(readme), b)
    print(md)
    return b


def cores_main(argv=None) -> None:
    """python -m beexgen.bench --cores RUN [--n N] [--work DIR] [--json docs/bench.json] [--readme README.md]:
    the per-core stage alone over an existing run; replaces "cores" in the JSON file."""
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
        p = Path(json_out) if json_out else None
        b = Bench.read(p) if p and p.is_file() else Bench()
        b.cores = cores.measure(Path(run_dir), Path(work), n=n)
        if p:
            b.write(p)
        md = readme_mod.cores_table(b)
        if readme:
            readme_mod.update_readme(Path(readme), md, tag="bench-cores")
        print(md)

    cmd.main(args=argv, prog_name="python -m beexgen.bench", standalone_mode=True)
