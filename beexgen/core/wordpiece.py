"""The WordPiece pipeline the C tokenizer reproduces, and the check that a tokenizer JSON is it.

firmware_templates/bx_tokenizer.c implements one exact pipeline, the one
train/tokenizer.py `build_empty` builds (docs/INTERNALS.md, "Tokenizer"). codegen/vocab.py
renders its tables only after check_tokenizer passed; core/validate.py runs the same
check on every artifact. Pure Python: a host-only install checks artifacts with it.
"""
from __future__ import annotations

import json

PREFIX = "##"
MAX_WORD_CHARS = 100
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]")     # ids 0, 1, 2: written here only
SPECIAL_IDS = {t.strip("[]").lower(): i for i, t in enumerate(SPECIAL_TOKENS)}   # {"pad": 0, "unk": 1, "cls": 2}
PAD, UNK, CLS = SPECIAL_TOKENS

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
