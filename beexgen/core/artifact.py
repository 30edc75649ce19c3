"""The artifact: the single hand-off between training and deployment.

A directory holding
    meta.json              format name and version, model dimensions, class names,
                           exit policy and thresholds, content hash
    weights.safetensors    packed sign bits (uint32) and float32 scales/norms/heads
    tokenizer.json         the HF `tokenizers` tokenizer

Bit packing (the numerics contract): +1 <-> bit 0, -1 <-> bit 1, sign(0) = +1.
Row r of a (rows, cols) sign matrix is packed into ceil(cols / 32) uint32 words,
element c at bit (c % 32) of word c // 32 (LSB first); padding bits are zero.

The content hash is sha256 over the canonical JSON of meta.json without its `hash`
field, then the bytes of weights.safetensors, then the bytes of tokenizer.json. It
is checked on every load, and the firmware reports it so the host can refuse a
mismatch. This module imports numpy and safetensors only (never torch).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

META, WEIGHTS, TOKENIZER = "meta.json", "weights.safetensors", "tokenizer.json"


from beexgen.core.policy import Policy  # noqa: E402,F401  (exit policies: core/policy.py)


# An artifact that cannot be used: missing, corrupt, tampered, inconsistent or of another
# version. Defined in beexgen/core/validate.py, which checks every artifact loaded or saved.
from beexgen.core.validate import FORMAT_NAME, FORMAT_VERSION, ArtifactError, validate  # noqa: E402,F401


# --------------------------------------------------------------------------- packing

def words_for(cols: int) -> int:
    return (cols + 31) // 32


def pack_signs(x: np.ndarray) -> np.ndarray:
    """Signs of x (rows, cols) -> uint32 (rows, ceil(cols/32)); bit 1 where x < 0."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"pack_signs wants a 2-D array, got shape {x.shape}")
    rows, cols = x.shape
    neg = np.zeros((rows, words_for(cols) * 32), dtype=np.uint64)
    neg[:, :cols] = (x < 0)
    weights = (np.uint64(1) << np.arange(32, dtype=np.uint64))
    packed = (neg.reshape(rows, -1, 32) * weights).sum(axis=2)
    return packed.astype(np.uint32)


def unpack_signs(bits: np.ndarray, cols: int) -> np.ndarray:
    """uint32 (rows, words) -> float32 +-1 (rows, cols). Padding bits must be zero."""
    bits = np.asarray(bits, dtype=np.uint32)
    rows, words = bits.shape
    if words != words_for(cols):
        raise ValueError(f"{words} words cannot hold {cols} columns")
    b = (bits[:, :, None] >> np.arange(32, dtype=np.uint32)) & 1
    b = b.reshape(rows, words * 32)
    if b[:, cols:].any():
        raise ValueError("non-zero padding bits")
    return np.where(b[:, :cols] == 1, np.float32(-1), np.float32(1))


# --------------------------------------------------------------------------- artifact

@dataclass
class Artifact:
    meta: dict
    tensors: dict[str, np.ndarray]
    tokenizer_json: str
    path: Path | None = None
    extra: dict = field(default_factory=dict)

    @property
    def config(self) -> dict:
        return self.meta["config"]

    @property
    def classes(self) -> list[str]:
        return self.meta["classes"]

    @property
    def hash(self) -> str:
        return self.meta["hash"]

    @property
    def policy(self) -> dict:
        return self.meta["exit_policy"]

    def size_report(self) -> dict:
        """Bytes of what goes to flash: tensors by kind, and the vocabulary strings."""
        bits = sum(t.nbytes for k, t in self.tensors.items() if k.endswith(".bits"))
        int8 = sum(t.nbytes for t in self.tensors.values() if t.dtype == np.int8)
        floats = sum(t.nbytes for t in self.tensors.values() if t.dtype == np.float32)
        vocab = json.loads(self.tokenizer_json)["model"]["vocab"]
        vocab_bytes = sum(len(p.encode("utf-8")) + 1 for p in vocab)
        return {"bits": bits, "int8": int8, "floats": floats, "vocab": vocab_bytes,
                "total": bits + int8 + floats + vocab_bytes}


def content_hash(meta: dict, weights_bytes: bytes, tokenizer_bytes: bytes) -> str:
    from beexgen.core.validate import content_hash as h
    return h(meta, weights_bytes, tokenizer_bytes)


def save(path: str | Path, meta: dict, tensors: dict[str, np.ndarray], tokenizer_json: str) -> Artifact:
    from safetensors.numpy import save as st_save

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    meta = dict(meta, format=FORMAT_NAME, format_version=FORMAT_VERSION)
    meta.pop("hash", None)
    tensors = {k: np.ascontiguousarray(v) for k, v in sorted(tensors.items())}
    for k, v in tensors.items():
        if v.dtype not in (np.uint32, np.float32, np.int8):
            raise ValueError(f"tensor {k}: dtype {v.dtype}, want uint32, float32 or int8")
    validate(meta, tensors, tokenizer_json, where=str(path))      # a buggy exporter stops here
    wbytes = st_save(tensors)
    tbytes = tokenizer_json.encode()
    meta["hash"] = content_hash(meta, wbytes, tbytes)
    (path / WEIGHTS).write_bytes(wbytes)
    (path / TOKENIZER).write_bytes(tbytes)
    (path / META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return Artifact(meta, tensors, tokenizer_json, path)


def load(path: str | Path) -> Artifact:
    from safetensors.numpy import load as st_load

    from beexgen.core.validate import read_dir, safetensors_specs

    path = Path(path)
    meta, wbytes, tbytes = read_dir(path)         # files, format, version, content hash
    safetensors_specs(wbytes, str(path / WEIGHTS))   # the header's types and byte ranges, strictly
    try:
        tensors = dict(st_load(wbytes))
    except Exception as e:  # safetensors raises its own error types
        raise ArtifactError(f"{path / WEIGHTS}: unreadable ({e})") from None
    try:
        tok = tbytes.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ArtifactError(f"{path / TOKENIZER}: not UTF-8 ({e})") from None
    validate(meta, tensors, tok, where=str(path))   # every dimension, count and type
    return Artifact(meta, tensors, tok, path)
