"""Research script: issue 11 item 4, does a pretrained teacher make the deep part useful?

Trains the default recipe and teacher variants of it on several seeds (each seed is its
own split), exports each run, evaluates the deploy mirror on the test split and prints a
markdown table: test accuracy at the default exit policy (as export_run calibrates it) and
at the final exit, per seed and the mean. A finished run (RUNS/<variant>_s<seed>/
result.json) is reused, so the script can be rerun or run piecewise in parallel.

    python scripts/ablate_teacher.py --runs /tmp/wt11t_runs --variants base distill --seeds 0 1 2
    python scripts/ablate_teacher.py --runs /tmp/wt11t_runs --table     # the table of what is there

All variants share one teacher cache file (RUNS/teacher_<dataset>.safetensors), so the
teacher embeds each text once over all seeds and variants. Embedding the data set and a
seed's transfer set beforehand (python -m beexgen.train.teacher DATASET CACHE --seed S
--transfer K) keeps that cost out of the training times reported here.

Threads: one torch thread per process; run two processes at most on the 2-core machine.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

VARIANTS = {
    "base": {},                                       # the default recipe (wide exit 0 + 2 blocks)
    "distill": {"distill": 1.0},                      # representation distillation, cosine, weight 1
    "distill0.3": {"distill": 0.3},
    "transfer": {"transfer": 5},                      # 5 teacher-labelled augmented copies per text
    "transfer+distill": {"transfer": 5, "distill": 1.0},
    # the wide exit's own design choices (docs/ABLATIONS.md, "The wide exit")
    "no-prefit": {"wide_prefit": False},              # the wide table trained from zero with the rest
    "wide-frozen": {"wide_lr": 0.0},                  # the pre-fitted wide exit left as it is
    "deep-alone": {"deep_alone": 1.0},                # each deep head also trained without the wide logits
    "one-block": {"model": {"n_blocks": 1}},          # 1 block, twice the bigram buckets in the same budget
}


def run_one(dataset: str, runs: Path, variant: str, seed: int) -> dict:
    import torch
    torch.set_num_threads(1)
    from beexgen.core.artifact import Policy
    from beexgen.train import deploy
    from beexgen.train.export import export_run
    from beexgen.train.trainer import TrainConfig, load_run, train

    out = runs / f"{dataset}_{variant}_s{seed}"
    res_path = out / "result.json"
    if res_path.is_file():
        return json.loads(res_path.read_text())
    over = dict(VARIANTS[variant])
    if over:
        over["teacher_cache"] = str(runs / f"teacher_{dataset}.safetensors")
    t0 = time.time()
    train(TrainConfig(dataset=dataset, out=str(out), seed=seed, **over), progress=False)
    train_s = time.time() - t0
    art = export_run(out)
    run = load_run(out)
    ids, y, _ = run.part("test")
    res = deploy.run(deploy.DeployModel(art), ids, run.all_part("test"))
    exit_acc = (res.cls == y[:, None]).mean(0)
    depth = res.depth(Policy[art.policy["name"].upper()], art.policy["thresholds"])
    policy_acc = float((res.at_exit(depth)[0] == y).mean())
    rec = {"dataset": dataset, "variant": variant, "seed": seed, "config": over,
           "train_s": round(train_s), "exit_acc": [round(float(a), 4) for a in exit_acc],
           "final_acc": round(float(exit_acc[-1]), 4), "policy": art.policy["name"],
           "thresholds": art.policy["thresholds"], "policy_acc": round(policy_acc, 4),
           "exit_hist": np.bincount(res.column(depth), minlength=res.conf.shape[1]).tolist(),
           "n_test": int(len(y))}
    res_path.write_text(json.dumps(rec) + "\n")
    return rec


def table(runs: Path) -> str:
    recs = [json.loads(p.read_text()) for p in sorted(runs.glob("*_s*/result.json"))]
    rows = {}
    for r in recs:
        rows.setdefault((r["dataset"], r["variant"]), []).append(r)
    order = list(VARIANTS)
    lines = ["| data set | variant | seeds | policy acc: mean (per seed) | final exit acc: mean (per seed) "
             "| exits 0/1/2 acc (mean) | train s (mean) |",
             "|---|---|---|---|---|---|---|"]
    for (ds, var), rs in sorted(rows.items(), key=lambda kv: (kv[0][0], order.index(kv[0][1]) if kv[0][1] in order else 99)):
        rs = sorted(rs, key=lambda r: r["seed"])
        pol = [100 * r["policy_acc"] for r in rs]
        fin = [100 * r["final_acc"] for r in rs]
        ex = np.mean([r["exit_acc"] for r in rs], axis=0) * 100
        per = lambda v: ", ".join(f"s{r['seed']} {a:.1f}" for r, a in zip(rs, v))
        lines.append(f"| {ds} | {var} | {len(rs)} | **{np.mean(pol):.2f}** ({per(pol)}) | **{np.mean(fin):.2f}** ({per(fin)}) "
                     f"| {' / '.join(f'{a:.1f}' for a in ex)} | {np.mean([r['train_s'] for r in rs]):.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="runs/ablate_teacher", type=Path)
    ap.add_argument("--dataset", default="rotten_tomatoes")
    ap.add_argument("--variants", nargs="*", default=["base", "distill", "transfer"], choices=list(VARIANTS))
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--table", action="store_true", help="only print the table of the finished runs")
    a = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    a.runs.mkdir(parents=True, exist_ok=True)
    if not a.table:
        for seed in a.seeds:
            for v in a.variants:
                r = run_one(a.dataset, a.runs, v, seed)
                print(json.dumps(r), flush=True)
    print(table(a.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
