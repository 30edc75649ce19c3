"""The wide exit 0 and long texts: C against the Python rules of beexgen/core/wide.py.

- the integer sums S_c (fed through bx_wide.h's streaming interface), the id-bigram
  buckets, the word hashes, the word and word-pair buckets, C (tests/c/wide_harness.c
  on the real engine, tokenizer and rendered tables) against beexgen.core.wide on
  >= 10,000 hostile strings (non-ASCII, long words) and lines far longer than seq_max,
  for several table layouts and classes;
- the words of wide.words against the pre-tokenizer of HF `tokenizers`;
- head + tail truncation of the block input, Python rule against hand-made cases;
- the entropy rule from exit 0 (the prior's entropy as H_{-1}) on hand-made sequences;
- quantisation: int8 codes and the per-class scale reproduce the float sums' order.
The deploy mirror's whole forward against the emulator is in test_host_emulator.py
(test_long_lines_every_exit_and_policy) and test_e2e.py.
"""
from __future__ import annotations

import struct
import subprocess

import numpy as np
import pytest

from beexgen.core import wide
from beexgen.core.artifact import Policy
from beexgen.codegen import project
from beexgen.core.protocol import Status
from beexgen.train import tokenizer as tok_mod
from beexgen.train.exits import decide, prior_entropy

from cbuild import SANITIZE, TESTS_C, gcc
from fixtures import tiny_artifact
from hostile import hostile_strings

N_STRINGS = 10_000
# (classes, id bigram buckets, id bag, word buckets, pair buckets): awkward class counts,
# two classes in one column, every table alone, the smallest tables, the default layout
# (word and pair tables of any size: 1, 3, 1000, 4097)
CASES = [(3, None, None, None, None), (2, 0, False, 1, 0), (5, 2, True, 0, 0), (2, 256, True, 3, 2),
         (7, 4096, False, 0, 4097), (2, 0, True, 1000, 4097)]


def long_texts(tok, n: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    words = [w for w in tok_mod.vocab_list(tok) if not w.startswith("[")]
    lines = [" ".join(rng.choice(words, size=int(rng.integers(20, 120)))) for _ in range(n)]
    return [t.encode()[:500].decode("utf-8", "ignore").encode() for t in lines]   # a line fits 512 bytes


@pytest.fixture(scope="module", params=CASES, ids=[f"C{c}-K{k}-I{i}-W{w}-P{p}" for c, k, i, w, p in CASES])
def harness(request, tmp_path_factory):
    n_classes, buckets, ids, words, pairs = request.param
    d = tmp_path_factory.mktemp(f"wide_{n_classes}_{buckets}")
    art = tiny_artifact(d / "art", n_classes=n_classes, bigram_buckets=buckets, seq_max=16, wide_ids=ids,
                        word_buckets=words, pair_buckets=pairs)
    src = d / "src"
    files = project.write_sources(art, src, board_name="host", cost_unit="ns", app=[])
    sources = sorted(p for p in files if p.suffix == ".c") + [TESTS_C / "wide_harness.c"]   # the library
    exe = gcc(d / "wide", sources, [src], SANITIZE)
    return art, exe


def run_harness(exe, texts: list[bytes]) -> list[str]:
    data = b"".join(struct.pack("<I", len(t)) + t for t in texts)
    r = subprocess.run([str(exe)], input=data, capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    return r.stdout.decode().splitlines()


def expected(art, tok, text: bytes) -> str:
    try:
        s = text.decode("utf-8")
    except UnicodeDecodeError:
        return f"err {int(Status.BAD_UTF8)}"
    bag = tok_mod.encode_all(tok, s)
    c = art.config
    sums = wide.table_sums(bag, wide.stack_tables(art.tensors, c), c)
    k, kw, kp = c["bigram_buckets"], c["word_buckets"], c["pair_buckets"]
    h = bag.words
    bk = wide.buckets(bag, k).tolist() if k else [0] * max(len(bag) - 1, 0)
    wb = wide.word_buckets(h, kw).tolist() if kw else [0] * len(h)
    pb = wide.pair_buckets(h, kp).tolist() if kp else [0] * (len(h) + 1 if len(h) else 0)
    return " ".join(["ok", str(len(bag)), *map(str, sums.tolist()), "|", *map(str, bk), "|", *map(str, h.tolist()),
                     "|", *map(str, wb), "|", *map(str, pb)])


def test_sums_and_buckets_equal_python_on_hostile_and_long_lines(harness):
    art, exe = harness
    tok = tok_mod.from_str(art.tokenizer_json)
    texts = hostile_strings(N_STRINGS, seed=8) + long_texts(tok, 300, seed=9)
    got = run_harness(exe, texts)
    assert len(got) == len(texts)
    seq = art.config["seq_max"]
    assert sum(len(tok_mod.encode_all(tok, t.decode())) > seq for t in texts[-300:]) > 250
    bad = [(i, g, w) for i, (t, g) in enumerate(zip(texts, got)) if g != (w := expected(art, tok, t))]
    assert not bad, f"{len(bad)} differ; first: text {texts[bad[0][0]][:60]!r}\n C: {bad[0][1][:200]}\n Py: {bad[0][2][:200]}"


def test_words_are_the_tokenizers_pre_tokens():
    """wide.words == the normaliser + pre-tokenizer of HF `tokenizers` (train/tokenizer.py)."""
    tok = tok_mod.build_empty()
    texts = hostile_strings(3000, seed=11)
    n = 0
    for t in texts:
        try:
            s = t.decode("utf-8")
        except UnicodeDecodeError:
            continue
        want = [w.encode("utf-8") for w, _ in tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(s))]
        assert wide.words(s) == want, repr(s[:80])
        n += 1
    assert n > 1000


def test_word_hash_is_fnv1a_and_folds_case():
    # FNV-1a's published test vectors (32-bit): "" and "a", "foobar"
    assert wide.word_hash(b"") == 0x811C9DC5 and wide.word_hash(b"a") == 0xE40C292C
    assert wide.word_hash(b"foobar") == 0xBF9CF968
    assert wide.word_hash(b"FooBar") == wide.word_hash(b"foobar")
    assert wide.word_hash("É".encode()) != wide.word_hash("é".encode())    # only ASCII folds
    h = np.array([0, 1, 2**32 - 1, 12345], np.uint32)
    m = [int(x) for x in wide.mix(h)]
    for x, y in zip(h.tolist(), m):
        x ^= x >> 16; x = (x * wide.MIX_1) % 2**32; x ^= x >> 13; x = (x * wide.MIX_2) % 2**32; x ^= x >> 16
        assert x == y
    assert wide.pair_buckets(h[:0], 8).size == 0 and wide.pair_buckets(h[:1], 8).size == 2 and wide.word_buckets(h, 2).max() <= 1
    # multiply-shift range reduction over the whole uint32 range and awkward sizes
    for k in (1, 3, 1000, 4097, 2**24 - 1):
        x = np.array([0, 1, 2**31, 2**32 - 1], np.uint32)
        assert wide.reduce(x, k).tolist() == [(int(v) * k) >> 32 for v in x] and wide.reduce(x, k).max() < k


def test_bucket_rule_edges():
    # uint32 wrap-around and the top bits: the C's (a * A + b) * B >> shift
    for k in (2, 256, 1 << 20):
        ids = [0, 1, 2**31 - 1, 7, 2**31 - 1, 0]
        sh = 32 - (k.bit_length() - 1)
        want = [((((a * wide.HASH_A + b) % 2**32) * wide.HASH_B) % 2**32) >> sh for a, b in zip(ids, ids[1:])]
        assert wide.buckets(ids, k).tolist() == want
        assert all(0 <= x < k for x in want)
    assert wide.buckets([5], 256).size == 0
    with pytest.raises(ValueError):
        wide.buckets([1, 2], 3)


@pytest.mark.parametrize("k,keep", [(0, 5), (1, 5), (5, 5), (6, 5), (7, 6), (100, 1), (100, 2), (31, 32), (33, 32), (65, 63)])
def test_head_tail(k, keep):
    ids = list(range(1000, 1000 + k))
    got = wide.head_tail(ids, keep)
    if k <= keep:
        assert got == ids
    else:
        h = keep // 2
        assert got == ids[:h] + ids[k - (keep - h):] and len(got) == keep
    m = tok_mod.model_ids(ids, keep + 1)
    assert m[0] == tok_mod.SPECIALS.index(tok_mod.CLS) and m[1:] == got


def test_entropy_rule_takes_exit_0_and_block_1():
    """Columns: exit 0 (wide), block 1, block 2; H_{-1} = the prior's entropy."""
    h_prior = float(np.float32(np.log(2)))
    ent = np.array([[0.69, 0.30, 0.10],     # exit 0 barely below the prior: leaves at exit 0
                    [0.20, 0.19, 0.05],     # big drop at exit 0, then a small one: block 1
                    [0.60, 0.30, 0.01],     # keeps falling: the last exit
                    [0.70, 0.71, 0.01]],    # entropy grows at exit 0 (negative drop): exit 0
                   dtype=np.float32)
    conf = np.full_like(ent, 0.5)
    got = decide(Policy.ENTROPY, [0.1], conf, ent, first_exit=0, h_prior=h_prior)
    assert got.tolist() == [0, 1, 2, 0]
    # without a wide exit the same rule starts at block 1 against the prior
    assert decide(Policy.ENTROPY, [0.1], conf[:, 1:], ent[:, 1:], first_exit=1, h_prior=h_prior).tolist() == [2, 2, 2, 1]
    assert decide(Policy.ENTROPY, [0.6], conf[:, 1:], ent[:, 1:], first_exit=1, h_prior=h_prior).tolist() == [1, 2, 1, 1]
    # the confidence rule: one threshold per early exit, exit 0 included
    c = np.array([[0.95, 0.5, 0.5], [0.6, 0.91, 0.5], [0.6, 0.6, 0.6]], np.float32)
    assert decide(Policy.CONFIDENCE, [0.9, 0.9], c, c, first_exit=0).tolist() == [0, 1, 2]


def test_prior_entropy():
    assert prior_entropy([0, 1, 0, 1], 2) == float(np.float32(np.log(2)))
    assert prior_entropy([0, 0, 0], 3) == 0.0


def test_quantize_shares_one_scale_per_class():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(50, 3)).astype(np.float32)
    w[:, 2] = 0
    q, s = wide.quantize(w)
    assert q.dtype == np.int8 and np.abs(q).max() == 127 and s[2] == 1.0 and not q[:, 2].any()
    assert np.allclose(q * s, w, atol=float(s.max()) / 2 + 1e-7)
