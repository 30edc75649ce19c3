"""`beexgen eval`: accuracy of every exit and under the exit policy, compute, size.

All numbers come from the deploy-mode forward of the artifact (what the C runs),
on the run's test split. Compute follows beexgen/cost.py; "relative" is against
running every block on the same sentences.
"""
from __future__ import annotations

import json

import numpy as np

from beexgen import artifact as art_mod
from beexgen import cost

from . import deploy
from .model import BEExformer, ModelConfig


def fp32_bytes(cfg: dict, vocab_bytes: int) -> int:
    """Size of the full-precision twin: every parameter in float32, plus the vocabulary."""
    fp = dict(cfg, binary=False)
    n = sum(p.numel() for p in BEExformer(ModelConfig(**fp)).parameters())
    return 4 * n + vocab_bytes


def evaluate(art: art_mod.Artifact, ids: list[list[int]], labels: np.ndarray,
             policy: dict | None = None, res: deploy.DeployResult | None = None) -> dict:
    policy = policy or art.policy
    if res is None:
        res = deploy.run(deploy.DeployModel(art), ids)
    cfg = art.config
    depth = res.depth(art_mod.Policy[policy["name"].upper()], policy["thresholds"])
    pred, _ = res.at_exit(depth)
    lengths = np.array([len(s) for s in ids])
    bm_full, fl_full = np.array([cost.sentence_cost(cfg, n, cfg["n_blocks"]) for n in lengths]).T
    bm, fl = np.array([cost.sentence_cost(cfg, n, d) for n, d in zip(lengths, depth)]).T
    size = art.size_report()
    twin = fp32_bytes(cfg, size["vocab"])
    return {
        "n": int(len(labels)),
        "exit_acc": [float(a) for a in (res.cls == labels[:, None]).mean(0)],
        "policy": policy,
        "policy_acc": float((pred == labels).mean()),
        "mean_depth": float(depth.mean()),
        "depth_hist": [int((depth == d).sum()) for d in range(1, cfg["n_blocks"] + 1)],
        "bmacs": float(bm.mean()), "flops": float(fl.mean()),
        "ops_rel": float(cost.ops(bm, fl).sum() / cost.ops(bm_full, fl_full).sum()),
        "size": size, "fp32_twin_bytes": twin, "size_ratio": twin / size["total"],
    }


def format_report(rep: dict, title: str = "", twin_acc: list[float] | None = None) -> str:
    B = len(rep["exit_acc"])
    lines = [f"## {title}" if title else "", "",
             f"test sentences: {rep['n']}", "",
             "| exit | " + " | ".join(str(b + 1) for b in range(B)) + " |",
             "|---|" + "---|" * B,
             "| accuracy (binarized) | " + " | ".join(f"{a:.4f}" for a in rep["exit_acc"]) + " |"]
    if twin_acc:
        lines.append("| accuracy (full-precision twin) | " + " | ".join(f"{a:.4f}" for a in twin_acc) + " |")
    lines.append("| sentences leaving here | " + " | ".join(str(h) for h in rep["depth_hist"]) + " |")
    p = rep["policy"]
    thr = ", ".join(f"{t:.4g}" for t in p["thresholds"]) or "-"
    s = rep["size"]
    lines += ["",
              "| metric | value |", "|---|---|",
              f"| exit policy | {p['name']} (thresholds {thr}) |",
              f"| accuracy under the policy | {rep['policy_acc']:.4f} |",
              f"| accuracy at full depth | {rep['exit_acc'][-1]:.4f} |",
              f"| mean exit depth | {rep['mean_depth']:.3f} of {B} |",
              f"| binary MACs / sentence | {rep['bmacs']:,.0f} |",
              f"| float ops / sentence | {rep['flops']:,.0f} |",
              f"| compute vs full depth (flops + bmacs/64) | {rep['ops_rel']:.3f} ({(1 - rep['ops_rel']) * 100:.1f} % saved) |",
              f"| artifact bytes (bits + floats + vocab) | {s['total']:,} ({s['bits']:,} + {s['floats']:,} + {s['vocab']:,}) |",
              f"| full-precision twin bytes (float32) | {rep['fp32_twin_bytes']:,} |",
              f"| size ratio | {rep['size_ratio']:.1f}x smaller |"]
    return "\n".join(lines).strip() + "\n"


def twin_exit_accuracy(run_dir) -> list[float]:
    """Per-exit test accuracy of a full-precision twin run (its own eval-mode forward)."""
    from .trainer import load_run, predict_exits

    run = load_run(run_dir)
    ids, y, _ = run.part("test")
    logits = predict_exits(run.model, ids)
    return [float(a) for a in (logits.argmax(-1) == y[:, None]).mean(0)]


def to_json(rep: dict) -> str:
    return json.dumps(rep, indent=2, default=lambda o: o.item() if hasattr(o, "item") else str(o))

