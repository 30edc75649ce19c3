"""Render the WordPiece vocabulary of an artifact as flash tables for bx_tokenizer.c.

The C tokenizer (firmware_templates/bx_tokenizer.c) reproduces one exact pipeline, the
one train/tokenizer.py `build_empty` builds (docs/INTERNALS.md, "Tokenizer"). This module
first checks that the tokenizer JSON *is* that pipeline (anything else raises ValueError:
the C would silently give other ids), then lays the vocabulary out as two tables:

- ``initial``: pieces that may start a word (vocabulary entries without the ``##`` prefix);
- ``continuation``: ``##`` pieces, stored with the prefix stripped.

Each table is a byte blob of its pieces sorted bytewise (UTF-8), ``count + 1`` offsets
into the blob (piece i is ``bytes[off[i]:off[i+1]]``) and the ids in the same order; the
C finds a piece by binary search. Output is deterministic: same JSON, same bytes.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from beexgen.codegen import render

PREFIX = "##"
MAX_WORD_CHARS = 100
UNK = "[UNK]"

# The pipeline bx_tokenizer.c implements, spelled out here on purpose (not imported
# from train/tokenizer.py): if the Python pipeline changes, rendering must fail until
# the C is changed too.
EXPECTED_NORMALIZER = {
    "type": "Sequence",
    "normalizers": [{"type": "Replace", "pattern": {"Regex": "[\x00-\x1f\x7f]"}, "content": " "}]
    + [{"type": "Replace", "pattern": {"String": chr(c)}, "content": chr(c + 32)}
       for c in range(ord("A"), ord("Z") + 1)],
}
EXPECTED_PRE_TOKENIZER = {
    "type": "Sequence",
    "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "[ ]+"}, "behavior": "Removed", "invert": False},
        {"type": "Split", "pattern": {"Regex": r"[!-/:-@\[-`{-~]"}, "behavior": "Isolated", "invert": False},
    ],
}


def _fail(msg: str):
    raise ValueError(f"tokenizer JSON cannot be reproduced by bx_tokenizer.c: {msg}")


def check_tokenizer(d: dict) -> dict[str, int]:
    """Raise ValueError unless `d` (parsed tokenizer JSON) is the C tokenizer's pipeline.
    Returns the vocabulary (piece -> id)."""
    if not isinstance(d, dict):
        _fail("not a JSON object")
    model = d.get("model") or {}
    if model.get("type") != "WordPiece":
        _fail(f"model type is {model.get('type')!r}, expected 'WordPiece'")
    if model.get("continuing_subword_prefix") != PREFIX:
        _fail(f"continuing_subword_prefix is {model.get('continuing_subword_prefix')!r}, expected {PREFIX!r}")
    if model.get("max_input_chars_per_word") != MAX_WORD_CHARS:
        _fail(f"max_input_chars_per_word is {model.get('max_input_chars_per_word')!r}, expected {MAX_WORD_CHARS}")
    if model.get("unk_token") != UNK:
        _fail(f"unk_token is {model.get('unk_token')!r}, expected {UNK!r}")
    if d.get("normalizer") != EXPECTED_NORMALIZER:
        _fail("normalizer is not [control bytes -> ' ', then ASCII A-Z -> a-z] "
              f"(got {json.dumps(d.get('normalizer'))[:200]})")
    if d.get("pre_tokenizer") != EXPECTED_PRE_TOKENIZER:
        _fail("pre-tokenizer is not [split on runs of ' ' (removed), isolate ASCII punctuation] "
              f"(got {json.dumps(d.get('pre_tokenizer'))[:200]})")
    if d.get("added_tokens"):
        names = [t.get("content") for t in d["added_tokens"]][:5]
        _fail(f"has added tokens {names}: tokenizers matches them in the raw text, the C does not")
    for key in ("truncation", "padding", "post_processor"):
        if d.get(key) is not None:
            _fail(f"{key} is set; the C implements none")
    vocab = model.get("vocab")
    if not isinstance(vocab, dict) or not vocab:
        _fail("model has no vocabulary")
    ids = sorted(vocab.values())
    if not all(isinstance(i, int) for i in ids) or ids != list(range(len(ids))):
        _fail("vocabulary ids are not dense 0..V-1")
    if UNK not in vocab:
        _fail(f"{UNK} is not in the vocabulary")
    for piece in vocab:
        try:
            piece.encode("utf-8")
        except UnicodeEncodeError:
            _fail(f"vocabulary piece {piece!r} is not valid Unicode")
    return vocab


def _table(name: str, entries: list[tuple[bytes, int]], what: str) -> dict:
    entries = sorted(entries)                   # bytewise: what the C's binary search assumes
    blob = b"".join(b for b, _ in entries)
    offsets = np.cumsum([0] + [len(b) for b, _ in entries])
    return {
        "name": name, "what": what, "count": len(entries),
        "pieces": [{"text": b.decode("utf-8"), "id": i} for b, i in entries],
        "n_bytes": len(blob),
        "max_len": max((len(b) for b, _ in entries), default=0),
        "offsets": offsets, "ids": np.array([i for _, i in entries], dtype=np.int64),
    }


def vocab_context(tokenizer_json: str) -> dict:
    """Jinja context of bx_vocab.h / bx_vocab_data.c. Raises ValueError if the tokenizer
    is not one bx_tokenizer.c reproduces."""
    try:
        d = json.loads(tokenizer_json)
    except (TypeError, ValueError) as e:
        raise ValueError(f"tokenizer JSON does not parse: {e}") from None
    vocab = check_tokenizer(d)

    initial, continuation = [], []
    for piece, i in vocab.items():
        # A "##x" entry is only ever looked up as a continuation ("##" + part of a word);
        # a word never starts with "##" because '#' is punctuation and isolated. Empty
        # pieces ("" or bare "##") are never looked up: tokenizers tries non-empty parts.
        if piece.startswith(PREFIX):
            if len(piece) > len(PREFIX):
                continuation.append((piece[len(PREFIX):].encode("utf-8"), i))
        elif piece:
            initial.append((piece.encode("utf-8"), i))
    tables = [_table("initial", initial, "pieces that start a word"),
              _table("continuation", continuation, "'##' pieces, prefix stripped")]

    n_vocab = len(vocab)
    id_type, id_size = ("uint16_t", 2) if n_vocab <= 0xFFFF else ("uint32_t", 4)
    off_type, off_size = (("uint16_t", 2) if max(t["n_bytes"] for t in tables) <= 0xFFFF
                          else ("uint32_t", 4))
    np_off = np.uint16 if off_size == 2 else np.uint32
    for t in tables:
        t["offsets"] = t["offsets"].astype(np_off)
        t["ids"] = t["ids"].astype(np.uint16 if id_size == 2 else np.uint32)

    # Flash: the blobs (each with the string literal's unused NUL), offsets and ids.
    # The two table descriptors (a few pointers and counts each) are not counted.
    flash = sum((t["n_bytes"] + 1) + (t["count"] + 1) * off_size + t["count"] * id_size for t in tables)
    return {
        "vocab_size": n_vocab,
        "unk_id": vocab[UNK],
        "max_word_chars": MAX_WORD_CHARS,
        "id_type": id_type,
        "off_type": off_type,
        "tables": tables,
        "flash_bytes": int(flash),
    }


def render_vocab(tokenizer_json: str, out_dir: Path, banner: dict) -> list[Path]:
    """Write bx_vocab.h and bx_vocab_data.c into out_dir. `banner` has the keys
    command, format_version and hash (as in the model files)."""
    ctx = vocab_context(tokenizer_json)
    ctx["banner"] = {k: banner[k] for k in ("command", "format_version", "hash")}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    env = render.environment()
    return [render.render_to(env, t, out_dir / t.removesuffix(".j2"), **ctx)
            for t in ("bx_vocab.h.j2", "bx_vocab_data.c.j2")]
