"""Compute accounting of one sentence, shared by eval, codegen and the benchmark.

  bmacs(n, depth): binary multiply-accumulates (1-bit x 1-bit products, executed 32
                   at a time as XNOR + popcount) for n tokens and `depth` blocks.
  flops(n, depth): float32 operations: + - * / sqrt and compares count 1, exp and
                   log count 1 each, a binary layer's epilogue (alpha * dot + b) 2
                   per output.
  ops = flops + bmacs / 64: the BOPs -> FLOPs convention of Bi-Real Net and
  ReActNet, used for every "compute relative to full depth" figure.
The C reports bmacs/flops from tables generated from these functions (never
re-derived on the device); the M4 instruction count is measured separately.
"""
from __future__ import annotations

import numpy as np

BOPS_PER_FLOP = 64


def _ln(d: int) -> int:
    return 7 * d + 3


def block_cost(cfg: dict, n: int) -> tuple[int, int]:
    d, f, h = cfg["d_model"], cfg["d_ff"], cfg["n_heads"]
    bm = n * (3 * d * d + d * d + d * f + f * d) + n * n * d
    fl = n * (_ln(d) + 2 * 3 * d)                  # LN1, qkv epilogue
    fl += n * (h * (4 * n + 1) + 2 * n * d + d)    # softmax, weighting of V
    fl += n * (2 * d + d)                          # out epilogue, residual
    if cfg["slfn"]:
        bm += n * 4 * d * d
        fl += n * (_ln(d) + 2 * 4 * d + 3 * 3 * d + 5 * d)
    fl += n * (_ln(d) + 2 * f + 2 * d + d)         # feed-forward
    return bm, fl


def exit_flops(cfg: dict, n: int) -> int:
    d, c = cfg["d_model"], cfg["n_classes"]
    return n * d + d + _ln(d) + 2 * d * c + c + 8 * c


def sentence_cost(cfg: dict, n: int, depth: int) -> tuple[int, int]:
    """(bmacs, flops) of one sentence of n tokens leaving after `depth` blocks."""
    bm, fl = block_cost(cfg, n)
    return depth * bm, 3 * n * cfg["d_model"] + depth * (fl + exit_flops(cfg, n))


def cost_tables(cfg: dict) -> tuple[np.ndarray, np.ndarray]:
    """(bmacs, flops) uint32 tables indexed [n - 1, depth - 1]."""
    L, B = cfg["seq_max"], cfg["n_blocks"]
    bm = np.zeros((L, B), dtype=np.uint64)
    fl = np.zeros((L, B), dtype=np.uint64)
    for n in range(1, L + 1):
        for depth in range(1, B + 1):
            bm[n - 1, depth - 1], fl[n - 1, depth - 1] = sentence_cost(cfg, n, depth)
    if bm.max() >= 2**32 or fl.max() >= 2**32:
        raise ValueError("per-sentence cost does not fit in uint32")
    return bm.astype(np.uint32), fl.astype(np.uint32)


def ops(bmacs, flops):
    return np.asarray(flops, dtype=np.float64) + np.asarray(bmacs, dtype=np.float64) / BOPS_PER_FLOP
