"""WordPiece tokenizer, trained with HF `tokenizers`, chosen so C can reproduce it.

The contract (docs/INTERNALS.md) is what `firmware_templates/bx_tokenizer.c` implements:
ASCII-only normalisation (control bytes -> space, A-Z -> a-z), split on runs of spaces,
every ASCII punctuation character its own piece, WordPiece with `##` continuations.
Nothing here needs Unicode tables, so the board needs none either.
"""
from __future__ import annotations

from pathlib import Path

from beexgen.core.wide import Bag, head_tail, word_hashes
from beexgen.core.wordpiece import CLS, PAD, SPECIAL_TOKENS, UNK  # noqa: F401  (re-exported)
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

SPECIALS = list(SPECIAL_TOKENS)     # ids 0, 1, 2
CONTROL = "[\x00-\x1f\x7f]"
PUNCT = r"[!-/:-@\[-`{-~]"
MAX_WORD_CHARS = 100


def build_empty(vocab: dict[str, int] | None = None) -> Tokenizer:
    """A tokenizer with beexgen's pipeline and the given (or an empty) vocabulary."""
    tok = Tokenizer(models.WordPiece(vocab or {PAD: 0, UNK: 1, CLS: 2}, unk_token=UNK,
                                     max_input_chars_per_word=MAX_WORD_CHARS))
    tok.normalizer = normalizers.Sequence(
        [normalizers.Replace(Regex(CONTROL), " ")]
        + [normalizers.Replace(chr(c), chr(c + 32)) for c in range(ord("A"), ord("Z") + 1)])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex("[ ]+"), behavior="removed"),
        pre_tokenizers.Split(Regex(PUNCT), behavior="isolated"),
    ])
    tok.decoder = None
    return tok


def train_tokenizer(texts: list[str], vocab_size: int = 3000, min_frequency: int = 2) -> Tokenizer:
    """Train on `texts` (the training split only). The vocabulary lives in flash: keep it small."""
    if vocab_size < len(SPECIALS) + 1:
        raise ValueError(f"vocab_size {vocab_size} is too small")
    tok = build_empty()
    # tokenizers' trainer creates the "##c" continuation pieces in hash-map order, and
    # that order breaks ties between equally frequent merges (huggingface/tokenizers
    # #1794), so the same texts could give another vocabulary on a rerun. Handing it
    # every "##c" up front, sorted, as special tokens makes training deterministic.
    cont: set[str] = set()
    for text in texts:
        for word, _ in tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(text)):
            cont.update(word[1:])
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                        special_tokens=SPECIALS + ["##" + c for c in sorted(cont)],
                                        continuing_subword_prefix="##", show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    # Rebuild with the learnt vocabulary but no "added tokens": tokenizers would match
    # the literal text "[CLS]" in user input as the special token before normalising,
    # a rule the C tokenizer has no reason to carry. Specials stay plain vocabulary.
    # The trainer numbers pieces in hash-map order, which changes from run to run:
    # renumber canonically (specials, then word-initial pieces, then "##" pieces, each
    # sorted by UTF-8 bytes) so a seed gives the same ids every time.
    pieces = [p for p in tok.get_vocab(with_added_tokens=True) if p not in SPECIALS]
    key = lambda p: (p.startswith("##"), p.encode("utf-8"))
    vocab = {p: i for i, p in enumerate(SPECIALS + sorted(pieces, key=key))}
    return build_empty(vocab)


def encode_all(tok: Tokenizer, text: str) -> Bag:
    """Every WordPiece id of a text (no [CLS]) and the hashes of its pre-tokenizer words
    (a list of ids with `.words`): what the wide exit counts (beexgen/core/wide.py)."""
    return Bag(tok.encode(text, add_special_tokens=False).ids, word_hashes(text))


def model_ids(all_ids: list[int], seq_max: int) -> list[int]:
    """Block input ids: [CLS] + the ids, or [CLS] + head + tail of them when there are
    more than seq_max - 1 (beexgen/core/wide.py: head_tail)."""
    return [SPECIALS.index(CLS)] + head_tail(all_ids, seq_max - 1)


def encode_for_model(tok: Tokenizer, text: str, seq_max: int) -> list[int]:
    """Model input ids of a text: [CLS] + WordPiece ids, head + tail past seq_max."""
    return model_ids(encode_all(tok, text), seq_max)


def save_tokenizer(tok: Tokenizer, path: str | Path) -> None:
    Path(path).write_text(tok.to_str(pretty=True), encoding="utf-8")


def load_tokenizer(path: str | Path) -> Tokenizer:
    path = Path(path)
    try:
        return Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises a bare Exception on bad JSON
        raise ValueError(f"{path}: not a tokenizers JSON file ({e})") from None


def from_str(s: str) -> Tokenizer:
    return Tokenizer.from_str(s)


def vocab_bytes(tok: Tokenizer) -> int:
    """Flash bytes of the vocabulary strings (each piece NUL-terminated), as
    Artifact.size_report counts them."""
    return sum(len(p.encode("utf-8")) + 1 for p in tok.get_vocab(with_added_tokens=True))


def vocab_list(tok: Tokenizer) -> list[str]:
    """The vocabulary as a list indexed by id (ids are dense 0..V-1)."""
    v = tok.get_vocab(with_added_tokens=True)
    out = [""] * len(v)
    for s, i in v.items():
        out[i] = s
    if any(s == "" for s in out):
        raise ValueError("tokenizer vocabulary ids are not dense")
    return out
