"""Exit statistics and exit rules, in the exact float32 arithmetic of the C.

Per exit b (0-based) the C computes from the exit's logits l (C,):
    m = max_c l_c;  e_c = exp(l_c - m);  Z = sum_c e_c (in order)
    p_c = e_c / Z;  log p_c = (l_c - m) - log Z
    H_b = -sum_c p_c log p_c (in order: H = H - p_c * log p_c)
    conf_b = p_cls, cls = first index of max l_c

Exits are numbered by the blocks run before them: 0 (the wide exit, when the model has
one), then 1 .. B. Arrays hold one column per exit, column k = exit first_exit + k.

Policies (the enum is generated into C):
  NONE        run every block.
  ENTROPY     the paper's rule: at exit e, exit when the fractional entropy reduction
              (H_{e-1} - H_e) / H_{e-1} < tau. Written without a division as
              (H_{e-1} - H_e) < tau * H_{e-1}. The first exit (exit 0 of a wide model,
              exit 1 of the paper's model) compares with H_{-1} = the entropy of the
              training split's class prior (meta.json `h_prior`), so every exit,
              exit 0 included, can be taken.
  CONFIDENCE  LAMA-style: exit at exit e when conf_e >= t_e (t_e calibrated so the
              early exits keep the final exit's accuracy within a tolerance).
  BUDGET      EERO-style: the same max-probability test with thresholds chosen so the
              mean compute meets a budget.
One threshold for ENTROPY, one per early exit (every exit but the last) for the other two.
The last exit always exits.
"""
from __future__ import annotations

import numpy as np
import torch

from beexgen.core.artifact import Policy

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


def decide(policy: Policy | int, thresholds, conf: np.ndarray, entropy: np.ndarray, *,
           first_exit: int = 1, h_prior: float = float("inf")) -> np.ndarray:
    """Exit number taken (first_exit .. first_exit + E - 1) for each row of conf/entropy
    (N, E), as the C decides it. h_prior: H_{-1} of the entropy rule (float32); the
    default, infinity, never takes the first exit (a drop from infinity is never small)."""
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
        prev = np.full(n, np.float32(h_prior), dtype=np.float32)
        with np.errstate(invalid="ignore"):      # inf - inf, inf * 0: NaN compares false, as in C
            for b in range(n_exits - 1):
                drop = prev - entropy[:, b]
                take[:, b] = drop < thr[0] * prev
                prev = entropy[:, b]
    elif policy in (Policy.CONFIDENCE, Policy.BUDGET):
        if thr.size != n_exits - 1:
            raise ValueError(f"the {policy.name.lower()} policy takes {n_exits - 1} thresholds (one per early exit)")
        for b in range(n_exits - 1):
            take[:, b] = conf[:, b] >= thr[b]
    return take.argmax(axis=1) + first_exit


def prior_entropy(labels, n_classes: int) -> float:
    """Entropy (nats) of the class frequencies of `labels`, as a float32 value."""
    p = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes) / max(1, len(labels))
    p = p[p > 0]
    return float(np.float32(-(p * np.log(p)).sum()))


def n_thresholds(policy: Policy | int, n_exits: int) -> int:
    policy = Policy(int(policy))
    return {Policy.NONE: 0, Policy.ENTROPY: 1}.get(policy, n_exits - 1)
