"""Exit statistics and exit rules, in the exact float32 arithmetic of the C.

Per exit b (0-based) the C computes from the exit's logits l (C,):
    m = max_c l_c;  e_c = exp(l_c - m);  Z = sum_c e_c (in order)
    p_c = e_c / Z;  log p_c = (l_c - m) - log Z
    H_b = -sum_c p_c log p_c (in order: H = H - p_c * log p_c)
    conf_b = p_cls, cls = first index of max l_c

The exit rules (Policy, decide, n_thresholds) live in beexgen/core/policy.py.
"""
from __future__ import annotations

import numpy as np
import torch

from beexgen.core.policy import Policy, decide, n_thresholds  # noqa: F401  (re-exported)

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


def prior_entropy(labels, n_classes: int) -> float:
    """Entropy (nats) of the class frequencies of `labels`, as a float32 value."""
    p = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes) / max(1, len(labels))
    p = p[p > 0]
    return float(np.float32(-(p * np.log(p)).sum()))
