"""Exit-policy calibration on the validation split (never the test split).

entropy (the paper's rule): one threshold tau on the fractional entropy reduction.
    Candidates are the observed reductions (every distinct decision) plus 0 and 1.
    The choice maximises validation accuracy, subject to an optional compute ceiling
    (mean ops relative to full depth); among thresholds whose accuracy is within
    `tolerance` of that maximum, the cheapest is taken.
"""
from __future__ import annotations

import numpy as np

from beexgen.core.artifact import Policy

from .policies import compute_fraction, ops_table


def sweep_entropy(cfg, res, labels, lengths, candidates=None):
    """[(tau, accuracy, ops_rel, mean_depth)] for each candidate threshold."""
    if candidates is None:
        h = res.entropy.astype(np.float64)
        h = np.concatenate([np.full((h.shape[0], 1), res.h_prior), h], axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = (h[:, :-1] - h[:, 1:]) / h[:, :-1]
        frac = np.clip(frac[np.isfinite(frac)], -1.0, 1.0)   # beyond +-1 nothing changes but the look
        qs = np.quantile(frac, np.linspace(0, 1, 101)) if frac.size else np.array([])
        candidates = np.unique(np.concatenate([[0.0, 1.0], qs, np.linspace(-0.5, 1.0, 31)]))
    rows = []
    table = ops_table(cfg, lengths)
    for tau in candidates:
        depth = res.depth(Policy.ENTROPY, [tau])
        pred = res.at_exit(depth)[0]
        rows.append((float(np.float32(tau)), float((pred == labels).mean()),
                     compute_fraction(table, depth, res.first_exit), float(depth.mean())))
    return rows


def calibrate_entropy(cfg, res, labels, lengths, *, ceiling: float | None = None,
                      tolerance: float = 0.005) -> dict:
    rows = sweep_entropy(cfg, res, labels, lengths)
    ok = [r for r in rows if ceiling is None or r[2] <= ceiling]
    if not ok:
        raise ValueError(f"no entropy threshold meets the compute ceiling {ceiling}: the cheapest "
                         f"reaches {min(r[2] for r in rows):.3f} of full depth ")
    best = max(r[1] for r in ok)
    tau, acc, rel, depth = min((r for r in ok if r[1] >= best - tolerance), key=lambda r: (r[2], -r[1]))
    return {"name": "entropy", "thresholds": [tau],
            "calibration": {"split": "val", "accuracy": acc, "ops_rel": rel, "mean_depth": depth,
                            "ceiling": ceiling, "tolerance": tolerance}}
