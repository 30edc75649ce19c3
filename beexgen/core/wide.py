"""The wide exit 0 and long-text handling: integer rules shared by train, codegen and C.

Wide exit 0 (the "wide" half of wide-and-deep, Cheng et al. 2016, as the zeroth exit):
a linear head over the bag of the line's tokenizer ids t_0 .. t_{k-1} ([CLS] not
included, every token of the line, also those past seq_max) and, optionally, over
hashed bigrams of consecutive ids:

    S_c    = sum_i U[t_i, c] + sum_{i < k-1} G[bucket(t_i, t_{i+1}), c]     (int32)
    wide_c = scale_c * float32(S_c) + bias_c                                 (float32)

U (V, C) and G (K, C) are int8, scale and bias (C,) float32. S_c is an exact integer
everywhere (|S_c| <= 2 * 127 * k, far below 2^24, so its float32 conversion is exact
too), so C and PyTorch agree bit for bit: one multiply and one add in float32. The
wide logits are exit 0, and they are added (float32, after the head's own bias) to
every deep exit's logits, so the blocks learn what the bag of words misses.

bucket(a, b): multiplicative hashing in uint32 arithmetic (wrap-around mod 2^32):
    h = (a * HASH_A + b) * HASH_B;   bucket = h >> (32 - log2 K)     (K a power of 2)

Long texts (more than seq_max - 1 tokenizer ids): the blocks see [CLS] followed by the
first `head` ids and the last `tail` ids, head = (seq_max - 1) // 2, tail = the rest
("head + tail" truncation, Sun et al. 2019, "How to Fine-Tune BERT for Text
Classification?", their best method for long reviews); positions are 0 .. seq_max - 1.
The wide exit still counts every id.

This module is numpy only (the core): the trainer, the deploy mirror, codegen and the
tests take these rules from here, and the constants go into the generated C.
"""
from __future__ import annotations

import numpy as np

HASH_A = 0x9E3779B1          # 2^32 / golden ratio, odd
HASH_B = 0x85EBCA77          # murmur3's second multiplier, odd
INT8_MAX = 127
WIDE_BYTES_DEFAULT = 16384   # default bigram table budget (K * C bytes), see default_buckets


def default_buckets(n_classes: int, budget: int = WIDE_BYTES_DEFAULT) -> int:
    """Largest power of two K with K * n_classes <= budget (at least 256)."""
    k = 256
    while 2 * k * n_classes <= budget:
        k *= 2
    return k


def log2_exact(k: int) -> int:
    if k < 1 or k & (k - 1):
        raise ValueError(f"bigram buckets must be a power of two, got {k}")
    return k.bit_length() - 1


def buckets(ids, n_buckets: int) -> np.ndarray:
    """Bigram buckets of consecutive ids (k,) -> (k - 1,) int64, in uint32 arithmetic."""
    shift = 32 - log2_exact(n_buckets)
    a = np.asarray(ids, dtype=np.uint32)
    if a.size < 2:
        return np.zeros(0, dtype=np.int64)
    with np.errstate(over="ignore"):
        h = (a[:-1] * np.uint32(HASH_A) + a[1:]) * np.uint32(HASH_B)
    if shift == 32:
        return np.zeros(a.size - 1, dtype=np.int64)
    return (h >> np.uint32(shift)).astype(np.int64)


def integer_sums(ids, uni: np.ndarray, big: np.ndarray | None) -> np.ndarray:
    """S (C,) int64 of one line: the exact integer sums the C accumulates."""
    ids = np.asarray(ids, dtype=np.int64)
    s = uni[ids].astype(np.int64).sum(axis=0) if ids.size else np.zeros(uni.shape[1], np.int64)
    if big is not None and ids.size >= 2:
        s = s + big[buckets(ids, big.shape[0])].astype(np.int64).sum(axis=0)
    return s


def feature_rows(ids, vocab_size: int, n_buckets: int) -> np.ndarray:
    """Rows of the stacked table [U; G] that one line sums: its ids, then V + bigram buckets."""
    ids = np.asarray(ids, dtype=np.int64)
    if not n_buckets:
        return ids
    return np.concatenate([ids, vocab_size + buckets(ids, n_buckets)])


def head_tail(ids: list[int], keep: int) -> list[int]:
    """At most `keep` ids of a line: all of them, or the first keep // 2 and the last rest."""
    if len(ids) <= keep:
        return list(ids)
    head = keep // 2
    return list(ids[:head]) + list(ids[len(ids) - (keep - head):])


def quantize(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float (rows, C) -> (int8 codes (rows, C), per-class scale (C,) float32):
    scale_c = max_r |w_rc| / 127 (1 where a column is all zero), codes round-half-even.
    U and G share one scale per class (they are summed as integers): quantize [U; G]."""
    w = np.asarray(w, dtype=np.float32)
    m = np.abs(w).max(axis=0) if w.size else np.zeros(w.shape[1], np.float32)
    scale = np.where(m > 0, m / np.float32(INT8_MAX), np.float32(1.0)).astype(np.float32)
    q = np.clip(np.rint(w / scale), -INT8_MAX, INT8_MAX).astype(np.int8)
    return q, scale
