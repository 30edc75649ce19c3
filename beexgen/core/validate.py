"""Artifact validation: every field, dimension, count and type of an artifact checked
against the format's schema and against each other, before any C is generated.

`validate(meta, tensors, tokenizer_json)` is the one check. `beexgen.core.artifact.load` calls
it (so `beexgen build`, `eval`, `emulate` and everything else that loads an artifact get
it), `artifact.save` calls it before writing (a buggy exporter is caught at the source),
and `beexgen-infer --artifact` calls it through `check_dir`, which also recomputes the
content hash. A failure is one `ArtifactError` whose message names the field:

    runs/x/artifact: meta.json config.n_heads = 3 does not divide config.d_model = 64

The schema is data, so a new part of the model is a few table entries:
- a config field: add it to CONFIG_FIELDS (type, range) and, if it relates to others,
  a line in `_check_config`;
- new tensors: write a function `config -> {name: (dtype, shape)}` and append it to
  TENSOR_PARTS. `expected_tensors(config)` is the union of those parts; the artifact's
  tensors must be exactly that set, each with that dtype and shape.

Pure Python (json, hashlib, struct, math): `beexgen-infer --artifact` runs it without
numpy. Given numpy arrays (as `load` does), the values are checked too: float tensors
finite, the padding bits of packed rows zero (the numerics contract). The tokenizer JSON
must be the pipeline the C reproduces (core/wordpiece.py).
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import struct
from pathlib import Path

from beexgen.core.policy import NAMES as POLICY_NAMES, n_thresholds

FORMAT_NAME = "beexgen-artifact"
FORMAT_VERSION = 3   # 2: wide exit 0 (int8 tensors, h_prior), head + tail of long texts; 3: word tables
META, WEIGHTS, TOKENIZER = "meta.json", "weights.safetensors", "tokenizer.json"
U32, F32, I8 = "uint32", "float32", "int8"
F32_MAX = 3.4028234663852886e38
UINT32_LIMIT = 2 ** 32
_HASH = re.compile(r"[0-9a-f]{64}\Z")


class ArtifactError(ValueError):
    """An artifact that cannot be used: missing, corrupt, tampered, inconsistent or of
    another version. The message is one line naming the file or field."""


# --------------------------------------------------------------------------- content hash

def canonical_meta(meta: dict) -> bytes:
    return json.dumps({k: v for k, v in meta.items() if k != "hash"},
                      sort_keys=True, separators=(",", ":")).encode()


def content_hash(meta: dict, weights_bytes: bytes, tokenizer_bytes: bytes) -> str:
    """sha256 over the canonical meta.json without `hash`, the weights and the tokenizer
    bytes, each preceded by its length (8 bytes, little endian)."""
    h = hashlib.sha256()
    for part in (canonical_meta(meta), weights_bytes, tokenizer_bytes):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


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
    """The wide exit 0 (beexgen/core/wide.py): int8 tables, one float scale and bias per class."""
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


# --------------------------------------------------------------------------- the check

def _fail(where: str, msg: str):
    raise ArtifactError(f"{where}: {msg}")


def _typed(v, typ: type) -> bool:
    if typ is bool:
        return isinstance(v, bool)
    if typ is int:
        return isinstance(v, int) and not isinstance(v, bool)
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


_KIND = {int: "an integer", bool: "a boolean", float: "a finite number"}


def _check_config(c, where: str) -> None:
    if not isinstance(c, dict):
        _fail(where, f"meta.json config must be an object, not {type(c).__name__}")
    for key, (typ, lo, hi) in CONFIG_FIELDS.items():
        if key not in c:
            _fail(where, f"meta.json config.{key} is missing")
        v = c[key]
        if not _typed(v, typ):
            _fail(where, f"meta.json config.{key} = {v!r} is not {_KIND[typ]}")
        if typ is not bool and not lo <= v <= hi:
            _fail(where, f"meta.json config.{key} = {v!r} is outside [{lo}, {hi}]")
    if not c["binary"]:
        _fail(where, "meta.json config.binary = false: only a binarized model deploys (this is the "
                     "full-precision twin)")
    if c["d_model"] % c["n_heads"]:
        _fail(where, f"meta.json config.n_heads = {c['n_heads']} does not divide config.d_model = {c['d_model']}")
    k = c["bigram_buckets"]
    if k and (not c["wide"] or k < 2 or k & (k - 1)):
        _fail(where, f"meta.json config.bigram_buckets = {k} is not 0 or a power of two >= 2 with config.wide")
    for name in ("word_buckets", "pair_buckets"):
        if c[name] and not c["wide"]:
            _fail(where, f"meta.json config.{name} = {c[name]} without config.wide")
    if c["wide"] and not wide_layout(c):
        _fail(where, "meta.json config: a wide exit without tables (wide_ids false and no buckets)")
    try:
        from beexgen.core import cost
    except ImportError:                 # host-only install: no numpy
        return
    bm, fl = cost.sentence_cost(c, c["seq_max"], c["n_blocks"])
    if bm >= UINT32_LIMIT or fl >= UINT32_LIMIT:
        _fail(where, f"meta.json config: a {c['seq_max']}-token sentence costs {bm:,} bmacs and {fl:,} "
                     "flops, beyond the device's 32-bit counters (reduce config.seq_max or d_model)")


def _check_classes(meta: dict, c: dict, where: str) -> None:
    from beexgen.core.protocol import wire_label
    cl = meta.get("classes")
    if not isinstance(cl, list) or not all(isinstance(x, str) and x for x in cl):
        _fail(where, "meta.json classes must be a list of non-empty strings")
    if len(cl) != c["n_classes"]:
        _fail(where, f"meta.json classes has {len(cl)} names, config.n_classes = {c['n_classes']}")
    seen: dict[str, str] = {}
    for x in cl:
        w = wire_label(x)
        if w in seen:
            _fail(where, f"meta.json classes {seen[w]!r} and {x!r} are both sent as {w!r}: rename one")
        seen[w] = x


def _check_policy(meta: dict, c: dict, where: str) -> None:
    p = meta.get("exit_policy")
    if not isinstance(p, dict) or not isinstance(p.get("name"), str):
        _fail(where, "meta.json exit_policy must be an object with a name")
    name, thr = p["name"], p.get("thresholds")
    if name not in POLICY_NAMES:
        _fail(where, f"meta.json exit_policy.name = {name!r} is not one of {', '.join(POLICY_NAMES)}")
    if not isinstance(thr, list):
        _fail(where, "meta.json exit_policy.thresholds must be a list")
    want = n_thresholds(name, n_exits(c))
    if len(thr) != want:
        _fail(where, f"meta.json exit_policy.thresholds has {len(thr)} values, the {name} policy with "
                     f"{n_exits(c)} exits takes {want}")
    h = meta.get("h_prior")
    if not _typed(h, float) or h < 0 or h > F32_MAX:
        _fail(where, f"meta.json h_prior = {h!r} is not a finite float >= 0 (the class prior's entropy)")
    for i, t in enumerate(thr):
        if not _typed(t, float) or t < 0 or t > F32_MAX:
            _fail(where, f"meta.json exit_policy.thresholds[{i}] = {t!r} is not a finite float32 >= 0")


def _check_special(meta: dict, c: dict, where: str) -> None:
    sp = meta.get("special_ids", {"pad": 0, "unk": 1, "cls": 2})
    if not isinstance(sp, dict):
        _fail(where, "meta.json special_ids must be an object")
    for k, v in sp.items():
        if not _typed(v, int) or not 0 <= v < c["vocab_size"]:
            _fail(where, f"meta.json special_ids.{k} = {v!r} is not a token id below config.vocab_size")


def _check_tokenizer(tokenizer_json, c: dict, where: str) -> None:
    try:
        d = json.loads(tokenizer_json)
    except (ValueError, UnicodeDecodeError) as e:
        _fail(where, f"{TOKENIZER} is not valid JSON ({e})")
    vocab = (d.get("model") or {}).get("vocab") if isinstance(d, dict) else None
    if not isinstance(vocab, dict) or not vocab:
        _fail(where, f"{TOKENIZER} has no model.vocab")
    if len(vocab) != c["vocab_size"]:
        _fail(where, f"{TOKENIZER} has {len(vocab)} vocabulary entries, config.vocab_size = {c['vocab_size']}")
    from beexgen.core.wordpiece import check_tokenizer
    try:
        check_tokenizer(d)
    except ValueError as e:
        _fail(where, f"{TOKENIZER}: {e}")


def _spec(t) -> tuple[str, tuple[int, ...]]:
    if isinstance(t, tuple):
        return t[0], tuple(t[1])
    return str(t.dtype), tuple(int(n) for n in t.shape)


_DIM_FIELDS = ("vocab_size", "seq_max", "n_classes", "d_model", "d_ff", "n_heads")


def _behind(shape: tuple, c: dict) -> str:
    """The config fields a tensor shape is made of, for the message: `config.d_model = 96`."""
    made = {"d_model": lambda v: (v, words(v), 3 * v, 4 * v), "d_ff": lambda v: (v, words(v))}
    names = [f"config.{k} = {c[k]}" for k in _DIM_FIELDS
             if any(n in made.get(k, lambda v: (v,))(c[k]) for n in shape)]
    return ", ".join(names) if names else "the config"


def _check_tensors(tensors: dict, c: dict, where: str) -> None:
    want = expected_tensors(c)
    missing = sorted(want.keys() - tensors.keys())
    extra = sorted(tensors.keys() - want.keys())
    if missing:
        _fail(where, f"{WEIGHTS} lacks tensor {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1
                                                              else "") + " that the config calls for")
    if extra:
        _fail(where, f"{WEIGHTS} has tensor {extra[0]}" + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
              + " that the config does not call for")
    for name in sorted(want):
        got = _spec(tensors[name])
        if got != want[name]:
            _fail(where, f"{WEIGHTS} tensor {name} is {got[0]} {list(got[1])}, {_behind(want[name][1], c)} "
                         f"calls for {want[name][0]} {list(want[name][1])}")
    for name in sorted(want):
        t = tensors[name]
        if isinstance(t, tuple):
            continue                    # a header only (check_dir): shapes were all there is
        _check_values(name, t, c, where)


def _check_values(name: str, t, c: dict, where: str) -> None:
    import numpy as np
    if t.dtype == np.float32:
        if not np.isfinite(t).all():
            _fail(where, f"{WEIGHTS} tensor {name} has NaN or infinite values")
        return
    if t.dtype == np.int8:
        if t.size and int(t.min()) < -127:
            _fail(where, f"{WEIGHTS} tensor {name} holds -128: int8 codes are symmetric, -127 .. 127")
        return
    cols = c["d_ff"] if name.endswith("down.bits") else c["d_model"]
    pad = words(cols) * 32 - cols
    if pad and t.size:
        mask = np.uint32(((1 << pad) - 1) << (32 - pad))
        if (t[:, -1] & mask).any():
            _fail(where, f"{WEIGHTS} tensor {name} has non-zero padding bits (its rows are {cols} signs)")


def validate(meta: dict, tensors: dict, tokenizer_json, *, where: str = "artifact") -> None:
    """Raise ArtifactError (one line, naming the field) unless the artifact is consistent:
    format and version, hash field, config types and ranges, class names, exit policy and
    its thresholds, special ids, tokenizer against vocab_size, and exactly the tensors of
    expected_tensors(config) with their dtypes and shapes. `tensors`: name -> numpy array
    (values checked too) or (dtype, shape)."""
    if not isinstance(meta, dict):
        _fail(where, f"{META} is not a JSON object")
    if meta.get("format") != FORMAT_NAME:
        _fail(where, f"{META} format = {meta.get('format')!r}: not a beexgen artifact")
    v = meta.get("format_version")
    if not _typed(v, int) or v != FORMAT_VERSION:
        _fail(where, f"{META} format_version = {v!r}, this beexgen reads version {FORMAT_VERSION}; "
                     "re-export it with this version (`beexgen export`)")
    if "hash" in meta and not (isinstance(meta["hash"], str) and _HASH.match(meta["hash"])):
        _fail(where, f"{META} hash = {str(meta['hash'])[:20]!r} is not a sha256 hex digest")
    c = meta.get("config")
    _check_config(c, where)
    _check_classes(meta, c, where)
    _check_policy(meta, c, where)
    _check_special(meta, c, where)
    _check_tokenizer(tokenizer_json, c, where)
    _check_tensors(tensors, c, where)


# --------------------------------------------------------------------------- files

def read_dir(path: str | Path) -> tuple[dict, bytes, bytes]:
    """(meta, weights bytes, tokenizer bytes) of an artifact directory, after checking the
    files are there, meta.json parses, the format and version, and the content hash
    recomputed from the files. Raises ArtifactError."""
    path = Path(path)
    if not path.is_dir():
        raise ArtifactError(f"{path}: not an artifact directory (run `beexgen export` to make one)")
    for name in (META, WEIGHTS, TOKENIZER):
        if not (path / name).is_file():
            raise ArtifactError(f"{path / name}: missing; the artifact is incomplete")
    try:
        meta = json.loads((path / META).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{path / META}: not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise ArtifactError(f"{path / META}: not a beexgen artifact (format field is {meta.get('format')!r})"
                            if isinstance(meta, dict) else f"{path / META}: not a beexgen artifact")
    if meta.get("format_version") != FORMAT_VERSION or isinstance(meta.get("format_version"), bool):
        raise ArtifactError(
            f"{path / META}: artifact format version {meta.get('format_version')!r}, this beexgen reads "
            f"version {FORMAT_VERSION}; re-export it with this version (`beexgen export`)")
    wbytes, tbytes = (path / WEIGHTS).read_bytes(), (path / TOKENIZER).read_bytes()
    want = content_hash(meta, wbytes, tbytes)
    if meta.get("hash") != want:
        raise ArtifactError(
            f"{path}: content hash mismatch (meta.json says {str(meta.get('hash'))[:16]}..., the files hash to "
            f"{want[:16]}...): the artifact was modified or corrupted after export")
    return meta, wbytes, tbytes


_ST_DTYPES = {"U32": U32, "F32": F32, "I8": I8}
_ITEMSIZE = {U32: 4, F32: 4, I8: 1}


def safetensors_specs(data: bytes, where: str = WEIGHTS) -> dict[str, tuple[str, tuple[int, ...]]]:
    """name -> (dtype, shape) from a safetensors file's header (8-byte little-endian
    length, then JSON), with every tensor's byte range checked against the file."""
    if len(data) < 8:
        raise ArtifactError(f"{where}: truncated ({len(data)} bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ArtifactError(f"{where}: header of {n} bytes in a {len(data)}-byte file (truncated)")
    try:
        header = json.loads(data[8:8 + n])
    except (ValueError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{where}: unreadable header ({e})") from None
    body = len(data) - 8 - n
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (a, b) = _ST_DTYPES.get(h["dtype"], h["dtype"]), tuple(h["shape"]), h["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise ArtifactError(f"{where}: tensor {name}: malformed header entry") from None
        size = _ITEMSIZE.get(dtype, 4) * math.prod(shape)
        if not (0 <= a <= b <= body and b - a == size):
            raise ArtifactError(f"{where}: tensor {name}: bytes {a}..{b} of {body} do not hold {dtype} {list(shape)}")
        out[name] = (dtype, shape)
    return out


def check_dir(path: str | Path) -> dict:
    """The whole check of an artifact directory without loading the weights (what
    `beexgen-infer --artifact` runs): read_dir (files, format, recomputed hash), then
    validate() on the tensors' headers. Returns meta."""
    meta, wbytes, tbytes = read_dir(path)
    validate(meta, safetensors_specs(wbytes, f"{Path(path) / WEIGHTS}"), tbytes.decode("utf-8", "replace"),
             where=str(path))
    return meta
