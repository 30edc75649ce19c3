"""The C tokenizer (firmware_templates/bx_tokenizer.c + generated vocabulary) against HF
`tokenizers`, id for id, on >= 10,000 hostile inputs per vocabulary, in one process.

Parity means: where Python's strict UTF-8 decode fails, the C returns -BX_STATUS_BAD_UTF8;
otherwise the C's ids equal tok.encode(text, add_special_tokens=False).ids[:max_ids]."""
from __future__ import annotations

import json
import random
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from tokenizers import Tokenizer, models, normalizers

from beexgen.codegen import render, vocab
from beexgen.core.protocol import Status
from beexgen.train import tokenizer as tok_mod

from conftest import needs

from cbuild import SANITIZE, TESTS_C, arm_flags, gcc
from fixtures import CORPUS
from hostile import hostile_strings

BANNER = {"command": "pytest tests/test_tokenizer_parity.py", "format_version": 1, "hash": "0" * 16}
VOCAB_SIZES = (150, 1000)
N_STRINGS = 10_000
BAD_UTF8 = int(Status.BAD_UTF8)


@dataclass
class Built:
    tok: Tokenizer
    exe: Path
    src: Path           # directory with the rendered + copied C sources
    ctx: dict


def training_texts() -> list[str]:
    """CORPUS plus decodable hostile strings, so the vocabulary has multibyte pieces."""
    texts = []
    for b in hostile_strings(600, seed=12345):
        try:
            texts.append(b.decode("utf-8"))
        except UnicodeDecodeError:
            pass
    return CORPUS * 3 + texts


def write_sources(tok: Tokenizer, d: Path) -> dict:
    d.mkdir(parents=True, exist_ok=True)
    vocab.render_vocab(tok.to_str(), d, BANNER)
    render.render_status(d)
    for name in ("bx_internal.h", "bx_tokenizer.h", "bx_tokenizer.c"):
        shutil.copyfile(render.TEMPLATE_DIR / name, d / name)
    return vocab.vocab_context(tok.to_str())


def build(d: Path, name: str, extra: list[str] = ()) -> Path:
    return gcc(d / name, [d / "bx_tokenizer.c", d / "bx_vocab_data.c", TESTS_C / "tokenizer_harness.c"],
               [d], list(extra))


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> dict[int, Built]:
    texts = training_texts()
    out = {}
    for size in VOCAB_SIZES:
        tok = tok_mod.train_tokenizer(texts, vocab_size=size, min_frequency=1)
        d = tmp_path_factory.mktemp(f"tok{size}")
        ctx = write_sources(tok, d)
        out[size] = Built(tok, build(d, "harness"), d, ctx)
    return out


@pytest.fixture(scope="session")
def sanitized(built) -> Built:
    b = built[VOCAB_SIZES[-1]]
    return Built(b.tok, build(b.src, "harness_asan", SANITIZE), b.src, b.ctx)


# --------------------------------------------------------------------------- helpers

def run_c(exe: Path, records: list[tuple[bytes, int]]) -> list[list[int] | str]:
    """Tokenize every (text, max_ids) in one run of the harness. 'E' = rejected."""
    payload = b"".join(struct.pack("<Ii", len(s), m) + s for s, m in records)
    r = subprocess.run([str(exe)], input=payload, capture_output=True, timeout=120)
    assert r.returncode == 0, f"harness failed ({r.returncode}):\n{r.stderr.decode(errors='replace')[-3000:]}"
    out = []
    for line in r.stdout.decode("ascii").splitlines():
        f = line.split()
        if f[0] == "E":
            assert int(f[1]) == BAD_UTF8, line
            out.append("E")
        else:
            assert int(f[0]) == len(f) - 1, line
            out.append([int(x) for x in f[1:]])
    assert len(out) == len(records)
    return out


def expected(tok: Tokenizer, s: bytes, max_ids: int) -> list[int] | str:
    try:
        text = s.decode("utf-8")
    except UnicodeDecodeError:
        return "E"
    return tok.encode(text, add_special_tokens=False).ids[:max(max_ids, 0)]


def unlimited(s: bytes) -> int:
    return len(s) + 1           # every id consumes at least one byte of input


def with_limits(strings: list[bytes], seed: int) -> list[tuple[bytes, int]]:
    """Most strings untruncated; every 4th at max_ids 5; a few at 0, 1, 2."""
    r = random.Random(seed)
    recs = []
    for i, s in enumerate(strings):
        if i % 4 == 3:
            m = 5
        elif i % 50 == 7:
            m = r.choice([0, 1, 2, -3])
        else:
            m = unlimited(s)
        recs.append((s, m))
    return recs


def assert_parity(b: Built, records: list[tuple[bytes, int]]):
    got = run_c(b.exe, records)
    bad = []
    for (s, m), g in zip(records, got):
        want = expected(b.tok, s, m)
        if g != want:
            bad.append(f"  {s[:160]!r} (len {len(s)}, max_ids {m}):\n    C   {g}\n    HF  {want}")
    assert not bad, f"{len(bad)}/{len(records)} mismatches, first ones:\n" + "\n".join(bad[:8])
    return got


def c_ids(b: Built, s: bytes | str, max_ids: int | None = None):
    if isinstance(s, str):
        s = s.encode("utf-8")
    return run_c(b.exe, [(s, unlimited(s) if max_ids is None else max_ids)])[0]


# --------------------------------------------------------------------------- parity

@pytest.mark.parametrize("size", VOCAB_SIZES)
def test_hostile_parity(built, size):
    b = built[size]
    pieces = tok_mod.vocab_list(b.tok)
    strings = hostile_strings(N_STRINGS, seed=size, vocab=pieces)
    got = assert_parity(b, with_limits(strings, seed=size))
    # the inputs really cover the cases: rejections, [UNK]s, continuations, multibyte ids
    unk = b.tok.token_to_id("[UNK]")
    assert sum(g == "E" for g in got) > N_STRINGS // 10
    assert sum(isinstance(g, list) and unk in g for g in got) > N_STRINGS // 10
    used = {i for g in got if isinstance(g, list) for i in g}
    assert any(pieces[i].startswith("##") for i in used)
    assert any(len(pieces[i].encode()) > len(pieces[i]) for i in used)


def test_vocab_has_multibyte_pieces(built):
    for b in built.values():
        pieces = tok_mod.vocab_list(b.tok)
        assert any(len(p.encode()) != len(p) for p in pieces if p.startswith("##"))
        assert any(len(p.encode()) != len(p) for p in pieces if not p.startswith("##"))


def test_sanitizers(sanitized):
    strings = hostile_strings(2000, seed=7, vocab=tok_mod.vocab_list(sanitized.tok))
    assert_parity(sanitized, with_limits(strings, seed=7))


# --------------------------------------------------------------------------- unit cases

@pytest.mark.parametrize("ch", ["a", "é", "漢", "😀"])
def test_word_length_limit_counts_code_points(built, ch):
    b = built[VOCAB_SIZES[-1]]
    unk = b.tok.token_to_id("[UNK]")
    for n in (99, 100, 101):
        for text in (ch * n, "Go " + ch * n + "!", (ch * n).upper()):
            want = expected(b.tok, text.encode(), 10**6)
            assert c_ids(b, text) == want, (ch, n, text[:10])
        # 101 code points is one [UNK] whatever the byte length; 100 is tokenized
        if ch == "a" or (b.tok.token_to_id(ch) is not None and b.tok.token_to_id("##" + ch) is not None):
            assert c_ids(b, ch * 101) == [unk]
            assert unk not in c_ids(b, ch * 100)
    assert c_ids(b, "x" * 99 + "é") == expected(b.tok, ("x" * 99 + "é").encode(), 10**6)


def test_empty_and_spaces(built):
    for b in built.values():
        for s in ["", " ", " " * 500, "\t\r\n\x00\x1f\x7f", "  \n  "]:
            assert c_ids(b, s) == [] == expected(b.tok, s.encode(), 99)
        # U+00A0 and the other Unicode spaces are not separators: part of a word
        assert c_ids(b, "a\u00a0b") == expected(b.tok, "a\u00a0b".encode(), 99)


def test_literal_specials_are_plain_text(built):
    for b in built.values():
        cls = b.tok.token_to_id("[CLS]")
        for s in ["[CLS]", "[UNK] [PAD]", "x[CLS]y", "##", "##ing", "a##b", "## ##"]:
            got = c_ids(b, s)
            assert got == expected(b.tok, s.encode(), 99), s
            assert cls not in got      # "[CLS]" is '[' 'cls' ']', never the special token
        hash_id = b.tok.token_to_id("#")
        if hash_id is not None:
            assert c_ids(b, "##") == [hash_id, hash_id]


def test_non_ascii_upper_case_is_not_lowered(built):
    for b in built.values():
        unk = b.tok.token_to_id("[UNK]")
        e = b.tok.token_to_id("é")
        assert e is not None
        assert c_ids(b, "é") == [e]
        if b.tok.token_to_id("É") is None:
            assert c_ids(b, "É") == [unk]
        for s in ["É", "ÉCOLE", "Café CAFÉ", "İstanbul", "\u212a"]:
            assert c_ids(b, s) == expected(b.tok, s.encode(), 99), s
        # ASCII is lowered
        assert c_ids(b, "THE Film") == c_ids(b, "the film")


def test_truncation_still_validates_whole_input(built):
    b = built[VOCAB_SIZES[0]]
    for s in [b"the film " * 20 + b"\xff", b"a b c d e f \xed\xa0\x80", b"x" + b"\xc3"]:
        for m in (0, 1, 5):
            assert c_ids(b, s, m) == "E"
    s = "the charming film is a bore".encode()
    full = expected(b.tok, s, 99)
    for m in range(len(full) + 2):
        assert c_ids(b, s, m) == full[:m]


def test_unmatched_word_rewinds_to_one_unk(built):
    """Pieces already matched for a word are replaced by a single [UNK] when a later part
    of the word matches nothing, also when truncation cut inside that word."""
    b = built[VOCAB_SIZES[-1]]
    unk = b.tok.token_to_id("[UNK]")
    s = "charming" + "\u2603"      # snowman: not in the vocabulary
    assert b.tok.token_to_id("\u2603") is None and b.tok.token_to_id("##\u2603") is None
    assert c_ids(b, s) == [unk] == expected(b.tok, s.encode(), 99)
    assert c_ids(b, "ok " + s, 2) == expected(b.tok, ("ok " + s).encode(), 2)


# --------------------------------------------------------------------------- rendering

def test_render_is_deterministic(built, tmp_path):
    tok = built[VOCAB_SIZES[-1]].tok
    j = tok.to_str()
    # the same vocabulary with the JSON's entries in another order
    d = json.loads(j)
    items = list(d["model"]["vocab"].items())
    random.Random(0).shuffle(items)
    d["model"]["vocab"] = dict(items)
    outs = []
    for k, src in enumerate([j, j, json.dumps(d)]):
        paths = vocab.render_vocab(src, tmp_path / str(k), BANNER)
        outs.append({p.name: p.read_bytes() for p in paths})
    assert outs[0] == outs[1] == outs[2]
    assert set(outs[0]) == {"bx_vocab.h", "bx_vocab_data.c"}
    assert BANNER["command"].encode() in outs[0]["bx_vocab.h"]


def test_flash_bytes_match_object_sizes(built):
    b = built[VOCAB_SIZES[-1]]
    obj = b.src / "vocab.o"
    subprocess.run(["gcc", "-std=c11", "-O2", "-c", "-I", str(b.src), "-o", str(obj),
                    str(b.src / "bx_vocab_data.c")], check=True)
    nm = subprocess.run(["nm", "-S", str(obj)], capture_output=True, text=True, check=True).stdout
    sizes = {f[3]: int(f[1], 16) for f in (ln.split() for ln in nm.splitlines()) if len(f) == 4}
    tables = {k: v for k, v in sizes.items() if k.startswith("bx_vocab_") and k.endswith(("_bytes", "_offsets", "_ids"))}
    assert len(tables) == 6
    assert sum(tables.values()) == b.ctx["flash_bytes"] > 0


def test_build_empty_and_trained_tokenizers_conform():
    vocab.vocab_context(tok_mod.build_empty().to_str())
    vocab.vocab_context(tok_mod.train_tokenizer(CORPUS, vocab_size=60, min_frequency=1).to_str())


def _variants() -> dict[str, str]:
    base = tok_mod.train_tokenizer(CORPUS, vocab_size=80, min_frequency=1)
    v = base.get_vocab()
    out = {}

    bpe = Tokenizer(models.BPE(vocab=v, merges=[], unk_token="[UNK]"))
    bpe.normalizer, bpe.pre_tokenizer = base.normalizer, base.pre_tokenizer
    out["BPE model"] = bpe.to_str()

    low = tok_mod.build_empty(v)
    low.normalizer = normalizers.Lowercase()
    out["Lowercase normalizer"] = low.to_str()

    nfc = tok_mod.build_empty(v)
    nfc.normalizer = normalizers.Sequence([normalizers.NFC(), base.normalizer])
    out["NFC normalizer"] = nfc.to_str()

    added = tok_mod.build_empty(v)
    added.add_special_tokens(["[CLS]"])
    out["added tokens"] = added.to_str()

    def model_edit(key, value):
        d = json.loads(base.to_str())
        d["model"][key] = value
        return json.dumps(d)
    out["prefix @@"] = model_edit("continuing_subword_prefix", "@@")
    out["max chars 200"] = model_edit("max_input_chars_per_word", 200)
    out["other unk"] = model_edit("unk_token", "<unk>")

    d = json.loads(base.to_str())
    d["pre_tokenizer"] = {"type": "Whitespace"}
    out["Whitespace pre-tokenizer"] = json.dumps(d)
    d = json.loads(base.to_str())
    d["model"]["vocab"] = {k: i + 1 for k, i in v.items()}
    out["ids not dense"] = json.dumps(d)
    out["not JSON"] = "{ nope"
    return out


@pytest.mark.parametrize("name", list(_variants()))
def test_non_conforming_tokenizer_rejected(name, tmp_path):
    with pytest.raises(ValueError, match="tokenizer JSON"):
        vocab.render_vocab(_variants()[name], tmp_path, BANNER)
    assert not (tmp_path / "bx_vocab.h").exists()


# --------------------------------------------------------------------------- cross build

@needs("arm-none-eabi-gcc")
def test_cortex_m4_build_and_stack(built, tmp_path):
    b = built[VOCAB_SIZES[-1]]
    for src in ("bx_tokenizer.c", "bx_vocab_data.c"):
        r = subprocess.run(["arm-none-eabi-gcc", *arm_flags(stack_usage=False), "-fstack-usage",
                            "-I", str(b.src), "-c", str(b.src / src), "-o", str(tmp_path / (src + ".o"))],
                           capture_output=True, text=True, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    su = next(tmp_path.glob("bx_tokenizer*.su")).read_text()
    # every function's frame (static: no VLAs, no alloca) and the total are small
    frames = [int(ln.split("\t")[1]) for ln in su.splitlines()]
    assert all("static" in ln for ln in su.splitlines()), su
    assert sum(frames) <= 256, su


def test_minimal_vocabulary(tmp_path):
    """Only the three specials: the continuation table is empty, every word is [UNK]."""
    tok = tok_mod.build_empty()
    ctx = write_sources(tok, tmp_path)
    assert [t["count"] for t in ctx["tables"]] == [3, 0]
    b = Built(tok, build(tmp_path, "harness"), tmp_path, ctx)
    assert_parity(b, with_limits(hostile_strings(500, seed=3), seed=3))
