"""Compute accounting of one sentence, shared by eval, codegen and the benchmark.

  bmacs(n, depth): binary multiply-accumulates (1-bit x 1-bit products, executed 32
                   at a time as XNOR + popcount) for n tokens and `depth` blocks.
  flops(n, depth): float32 operations: + - * / sqrt and compares count 1, exp and
                   log count 1 each, a binary layer's epilogue (alpha * dot + b) 2
                   per output.
  ops = flops + bmacs / 64: the BOPs -> FLOPs convention of Bi-Real Net and
  ReActNet, used for every "compute relative to full depth" figure.
The wide exit 0 (beexgen/core/wide.py) costs per tokenizer id C integer adds for its
unigram and, with bigrams, C for the bigram it starts (counted as flops), plus
a fixed 2 C (scale, bias) + the exit statistics; each deep exit then adds C more
(the wide logits). Exit numbers: 0 (wide) .. B; depth 0 runs no embedding and no block.
The C reports bmacs/flops from tables generated from these functions, indexed by the
block input length n and the exit, plus wide_flops_per_id x the line's id count
(never re-derived on the device); the M4 instruction count is measured separately.
"""
from __future__ import annotations

from beexgen.core.schema import expected_tensors

# numpy only inside the table and size functions: validate.py's overflow check
# (sentence_cost) runs on a host-only install too.

BOPS_PER_FLOP = 64


def layernorm_flops(d: int) -> int:
    """Float ops counted for one LayerNorm over d values (the convention: 7 per value
    for the mean, variance, normalisation, scale and shift, plus 3 for the divide and sqrt)."""
    return 7 * d + 3


def block_cost(cfg: dict, n: int) -> tuple[int, int]:
    d, f, h = cfg["d_model"], cfg["d_ff"], cfg["n_heads"]
    bm = n * (3 * d * d + d * d + d * f + f * d) + n * n * d
    fl = n * (layernorm_flops(d) + 2 * 3 * d)                  # LN1, qkv epilogue
    fl += n * (h * (4 * n + 1) + 2 * n * d + d)    # softmax, weighting of V
    fl += n * (2 * d + d)                          # out epilogue, residual
    if cfg["slfn"]:
        bm += n * 4 * d * d
        fl += n * (layernorm_flops(d) + 2 * 4 * d + 3 * 3 * d + 5 * d)
    fl += n * (layernorm_flops(d) + 2 * f + 2 * d + d)         # feed-forward
    return bm, fl


def exit_flops(cfg: dict, n: int) -> int:
    d, c = cfg["d_model"], cfg["n_classes"]
    return n * d + d + layernorm_flops(d) + 2 * d * c + c + 8 * c + (c if cfg.get("wide") else 0)


def first_exit(cfg: dict) -> int:
    """Exit number of the first exit: 0 with a wide exit, else 1."""
    return 0 if cfg.get("wide") else 1


def exits(cfg: dict) -> range:
    """The exit numbers e of a model, first_exit .. n_blocks (exit e runs e blocks)."""
    return range(first_exit(cfg), cfg["n_blocks"] + 1)


def wide_flops_per_id(cfg: dict) -> int:
    """Integer adds of the wide exit charged per tokenizer id: C' (beexgen/core/wide.py
    columns) for each table. Word and pair tables are charged per id too (a word has at
    least one id, so this bounds their adds from above, and the C needs no word count)."""
    if not cfg.get("wide"):
        return 0
    from beexgen.core.schema import wide_columns as columns     # numpy-free (a host-only install runs this)
    tables = int(cfg.get("wide_ids", True)) + sum(bool(cfg.get(k)) for k in ("bigram_buckets", "word_buckets",
                                                                            "pair_buckets"))
    return columns(cfg["n_classes"]) * tables


def sentence_cost(cfg: dict, n: int, depth: int, n_ids: int | None = None) -> tuple[int, int]:
    """(bmacs, flops) of one sentence, n block input ids ([CLS] included), leaving at exit
    `depth` (= blocks run); n_ids: tokenizer ids of the whole line (default n - 1)."""
    fl = 0
    if cfg.get("wide"):
        c = cfg["n_classes"]
        fl += wide_flops_per_id(cfg) * (n - 1 if n_ids is None else n_ids) + 2 * c + 8 * c
    if depth == 0:
        return 0, fl
    bm, fb = block_cost(cfg, n)
    return depth * bm, fl + 3 * n * cfg["d_model"] + depth * (fb + exit_flops(cfg, n))


def cost_tables(cfg: dict):
    """(bmacs, flops) uint32 tables indexed [n - 1, exit - first_exit], without the
    per-id part of the wide exit (the C adds wide_flops_per_id x ids)."""
    import numpy as np
    L, E = cfg["seq_max"], len(exits(cfg))
    bm = np.zeros((L, E), dtype=np.uint64)
    fl = np.zeros((L, E), dtype=np.uint64)
    for n in range(1, L + 1):
        for k, e in enumerate(exits(cfg)):              # column k holds exit e
            bm[n - 1, k], fl[n - 1, k] = sentence_cost(cfg, n, e, n_ids=0)
    if bm.max() >= 2**32 or fl.max() >= 2**32:
        raise ValueError("per-sentence cost does not fit in uint32")
    return bm.astype(np.uint32), fl.astype(np.uint32)


def ops(bmacs, flops):
    import numpy as np
    return np.asarray(flops, dtype=np.float64) + np.asarray(bmacs, dtype=np.float64) / BOPS_PER_FLOP


# --------------------------------------------------------------------------- size

ARTIFACT_BUDGET = 256 * 1024   # bytes of weights + vocabulary the default recipe fills at most


def artifact_bytes(cfg: dict, vocab_bytes: int) -> int:
    """Bytes of an artifact's tensors + vocabulary strings (= Artifact.size_report()
    ["total"]), from the config alone."""
    import numpy as np
    return sum(np.dtype(dt).itemsize * int(np.prod(shape)) for dt, shape in expected_tensors(cfg).values()) + vocab_bytes


def budget_word_buckets(cfg: dict, vocab_bytes: int, budget: int = ARTIFACT_BUDGET) -> tuple[int, int]:
    """(word, pair) buckets filling what the rest of the artifact leaves of `budget`
    (beexgen/core/wide.py default_word_buckets); (0, 0) when nothing is left."""
    from beexgen.core.wide import default_word_buckets
    base = artifact_bytes(dict(cfg, word_buckets=0, pair_buckets=0), vocab_bytes)
    return default_word_buckets(cfg["n_classes"], budget - base) if budget > base else (0, 0)


def budget_buckets(cfg: dict, vocab_bytes: int, budget: int = ARTIFACT_BUDGET) -> int:
    """Most bigram buckets (a power of two, or 0) that keep artifact_bytes <= budget."""
    base = artifact_bytes(dict(cfg, bigram_buckets=0), vocab_bytes)
    k = 0
    while base + 2 * max(k, 1) * cfg["n_classes"] <= budget and k < 2**24:
        k = 2 * max(k, 1)
    return k if k >= 2 else 0
