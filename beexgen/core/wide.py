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

Word features (issue 19). The words are those of the device's pre-tokenizer
(train/tokenizer.py, firmware_templates/bx_tokenizer.c): the UTF-8 text with control
bytes as ' ' and A-Z as a-z, split on runs of ' ', every ASCII punctuation character a
word of its own. A word's hash is FNV-1a over its normalised bytes, computable byte by
byte, so a streaming tokenizer never keeps the word:

    h = 2166136261;  for each byte b: h = (h ^ b) * 16777619            (uint32)

and two separate tables, so that unigrams and bigrams never collide:

    word bucket  = reduce(mix(h), Kw)                        W (Kw, C') int8
    pair bucket  = reduce(mix(h_prev * HASH_A + h), Kp)      P (Kp, C') int8
                   (the line's edges too: h_prev of the first word and h of the pair
                    after the last are FNV_OFFSET, the empty word's hash)
    reduce(x, K) = (x * K) >> 32      (64-bit product: any K, not only powers of two)

mix is murmur3's 32-bit finaliser (FNV's high bits alone mix poorly); reduce is
Lemire's multiply-shift range reduction, so the tables fill the flash budget exactly
(a power of two would waste up to half of it). The sums are

    S_c = sum_i U[t_i, c] + sum_i G[bigram_i, c] + sum_j W[word_j, c] + sum_j P[pair_j, c]

with U absent when the id bag is off (wide_ids False). C' = 1 for two classes (one
row: logits (0, z), the softmax only sees the difference) else C. All tables share one
scale per column.

This module is numpy only (the core): the trainer, the deploy mirror, codegen and the
tests take these rules from here, and the constants go into the generated C.
"""
from __future__ import annotations

import functools
import re

import numpy as np

from beexgen.core.schema import wide_columns, wide_layout

HASH_A = 0x9E3779B1          # 2^32 / golden ratio, odd
HASH_B = 0x85EBCA77          # murmur3's second multiplier, odd
INT8_MAX = 127
FNV_OFFSET = 2166136261
FNV_PRIME = 16777619
MIX_1, MIX_2 = 0x85EBCA6B, 0xC2B2AE35   # murmur3 fmix32
WIDE_BYTES_DEFAULT = 16384   # default bigram table budget (K * C bytes), see default_buckets


def default_buckets(n_classes: int, budget: int = WIDE_BYTES_DEFAULT) -> int:
    """Largest power of two K with K * n_classes <= budget (at least 256)."""
    k = 256
    while 2 * k * n_classes <= budget:
        k *= 2
    return k


BUCKET_ALIGN = 64      # word and pair buckets are multiples of this


def default_word_buckets(n_classes: int, budget: int = WIDE_BYTES_DEFAULT) -> tuple[int, int]:
    """(word, pair) buckets filling `budget` bytes: Kw C' + Kp C' <= budget with Kp = 2 Kw
    (there are more distinct pairs than words), multiples of BUCKET_ALIGN; (0, 0) when
    fewer than BUCKET_ALIGN words fit."""
    k = budget // (3 * columns(n_classes)) // BUCKET_ALIGN * BUCKET_ALIGN
    return (k, 2 * k) if k else (0, 0)


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


# --------------------------------------------------------------------------- words

_LOWER = bytes(0x20 if b < 0x20 or b == 0x7F else (b + 32 if 0x41 <= b <= 0x5A else b) for b in range(256))
_WORD = re.compile(rb"[!-/:-@\[-`{-~]|[^ !-/:-@\[-`{-~]+")
M32 = 0xFFFFFFFF


def words(text: str | bytes) -> list[bytes]:
    """The pre-tokenizer's words of a text, normalised (bx_tokenizer.c: bx_next_word)."""
    b = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    return _WORD.findall(b.translate(_LOWER))


@functools.lru_cache(maxsize=1 << 18)
def word_hash(word: bytes) -> int:
    """FNV-1a (uint32) over the word's bytes, A-Z folded to a-z (so raw and normalised
    bytes hash alike, as bx_wide_word_byte does)."""
    h = FNV_OFFSET
    for b in word:
        if 0x41 <= b <= 0x5A:
            b += 32
        h = ((h ^ b) * FNV_PRIME) & M32
    return h


def word_hashes(text: str | bytes) -> np.ndarray:
    """(n_words,) uint32: the hash of each word of the text."""
    return np.array([word_hash(w) for w in words(text)], dtype=np.uint32)


def mix(h: np.ndarray) -> np.ndarray:
    """murmur3's fmix32, elementwise in uint32."""
    h = np.asarray(h, dtype=np.uint32)
    with np.errstate(over="ignore"):
        h = h ^ (h >> np.uint32(16))
        h = h * np.uint32(MIX_1)
        h = h ^ (h >> np.uint32(13))
        h = h * np.uint32(MIX_2)
        h = h ^ (h >> np.uint32(16))
    return h


def reduce(h: np.ndarray, n_buckets: int) -> np.ndarray:
    """(h * n_buckets) >> 32 in 64-bit arithmetic: uint32 hashes -> buckets 0 .. n_buckets - 1."""
    if not 1 <= n_buckets < 2**32:
        raise ValueError(f"buckets must be in 1 .. 2^32 - 1, got {n_buckets}")
    return ((np.asarray(h, dtype=np.uint64) * np.uint64(n_buckets)) >> np.uint64(32)).astype(np.int64)


def word_buckets(hashes, n_buckets: int) -> np.ndarray:
    """(n,) word hashes -> (n,) unigram buckets."""
    return reduce(mix(hashes), n_buckets)


def pair_buckets(hashes, n_buckets: int) -> np.ndarray:
    """(n,) word hashes -> (n + 1,) buckets of consecutive word pairs, the line's edges
    included: (start, w_0), (w_0, w_1) .. (w_{n-1}, end), start and end being the hash of
    the empty word (FNV_OFFSET); none for a line without words. The edge pairs say which
    word starts and which ends the line (a question's first word tells its kind)."""
    h = np.asarray(hashes, dtype=np.uint32)
    if h.size < 1:
        return np.zeros(0, dtype=np.int64)
    edge = np.array([FNV_OFFSET], dtype=np.uint32)
    h = np.concatenate([edge, h, edge])
    with np.errstate(over="ignore"):
        return reduce(mix(h[:-1] * np.uint32(HASH_A) + h[1:]), n_buckets)


class Bag(list):
    """Every tokenizer id of a text (a list of ints) and `.words`, the uint32 hashes of its
    pre-tokenizer words: the wide exit's whole input (train/tokenizer.py encode_all)."""
    words: np.ndarray

    def __init__(self, ids, hashes):
        super().__init__(ids)
        self.words = np.asarray(hashes, dtype=np.uint32)


columns, layout = wide_columns, wide_layout    # defined once, numpy-free, in core/schema.py


def needs_words(cfg: dict) -> bool:
    return bool(cfg.get("word_buckets") or cfg.get("pair_buckets"))


def bag_rows(bag, cfg: dict) -> np.ndarray:
    """Rows of the stacked table [U; G; W; P] (layout) that one text sums."""
    ids = np.asarray(bag, dtype=np.int64)
    out, base = [], 0
    hashes = getattr(bag, "words", None)
    if needs_words(cfg) and hashes is None:
        raise ValueError("this wide exit has word features: pass the texts' Bag (tokenizer.encode_all), "
                         "not bare ids")
    for name, rows in layout(cfg):
        if name == "wide.uni":
            part = ids
        elif name == "wide.big":
            part = buckets(ids, rows)
        elif name == "wide.word":
            part = word_buckets(hashes, rows)
        else:
            part = pair_buckets(hashes, rows)
        out.append(base + part)
        base += rows
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def stack_tables(tables: dict, cfg: dict) -> np.ndarray:
    """The stacked table [U; G; W; P] (rows, C') int32 from {tensor name: int8 table}."""
    return np.concatenate([np.asarray(tables[n]) for n, _ in layout(cfg)]).astype(np.int32)


def table_sums(bag, stacked: np.ndarray, cfg: dict) -> np.ndarray:
    """S (C',) int64 of one text over the stacked int8 tables (stack_tables): the C's sums."""
    rows = bag_rows(bag, cfg)
    return stacked[rows].astype(np.int64).sum(axis=0) if rows.size else np.zeros(stacked.shape[1], np.int64)


def expand_logits(z: np.ndarray, n_classes: int) -> np.ndarray:
    """(N, C') wide outputs -> (N, C) logits: (0, z) for two classes."""
    if n_classes == 2 and z.shape[-1] == 1:
        return np.concatenate([np.zeros_like(z), z], axis=-1)
    return z
