"""Seeded generator of hostile tokenizer inputs (bytes), for parity tests of the C tokenizer.

Everything the pipeline has a rule for, and everything around the edges of those rules:
ASCII case and punctuation, control bytes, Unicode letters/spaces/marks the normaliser
must leave alone, emoji sequences, words at the 100-code-point limit, and every kind of
byte sequence Python's strict UTF-8 decoder rejects. Same (n, seed) -> same list.
"""
from __future__ import annotations

import random
import string

PUNCT = "".join(chr(c) for c in range(0x21, 0x7F) if not chr(c).isalnum())
ASCII = string.ascii_letters + string.digits + PUNCT + " " * 8

WORDS = ["the", "film", "is", "a", "charming", "and", "often", "affecting", "journey", "gorgeous",
         "witty", "seductive", "movie", "bore", "slow", "predictable", "far", "too", "long", "what",
         "capital", "of", "france", "how", "many", "people", "live", "in", "tokyo", "who", "wrote",
         "hamlet", "winner", "you", "have", "won", "prize", "call", "now", "ok", "lor", "see", "at",
         "naïve", "café", "déjà", "vu", "über", "cool", "films", "acting", "wooden", "plot", "makes",
         "no", "sense", "all", "an", "utterly", "delightful", "heartfelt", "comedy", "why", "does",
         "sun", "rise", "east", "[CLS]", "[UNK]", "[PAD]", "##", "##ing", "##s", "un", "##aff", "##able"]

LATIN = "éÉèÈêëïîôöüÜûçÇñÑßẞøØåÅæÆœŒáÁíÍóÓúÚýÿžŽšŠłŁđĐğİıǅǈﬁﬂ"
SPECIAL_LETTERS = "\u212a\u212b\u0130\u03a3\u03c3\u03c2\u0391\u03b1\u0410\u0430\u0401\u0451"  # Kelvin, Angstrom, Greek, Cyrillic
CJK = "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年漢字日本語中文한국어ひらがなカタカナ"
EMOJI = ["🎬", "😀", "👍", "👍🏽", "👩‍💻", "👨‍👩‍👧‍👦", "🏳️‍🌈", "❤️", "🇫🇷", "🇯🇵", "1️⃣", "🧑🏿‍🚀",
         "\U0001F600\U0001F3FB", "\u200d", "\ufe0f", "🏿"]
COMBINING = ["e\u0301", "a\u0308", "n\u0303", "\u0301", "\u0300\u0301\u0302", "o\u0338",
             "Z\u0351\u0352\u0353\u0354\u0355", "\u20dd", "\u0489"]
RTL = ["שלום", "עולם", "مرحبا", "العالم", "\u200f", "\u200e", "\u202e", "\u202dabc\u202c", "سلام123"]
SPACES = ["\u00a0", "\u2000", "\u2001", "\u2002", "\u2003", "\u2009", "\u200a", "\u200b", "\u2028",
          "\u2029", "\u202f", "\u205f", "\u3000", "\u1680", "\u0085", "\ufeff", "\u180e"]
CONTROLS = [chr(c) for c in range(0x20)] + ["\x7f"]
EDGE_CHARS = ["\U0010ffff", "\U00010000", "\ud7ff", "\ue000", "\uffff", "\ufffd", "\U0001d400", "\x80",
              "\xff", "\u07ff", "\u0800"]

# Byte sequences Python's strict decoder rejects, one list per kind.
INVALID = {
    "overlong": [b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\x80", b"\xe0\x9f\xbf", b"\xf0\x80\x80\x80",
                 b"\xf0\x8f\xbf\xbf", b"\xc0\xaf", b"\xe0\x80\xaf"],
    "surrogate": [b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xed\xaf\xbf\xed\xb0\x80", b"\xed\xb0\x80"],
    "too_big": [b"\xf4\x90\x80\x80", b"\xf4\xbf\xbf\xbf", b"\xf5\x80\x80\x80", b"\xf7\xbf\xbf\xbf",
                b"\xf8\x88\x80\x80\x80", b"\xfc\x84\x80\x80\x80\x80"],
    "truncated": [b"\xc3", b"\xe2\x82", b"\xe2", b"\xf0\x9f\x98", b"\xf0\x9f", b"\xf0", b"\xf4\x8f\xbf",
                  b"\xe0\xa0", b"\xed\x9f"],
    "stray_continuation": [b"\x80", b"\xbf", b"\x80\x80", b"\xa9", b"\x8f\xbf"],
    "bad_lead": [bytes([b]) for b in range(0xf5, 0x100)] + [b"\xc0", b"\xc1"],
    "bad_second": [b"\xc3\x28", b"\xe2\x28\xa1", b"\xe2\x82\x28", b"\xf0\x28\x8c\xbc", b"\xf0\x90\x28\xbc",
                   b"\xf0\x90\x8c\x28", b"\xc2\xc0"],
}


def _rand_ascii(r: random.Random, lo: int = 1, hi: int = 30) -> str:
    return "".join(r.choice(ASCII) for _ in range(r.randint(lo, hi)))


def _word_of(r: random.Random, alphabet, n: int) -> str:
    return "".join(r.choice(alphabet) for _ in range(n))


def _long_word(r: random.Random) -> str:
    """A word at or around the 100-code-point limit, ASCII or multibyte or mixed."""
    n = r.choice([99, 100, 100, 101, 101, 102, 150, 250, 100, 101, 1000])
    alphabet = r.choice([string.ascii_lowercase, string.ascii_letters, "ab", "a", "é", "éa", "漢字",
                         "😀", "aé漢😀", LATIN, CJK])
    return _word_of(r, alphabet, n)


def _glued(r: random.Random, vocab: list[str] | None) -> str:
    """Pieces of real vocabulary words glued together (possibly with '##' kept, upper-cased)."""
    pool = vocab if vocab else WORDS
    parts = []
    for _ in range(r.randint(1, 6)):
        p = r.choice(pool)
        if r.random() < 0.7:
            p = p.removeprefix("##")
        parts.append(p)
    s = "".join(parts)
    if r.random() < 0.3:
        s = s.upper() if r.random() < 0.5 else s.title()
    return s


def _segment(r: random.Random, vocab: list[str] | None) -> str:
    kind = r.randrange(14)
    if kind == 0:
        return _rand_ascii(r)
    if kind == 1:
        return _word_of(r, LATIN + SPECIAL_LETTERS + string.ascii_letters, r.randint(1, 12))
    if kind == 2:
        return _word_of(r, CJK, r.randint(1, 10))
    if kind == 3:
        return "".join(r.choice(EMOJI) for _ in range(r.randint(1, 5)))
    if kind == 4:
        return "".join(r.choice(COMBINING + list("aeo")) for _ in range(r.randint(1, 6)))
    if kind == 5:
        return r.choice(RTL) + r.choice(["", " ", "."]) + r.choice(RTL)
    if kind == 6:
        return "".join(r.choice(CONTROLS + list("ab ")) for _ in range(r.randint(1, 8)))
    if kind == 7:
        return r.choice(WORDS) + r.choice(SPACES) + r.choice(WORDS)
    if kind == 8:
        return _long_word(r)
    if kind == 9:
        return r.choice(["", " ", "   ", "\t", "\r\n", "\n\n", "\x00"])
    if kind == 10:
        return r.choice(EDGE_CHARS) + _word_of(r, string.ascii_letters, r.randint(0, 3))
    if kind == 11:
        return r.choice(WORDS).upper() + r.choice(PUNCT) + r.choice(WORDS)
    return _glued(r, vocab)


def _separator(r: random.Random) -> str:
    return r.choice([" ", " ", " ", "", "  ", "\t", "\n", "\r\n", "\x00", "\x7f", "\x1b", ".", ",",
                     "-", "'", "##", "\u00a0", "\u3000", "_"])


def _valid_string(r: random.Random, vocab: list[str] | None) -> str:
    roll = r.random()
    if roll < 0.03:
        return ""
    if roll < 0.06:
        return r.choice([" ", "  ", " " * r.randint(1, 300), "\t\n\r ", "\x00" * r.randint(1, 5)])
    if roll < 0.075:                                  # very long line (a few KB)
        return " ".join(_segment(r, vocab) for _ in range(r.randint(100, 300)))
    parts = []
    for _ in range(r.randint(1, 8)):
        parts.append(_segment(r, vocab))
        parts.append(_separator(r))
    s = "".join(parts)
    if r.random() < 0.2:
        s = s.swapcase() if r.random() < 0.5 else s.upper()
    return s


def _invalid(r: random.Random, s: bytes) -> bytes:
    """Insert one (or more) invalid sequences of a random kind at random places."""
    for _ in range(r.choice([1, 1, 1, 2, 3])):
        bad = r.choice(INVALID[r.choice(sorted(INVALID))])
        # a truncated sequence at the very end is the classic case: keep it frequent
        pos = len(s) if r.random() < 0.3 else r.randint(0, len(s))
        s = s[:pos] + bad + s[pos:]
    return s


def fixed_cases() -> list[bytes]:
    """Hand-picked edge cases, always included first."""
    out = [b"", b" ", b"   ", b"\t\r\n", b"\x00", b"a\x00b", b"[CLS]", b"[cls]", b"[UNK]", b"##",
           b"##ing", b"a##b", "É".encode(), "é".encode(), "ÉCOLE école".encode(), b"\xc2\xa0",
           "a\u00a0b".encode()]
    for n in (99, 100, 101):
        for ch in ("a", "é", "漢", "😀"):
            out.append((ch * n).encode())
            out.append(("x " + ch * n + " y").encode())
        out.append(("a" * (n - 1) + "é").encode())
        out.append(("A" * n).encode())
    for kind in sorted(INVALID):
        for bad in INVALID[kind]:
            out += [bad, b"ok " + bad, bad + b" ok", b"a" * 5 + bad + b"b" * 300]
    return out


def hostile_strings(n: int, seed: int, vocab: list[str] | None = None) -> list[bytes]:
    """n hostile inputs (fixed edge cases first, then random ones); ~20% invalid UTF-8.
    `vocab` (optional) supplies real vocabulary pieces to glue into words."""
    r = random.Random(seed)
    out = fixed_cases()[:n]
    while len(out) < n:
        s = _valid_string(r, vocab).encode("utf-8")
        if r.random() < 0.2:
            s = _invalid(r, s)
        out.append(s)
    return out
