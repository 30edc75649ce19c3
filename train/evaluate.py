"""`beexgen eval`: accuracy of every exit and under the exit policy, compute, size.

All numbers come from the deploy-mode forward of the artifact (what the C runs),
on the run's test split. Compute follows beexgen/core/cost.py; "relative" is against
running every block on the same sentences.
"""
from __future__ import annotations

import json

import numpy as np

from beexgen.core import artifact as art_mod
from beexgen.core import cost

from . import deploy
from .model import BEExformer, ModelConfig


def fp32_bytes(cfg: dict, vocab_bytes: int) -> int:
    """Size of the full-precision twin: every parameter in float32, plus the vocabulary."""
    fp = dict(cfg, binary=False)
    n = sum(p.numel() for p in BEExformer(ModelConfig(**fp)).parameters())
    return 4 * n + vocab_bytes


def evaluate(art: art_mod.Artifact, ids: list[list[int]], labels: np.ndarray,
             policy: dict | None = None, res: deploy.DeployResult | None = None,
             all_ids: list[list[int]] | None = None) -> dict:
    """ids: block input ids; all_ids: every tokenizer id of each text (default ids[1:])."""
    policy = policy or art.policy
    if res is None:
        res = deploy.run(deploy.DeployModel(art), ids, all_ids)
    cfg = art.config
    depth = res.depth(art_mod.Policy[policy["name"].upper()], policy["thresholds"])
    pred, _ = res.at_exit(depth)
    lengths = np.array([len(s) for s in ids])
    n_ids = np.array([len(a) for a in all_ids]) if all_ids is not None else lengths - 1
    n_blocks = cfg["n_blocks"]
    bm_full, fl_full = np.array([cost.sentence_cost(cfg, n, n_blocks, k) for n, k in zip(lengths, n_ids)]).T
    bm, fl = np.array([cost.sentence_cost(cfg, n, d, k) for n, d, k in zip(lengths, depth, n_ids)]).T
    size = art.size_report()
    twin = fp32_bytes(cfg, size["vocab"])
    return {
        "n": int(len(labels)),
        "first_exit": res.first_exit,
        "exits": res.exits,                        # the exit number e of each exit_acc / depth_hist column
        "exit_acc": [float(a) for a in (res.cls == labels[:, None]).mean(0)],
        "policy": policy,
        "policy_acc": float((pred == labels).mean()),
        "mean_depth": float(depth.mean()),
        "depth_hist": [int((depth == e).sum()) for e in res.exits],
        "over_seq_max": int((n_ids > cfg["seq_max"] - 1).sum()),
        "mean_ids_over": float(n_ids[n_ids > cfg["seq_max"] - 1].mean()) if (n_ids > cfg["seq_max"] - 1).any() else 0.0,
        "bmacs": float(bm.mean()), "flops": float(fl.mean()),
        "ops_rel": float(cost.ops(bm, fl).sum() / cost.ops(bm_full, fl_full).sum()),
        "size": size, "fp32_twin_bytes": twin, "size_ratio": twin / size["total"],
    }


def format_report(rep: dict, title: str = "", twin_acc: list[float] | None = None) -> str:
    exits = rep["exits"]
    n_exits, n_blocks = len(exits), exits[-1]
    names = ["0 (wide)" if e == 0 else str(e) for e in exits]
    lines = [f"## {title}" if title else "", "",
             f"test sentences: {rep['n']}; {rep.get('over_seq_max', 0)} longer than seq_max "
             f"(mean {rep.get('mean_ids_over', 0):.0f} ids; the blocks see head + tail, the wide exit every id)", "",
             "| exit | " + " | ".join(names) + " |",
             "|---|" + "---|" * n_exits,
             "| accuracy (binarized) | " + " | ".join(f"{a:.4f}" for a in rep["exit_acc"]) + " |"]
    if twin_acc:
        lines.append("| accuracy (full-precision twin) | " + " | ".join(f"{a:.4f}" for a in twin_acc) + " |")
    lines.append("| sentences leaving here | " + " | ".join(str(h) for h in rep["depth_hist"]) + " |")
    p = rep["policy"]
    thr = ", ".join(f"{t:.4g}" for t in p["thresholds"]) or "-"
    s = rep["size"]
    int8 = f" + {s['int8']:,} int8" if s.get("int8") else ""
    lines += ["",
              "| metric | value |", "|---|---|",
              f"| exit policy | {p['name']} (thresholds {thr}) |",
              f"| accuracy under the policy | {rep['policy_acc']:.4f} |",
              f"| accuracy at full depth | {rep['exit_acc'][-1]:.4f} |",
              f"| mean exit depth | {rep['mean_depth']:.3f} of {n_blocks} |",
              f"| binary MACs / sentence | {rep['bmacs']:,.0f} |",
              f"| float ops / sentence | {rep['flops']:,.0f} |",
              f"| compute vs full depth (flops + bmacs/64) | {rep['ops_rel']:.3f} ({(1 - rep['ops_rel']) * 100:.1f} % saved) |",
              f"| artifact bytes (bits{' + int8' if int8 else ''} + floats + vocab) | {s['total']:,} "
              f"({s['bits']:,}{int8} + {s['floats']:,} + {s['vocab']:,}) |",
              f"| full-precision twin bytes (float32) | {rep['fp32_twin_bytes']:,} |",
              f"| size ratio | {rep['size_ratio']:.1f}x smaller |"]
    return "\n".join(lines).strip() + "\n"


def twin_exit_accuracy(run_dir) -> list[float]:
    """Per-exit test accuracy of a full-precision twin run (its own eval-mode forward)."""
    from .trainer import load_run, predict_exits

    run = load_run(run_dir)
    ids, y, _ = run.part("test")
    logits = predict_exits(run.model, ids, all_ids=run.all_part("test"))
    return [float(a) for a in (logits.argmax(-1) == y[:, None]).mean(0)]


def to_json(rep: dict) -> str:
    return json.dumps(rep, indent=2, default=lambda o: o.item() if hasattr(o, "item") else str(o))

