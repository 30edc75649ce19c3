"""Exit statistics and exit rules, in the exact float32 arithmetic of the C.

Per exit b (0-based) the C computes from the exit's logits l (C,):
    m = max_c l_c;  e_c = exp(l_c - m);  Z = sum_c e_c (in order)
    p_c = e_c / Z;  log p_c = (l_c - m) - log Z
    H_b = -sum_c p_c log p_c (in order: H = H - p_c * log p_c)
    conf_b = p_cls, cls = first index of max l_c

Policies (the enum is generated into C):
  NONE        run every block.
  ENTROPY     the paper's rule: after block b >= 1, exit when the fractional entropy
              reduction (H_{b-1} - H_b) / H_{b-1} < tau. Written without a division as
              (H_{b-1} - H_b) < tau * H_{b-1}. Needs two exits to compare: depth >= 2.
  CONFIDENCE  LAMA-style: exit after block b when conf_b >= t_b (t_b calibrated so the
              early exits keep the final exit's accuracy within a tolerance).
  BUDGET      EERO-style: the same max-probability test with thresholds chosen so the
              mean depth meets a compute budget.
The last block always exits.
"""
from __future__ import annotations

import numpy as np
import torch

from beexgen.artifact import Policy

from . import fmath


def exit_stats(logits: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """logits (..., C) float32 -> (cls int, conf float32, entropy float32), shape (...)."""
    logits = logits.to(torch.float32)
    m = logits.max(dim=-1).values
    sh = logits - m[..., None]
    e = fmath.bx_exp(sh)
    z = fmath.seq_sum(e)
    logz = fmath.bx_log(z)
    p = e / z[..., None]
    logp = sh - logz[..., None]
    h = torch.zeros(logits.shape[:-1], dtype=torch.float32)
    for c in range(logits.shape[-1]):
        h = h - p[..., c] * logp[..., c]
    cls = logits.argmax(dim=-1)
    conf = p.gather(-1, cls[..., None])[..., 0]
    return cls.numpy(), conf.numpy(), h.numpy()


def decide(policy: Policy | int, thresholds, conf: np.ndarray, entropy: np.ndarray) -> np.ndarray:
    """Exit depth (1-based) for each row of conf/entropy (N, E), as the C decides it."""
    policy = Policy(int(policy))
    conf = np.asarray(conf, dtype=np.float32)
    entropy = np.asarray(entropy, dtype=np.float32)
    n, n_exits = conf.shape
    thr = np.asarray(thresholds, dtype=np.float32).reshape(-1)
    take = np.zeros((n, n_exits), dtype=bool)
    take[:, -1] = True
    if policy == Policy.ENTROPY:
        if thr.size != 1:
            raise ValueError("the entropy policy takes one threshold")
        for b in range(1, n_exits - 1):
            drop = entropy[:, b - 1] - entropy[:, b]
            take[:, b] = drop < thr[0] * entropy[:, b - 1]
    elif policy in (Policy.CONFIDENCE, Policy.BUDGET):
        if thr.size != n_exits - 1:
            raise ValueError(f"the {policy.name.lower()} policy takes {n_exits - 1} thresholds (one per early exit)")
        for b in range(n_exits - 1):
            take[:, b] = conf[:, b] >= thr[b]
    return take.argmax(axis=1) + 1


def n_thresholds(policy: Policy | int, n_exits: int) -> int:
    policy = Policy(int(policy))
    return {Policy.NONE: 0, Policy.ENTROPY: 1}.get(policy, n_exits - 1)
