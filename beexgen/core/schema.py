"""The artifact's schema, once: file names, format version, every config field with its
type and range, every tensor with its dtype and shape, and the bounds on meta.json and
the weights. beexgen/core/validate.py checks an artifact against it; cost.py sizes an
artifact from it; codegen reads expected_tensors from it.

The schema is data, so a new part of the model is a few table entries:
- a config field: add it to CONFIG_FIELDS (type, range) and, if it relates to others,
  a line in validate.py `_check_config`;
- new tensors: write a function `config -> {name: (dtype, shape)}` and append it to
  TENSOR_PARTS. `expected_tensors(config)` is the union of those parts; the artifact's
  tensors must be exactly that set, each with that dtype and shape.

Pure Python, importing nothing of beexgen: no cycle in beexgen/core.
"""
from __future__ import annotations

import math

FORMAT_NAME = "beexgen-artifact"
FORMAT_VERSION = 3   # 2: wide exit 0 (int8 tensors, h_prior), head + tail of long texts; 3: word tables
META, WEIGHTS, TOKENIZER = "meta.json", "weights.safetensors", "tokenizer.json"
U32, F32, I8 = "uint32", "float32", "int8"
from beexgen.core.policy import F32_MAX  # noqa: E402  (defined once, with the policies)
from beexgen.core.wordpiece import SPECIAL_IDS  # noqa: E402  (defined once, with the tokens)
UINT32_LIMIT = 2 ** 32
SPECIAL_KEYS = tuple(SPECIAL_IDS)      # meta.json special_ids: exactly these token ids (pad, unk, cls)

# Bounds on meta.json itself, checked before any field is read (a deeply nested or huge
# file is refused without recursing into it).
META_MAX_BYTES = 1 << 20        # 1 MiB: the largest real meta.json is a few KB
META_MAX_DEPTH = 8              # objects and lists nested at most this deep (the real one: 3)
SAFETENSORS_MAX_HEADER = 1 << 24   # bytes of a safetensors JSON header
SAFETENSORS_MAX_DIMS = 4        # a tensor of the model has 1 or 2 dimensions
TOKENIZER_MAX_BYTES = 64 << 20  # tokenizer.json: a 1M-piece vocabulary fits
TOKENIZER_MAX_DEPTH = 12        # the real one nests 6 deep (normalizer Sequence -> Replace -> pattern)
# Largest magnitude a float weight may have: a trained model's largest is a few hundred;
# at 3e38 every float op overflows to inf and the device reports NaN confidences.
WEIGHT_ABS_MAX = 1e6

# --------------------------------------------------------------------------- the schema

def words(cols: int) -> int:
    """uint32 words of a packed row of `cols` signs."""
    return (cols + 31) // 32


# config field -> (type, min, max); bools are their own type (JSON true is not 1 here)
CONFIG_FIELDS: dict[str, tuple[type, float, float]] = {
    "vocab_size": (int, 4, 1 << 20),
    "n_classes": (int, 2, 4096),
    "d_model": (int, 1, 8192),
    "n_heads": (int, 1, 1024),
    "d_ff": (int, 1, 65536),
    "n_blocks": (int, 1, 256),
    "seq_max": (int, 2, 8192),
    "binary": (bool, 0, 1),
    "slfn": (bool, 0, 1),
    "dropout": (float, 0.0, 1.0),
    "wide": (bool, 0, 1),
    "bigram_buckets": (int, 0, 1 << 24),
    "wide_ids": (bool, 0, 1),
    "word_buckets": (int, 0, 1 << 24),
    "pair_buckets": (int, 0, 1 << 24),
}


def _embed(c: dict) -> dict:
    d, V, L = c["d_model"], c["vocab_size"], c["seq_max"]
    return {"embed.tok.bits": (U32, (V, words(d))), "embed.tok.scale": (F32, (d,)),
            "embed.pos.bits": (U32, (L, words(d))), "embed.pos.scale": (F32, (d,))}


def _binlin(name: str, n_out: int, n_in: int) -> dict:
    return {name + ".bits": (U32, (n_out, words(n_in))), name + ".alpha": (F32, (n_out,)),
            name + ".bias": (F32, (n_out,))}


def _blocks(c: dict) -> dict:
    d, f, h = c["d_model"], c["d_ff"], c["n_heads"]
    out = {}
    for b in range(c["n_blocks"]):
        p = f"blocks.{b}."
        for ln in ("ln1", "ln2", "ln3"):
            out[p + ln + ".weight"] = (F32, (d,))
            out[p + ln + ".bias"] = (F32, (d,))
        out[p + "tau"] = (F32, (h,))
        out.update(_binlin(p + "qkv", 3 * d, d))
        out.update(_binlin(p + "out", d, d))
        if c["slfn"]:
            out.update(_binlin(p + "slfn", 4 * d, d))
        out.update(_binlin(p + "up", f, d))
        out.update(_binlin(p + "down", d, f))
    return out


def _exits(c: dict) -> dict:
    d, C = c["d_model"], c["n_classes"]
    out = {}
    for b in range(c["n_blocks"]):
        p = f"exits.{b}."
        out.update({p + "ln.weight": (F32, (d,)), p + "ln.bias": (F32, (d,)),
                    p + "fc.weight": (F32, (C, d)), p + "fc.bias": (F32, (C,))})
    return out


def wide_columns(n_classes: int) -> int:
    """Columns of the wide tables (beexgen/core/wide.py): one for two classes (logits
    (0, z)), else one per class."""
    return 1 if n_classes == 2 else n_classes


def wide_layout(cfg: dict) -> list[tuple[str, int]]:
    """The wide tables in the order of the stacked table [U; G; W; P] (beexgen/core/wide.py):
    (tensor name, rows), the empty ones left out."""
    parts = [("wide.uni", cfg["vocab_size"] if cfg.get("wide_ids", True) else 0),
             ("wide.big", cfg.get("bigram_buckets") or 0),
             ("wide.word", cfg.get("word_buckets") or 0),
             ("wide.pair", cfg.get("pair_buckets") or 0)]
    return [(n, r) for n, r in parts if r] if cfg.get("wide") else []


def _wide(c: dict) -> dict:
    """The wide exit 0 (beexgen/core/wide.py): int8 tables, one float scale and bias per column."""
    if not c["wide"]:
        return {}
    cols = wide_columns(c["n_classes"])
    out = {name: (I8, (rows, cols)) for name, rows in wide_layout(c)}
    out.update({"wide.scale": (F32, (cols,)), "wide.bias": (F32, (cols,))})
    return out


# Each part: config -> {tensor name: (dtype, shape)}. A new part of the model appends one.
TENSOR_PARTS = [_embed, _blocks, _exits, _wide]


def expected_tensors(config: dict) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Every tensor an artifact of this (already checked) config holds: name -> (dtype, shape)."""
    out: dict = {}
    for part in TENSOR_PARTS:
        for name, spec in part(config).items():
            if name in out:
                raise ValueError(f"tensor {name} defined by two parts of TENSOR_PARTS")
            out[name] = spec
    return out


def n_exits(c: dict) -> int:
    return c["n_blocks"] + (1 if c["wide"] else 0)


# --------------------------------------------------------------------------- ranges
# A range rule is (lo, hi) or (lo, hi, "open_lo" | "open_hi" | "open"): the settings
# (train/config.py), the calibration options (core/policy.py) and the CLI's number type use it.

def in_range(v, rule: tuple) -> bool:
    """v (a finite number, not a bool) within rule = (lo, hi[, "open_lo" | "open_hi" | "open"])."""
    lo, hi, *o = rule
    o = o[0] if o else ""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not math.isfinite(v)):
        return False
    ok_lo = v > lo if o in ("open_lo", "open") else v >= lo
    ok_hi = v < hi if o in ("open_hi", "open") else v <= hi
    return ok_lo and ok_hi


def range_text(rule: tuple) -> str:
    lo, hi, *o = rule
    o = o[0] if o else ""
    return f"{'(' if o in ('open_lo', 'open') else '['}{lo:g}, {hi:g}{')' if o in ('open_hi', 'open') else ']'}"
