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
# The pipeline bx_tokenizer.c implements and its check live in beexgen.core.wordpiece
# (core/validate.py runs the check on every artifact, without numpy).
from beexgen.core.wordpiece import MAX_WORD_CHARS, PREFIX, UNK, check_tokenizer


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
