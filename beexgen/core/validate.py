"""Artifact validation: every field, dimension, count and type of an artifact checked
against the format's schema and against each other, before any C is generated.

`validate(meta, tensors, tokenizer_json)` is the one check. `beexgen.core.artifact.load` calls
it (so `beexgen build`, `eval`, `emulate` and everything else that loads an artifact get
it), `artifact.save` calls it before writing (a buggy exporter is caught at the source),
and `beexgen-infer --artifact` calls it through `check_dir`, which also recomputes the
content hash. A failure is one `ArtifactError` whose message names the field:

    runs/x/artifact: meta.json config.n_heads = 3 does not divide config.d_model = 64

The schema (fields, types, bounds, tensors) lives in beexgen/core/schema.py; this
module checks an artifact against it. Nothing is skipped silently: every check here is
pure Python except the value checks of numpy arrays, which only exist where numpy does.
meta.json and tokenizer.json are refused, before parsing, when larger or more deeply
nested than the schema's bounds (no RecursionError on a hostile file).

Pure Python (json, hashlib, struct, math, array): `beexgen-infer --artifact` runs it
without numpy. The values are checked too, on numpy arrays (as `load` gives) or on the
tensors' bytes (as `check_dir` gives): float tensors finite and within WEIGHT_ABS_MAX,
int8 codes symmetric, the padding bits of packed rows zero (the numerics contract). The tokenizer JSON
must be the pipeline the C reproduces (core/wordpiece.py).
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import struct
from pathlib import Path

from beexgen.core import cost
from beexgen.core.policy import NAMES as POLICY_NAMES, n_thresholds, threshold_min
from beexgen.core.schema import (  # noqa: F401  (the schema, re-exported for older imports)
    CONFIG_FIELDS, F32, F32_MAX, FORMAT_NAME, FORMAT_VERSION, I8, META, META_MAX_BYTES, META_MAX_DEPTH,
    SAFETENSORS_MAX_DIMS, SAFETENSORS_MAX_HEADER, SPECIAL_KEYS, TENSOR_PARTS, TOKENIZER, TOKENIZER_MAX_BYTES, TOKENIZER_MAX_DEPTH, U32, UINT32_LIMIT, WEIGHT_ABS_MAX, WEIGHTS,
    expected_tensors, n_exits, wide_columns, wide_layout, words)

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


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def json_depth(text: str | bytes) -> int:
    """Deepest nesting of objects and lists in a JSON text, found without parsing it
    (strings removed first), so a hostile file cannot exhaust the parser's stack."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    depth = best = 0
    for m in _JSON_BRACKET.finditer(_JSON_STRING.sub("", text)):
        depth += 1 if m.group() in "[{" else -1
        best = max(best, depth)
    return best


def loads_bounded(text: str | bytes, where: str, *, max_bytes: int = META_MAX_BYTES,
                  max_depth: int = META_MAX_DEPTH):
    """json.loads after checking size and nesting depth against the schema's bounds."""
    if len(text) > max_bytes:
        _fail(where, f"{len(text):,} bytes, more than the {max_bytes:,} allowed")
    d = json_depth(text)
    if d > max_depth:
        _fail(where, f"nested {d} levels deep, more than the {max_depth} allowed")
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        _fail(where, f"not valid JSON ({e})")


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
    bm, fl = cost.sentence_cost(c, c["seq_max"], c["n_blocks"])
    if bm >= UINT32_LIMIT or fl >= UINT32_LIMIT:
        _fail(where, f"meta.json config: a {c['seq_max']}-token sentence costs {bm:,} bmacs and {fl:,} "
                     "flops, beyond the device's 32-bit counters (reduce config.seq_max or d_model)")


def check_config(c: dict, where: str) -> None:
    """The config checks of an artifact (types, ranges, relations, 32-bit cost counters)
    on a model config alone: `beexgen train` runs them before training."""
    _check_config(c, where)


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
    lo = threshold_min(name)
    for i, t in enumerate(thr):
        if not _typed(t, float) or t < lo or t > F32_MAX:
            _fail(where, f"meta.json exit_policy.thresholds[{i}] = {t!r} is not a finite float32 >= {lo:.7g} "
                         f"(the {name} policy)")


def _check_special(meta: dict, c: dict, where: str) -> None:
    from beexgen.core.wordpiece import SPECIAL_IDS
    sp = meta.get("special_ids", SPECIAL_IDS)
    if not isinstance(sp, dict):
        _fail(where, "meta.json special_ids must be an object")
    if set(sp) != set(SPECIAL_KEYS):
        _fail(where, f"meta.json special_ids has keys {sorted(sp)}, want exactly {', '.join(SPECIAL_KEYS)}")
    for k, v in sp.items():
        if not _typed(v, int) or not 0 <= v < c["vocab_size"]:
            _fail(where, f"meta.json special_ids.{k} = {v!r} is not a token id below config.vocab_size")


def _check_tokenizer(tokenizer_json, c: dict, where: str) -> None:
    d = loads_bounded(tokenizer_json, f"{where}: {TOKENIZER}", max_bytes=TOKENIZER_MAX_BYTES,
                      max_depth=TOKENIZER_MAX_DEPTH)
    model = d.get("model") if isinstance(d, dict) else None
    vocab = model.get("vocab") if isinstance(model, dict) else None
    if not isinstance(vocab, dict) or not vocab:
        _fail(where, f"{TOKENIZER} has no model.vocab")
    for piece, i in vocab.items():
        if not _typed(i, int) or not 0 <= i < len(vocab):
            _fail(where, f"{TOKENIZER} model.vocab[{piece[:20]!r}] = {i!r} is not an integer id in "
                         f"[0, {len(vocab)})")
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
            if len(t) > 2:              # (dtype, shape, bytes) from check_dir: the same checks, pure Python
                _check_raw_values(name, t[0], t[1], t[2], c, where)
            continue
        _check_values(name, t, c, where)


def _check_raw_values(name: str, dtype: str, shape: tuple, raw: bytes, c: dict, where: str) -> None:
    """_check_values without numpy, on a tensor's little-endian bytes (the array module):
    finite floats within WEIGHT_ABS_MAX, int8 codes >= -127, zero padding bits."""
    import array
    import sys
    a = array.array({F32: "f", I8: "b", U32: "I"}[dtype])
    if a.itemsize != _ITEMSIZE[dtype]:
        raise ArtifactError(f"{where}: {WEIGHTS} tensor {name}: this platform's array item size differs")
    a.frombytes(raw)
    if sys.byteorder == "big" and a.itemsize > 1:
        a.byteswap()
    if dtype == F32:
        if not all(map(math.isfinite, a)):
            _fail(where, f"{WEIGHTS} tensor {name} has NaN or infinite values")
        big = max(map(abs, a), default=0.0)
        if big > WEIGHT_ABS_MAX:
            _fail(where, f"{WEIGHTS} tensor {name} holds {big:.3g}, beyond the {WEIGHT_ABS_MAX:g} a trained "
                         "weight can be (its float arithmetic would overflow)")
    elif dtype == I8:
        if len(a) and min(a) < -127:
            _fail(where, f"{WEIGHTS} tensor {name} holds -128: int8 codes are symmetric, -127 .. 127")
    else:
        cols = c["d_ff"] if name.endswith("down.bits") else c["d_model"]
        pad = words(cols) * 32 - cols
        if pad and len(a) and shape:
            mask = ((1 << pad) - 1) << (32 - pad)
            w = shape[-1]
            if any(x & mask for x in a[w - 1::w]):
                _fail(where, f"{WEIGHTS} tensor {name} has non-zero padding bits (its rows are {cols} signs)")


def _check_values(name: str, t, c: dict, where: str) -> None:
    import numpy as np
    if t.dtype == np.float32:
        if not np.isfinite(t).all():
            _fail(where, f"{WEIGHTS} tensor {name} has NaN or infinite values")
        if t.size and float(np.abs(t).max()) > WEIGHT_ABS_MAX:
            _fail(where, f"{WEIGHTS} tensor {name} holds {float(np.abs(t).max()):.3g}, beyond the "
                         f"{WEIGHT_ABS_MAX:g} a trained weight can be (its float arithmetic would overflow)")
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


def _check_depth(meta: dict, where: str) -> None:
    """meta (already parsed, e.g. by an exporter) nested no deeper than META_MAX_DEPTH."""
    stack = [(meta, 1)]
    while stack:
        v, d = stack.pop()
        if d > META_MAX_DEPTH:
            _fail(where, f"{META} is nested more than {META_MAX_DEPTH} levels deep")
        if isinstance(v, dict):
            stack += [(x, d + 1) for x in v.values() if isinstance(x, (dict, list))]
        elif isinstance(v, list):
            stack += [(x, d + 1) for x in v if isinstance(x, (dict, list))]


def validate(meta: dict, tensors: dict, tokenizer_json, *, where: str = "artifact") -> None:
    """Raise ArtifactError (one line, naming the field) unless the artifact is consistent:
    format and version, hash field, config types and ranges, class names, exit policy and
    its thresholds, special ids, tokenizer against vocab_size, and exactly the tensors of
    expected_tensors(config) with their dtypes and shapes. `tensors`: name -> numpy array
    (values checked too) or (dtype, shape)."""
    if not isinstance(meta, dict):
        _fail(where, f"{META} is not a JSON object")
    _check_depth(meta, where)
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
    if not str(path).strip():
        raise ArtifactError("'': an empty path is not an artifact directory")
    path = Path(path)
    if not path.is_dir():
        raise ArtifactError(f"{path}: not an artifact directory (run `beexgen export` to make one)")
    for name in (META, WEIGHTS, TOKENIZER):
        if not (path / name).is_file():
            raise ArtifactError(f"{path / name}: missing; the artifact is incomplete")
    meta = loads_bounded((path / META).read_bytes(), str(path / META))
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


def safetensors_specs(data: bytes, where: str = WEIGHTS, *, with_bytes: bool = False) -> dict[str, tuple]:
    """name -> (dtype, shape) from a safetensors file's header (8-byte little-endian
    length, then JSON), with every tensor's byte range checked against the file;
    with_bytes: name -> (dtype, shape, the tensor's bytes)."""
    if len(data) < 8:
        raise ArtifactError(f"{where}: truncated ({len(data)} bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ArtifactError(f"{where}: header of {n} bytes in a {len(data)}-byte file (truncated)")
    if n > SAFETENSORS_MAX_HEADER:
        raise ArtifactError(f"{where}: header of {n:,} bytes, more than the {SAFETENSORS_MAX_HEADER:,} allowed")
    try:
        header = loads_bounded(data[8:8 + n], "header", max_bytes=SAFETENSORS_MAX_HEADER, max_depth=3)
    except ArtifactError as e:
        raise ArtifactError(f"{where}: unreadable {e}") from None
    if not isinstance(header, dict):
        raise ArtifactError(f"{where}: header is a JSON {type(header).__name__}, not an object")
    body = len(data) - 8 - n
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(h, dict):
            raise ArtifactError(f"{where}: tensor {name}: header entry is not an object")
        dtype, shape, offs = _ST_DTYPES.get(h.get("dtype"), h.get("dtype")), h.get("shape"), h.get("data_offsets")
        if dtype not in _ITEMSIZE:
            raise ArtifactError(f"{where}: tensor {name}: dtype {h.get('dtype')!r} is not U32, F32 or I8")
        if (not isinstance(shape, list) or len(shape) > SAFETENSORS_MAX_DIMS
                or not all(_typed(x, int) and 0 <= x < UINT32_LIMIT for x in shape)):
            raise ArtifactError(f"{where}: tensor {name}: shape {repr(shape)[:40]} is not a list of at most "
                                f"{SAFETENSORS_MAX_DIMS} non-negative integers")
        if not isinstance(offs, list) or len(offs) != 2 or not all(_typed(x, int) for x in offs):
            raise ArtifactError(f"{where}: tensor {name}: data_offsets {repr(offs)[:40]} is not two integers")
        a, b = offs
        shape = tuple(shape)
        size = _ITEMSIZE[dtype] * math.prod(shape)
        if not (0 <= a <= b <= body and b - a == size):
            raise ArtifactError(f"{where}: tensor {name}: bytes {a}..{b} of {body} do not hold {dtype} {list(shape)}")
        out[name] = (dtype, shape, data[8 + n + a:8 + n + b]) if with_bytes else (dtype, shape)
    return out


def check_dir(path: str | Path) -> dict:
    """The whole check of an artifact directory without numpy (what `beexgen-infer
    --artifact` runs): read_dir (files, format, recomputed hash), then validate() on the
    tensors' headers and bytes, the value checks included (pure Python). Returns meta."""
    meta, wbytes, tbytes = read_dir(path)
    validate(meta, safetensors_specs(wbytes, f"{Path(path) / WEIGHTS}", with_bytes=True),
             tbytes.decode("utf-8", "replace"), where=str(path))
    return meta
