"""Texts of any length in constant RAM, byte-credit flow control, a cost that does not
depend on the link (issue 20) and request integrity (issue 25, item 1).

One tiny artifact, built as the host emulator and as Cortex-M4 firmware (mps2-an386,
netduinoplus2, in QEMU with -icount). Every classification is compared with the PyTorch
deploy mirror on the WHOLE text (class, exit, logit bits, block token count), computed at
test time; every reply under link faults with the fault-free reply of the same device.
"""
from __future__ import annotations

import random
import re
import zlib

import pytest

from beexgen.codegen import build as build_mod, firmware
from beexgen.codegen.emulate import start_qemu
from beexgen.core import protocol
from beexgen.core.protocol import DeviceError, Status
from beexgen.host.client import Client
from beexgen.host.transport import open_transport
from beexgen.train import tokenizer as tok_mod

from conftest import needs
from fixtures import tiny_artifact
from test_firmware_qemu import Mirror

QEMU_BOARDS = ["mps2-an386", "netduinoplus2"]
LENGTHS = [0, 1, 511, 512, 513, 4096, 65536]          # + 1,000,000 on the host emulator and mps2-an386
MEGA = 1_000_000
NON_ASCII = ["é", "naïve", "café", "🎬", "über", "日本語", "—"]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("stream")
    art = tiny_artifact(d / "art", seq_max=24)
    exe = build_mod.build_host(art, d / "host")
    fw = {}
    if firmware.CC and __import__("shutil").which(firmware.CC) and __import__("shutil").which("qemu-system-arm"):
        fw = {b: firmware.build_firmware(art, b, d / b) for b in QEMU_BOARDS}
    return {"art": art, "exe": exe, "fw": fw, "dir": d, "mirror": Mirror(art),
            "words": [w for w in sorted(tok_mod.from_str(art.tokenizer_json).get_vocab())
                      if not w.startswith(("##", "["))]}


def text_of(work, n: int, seed: int) -> bytes:
    """Exactly n bytes of valid UTF-8: vocabulary words, punctuation, non-ASCII, upper case."""
    rng = random.Random(seed)
    out, size = [], 0
    while size < n:
        r = rng.random()
        w = (rng.choice(work["words"]) if r < 0.7 else rng.choice(NON_ASCII) if r < 0.85 else
             rng.choice(["!", "?", ",", "...", "'s", "A", "The"]))
        out.append(w.encode())
        size += len(out[-1]) + 1
    b = b" ".join(out)[:n]
    while b:                                   # cut back to a character boundary, then pad
        try:
            b.decode("utf-8")
            break
        except UnicodeDecodeError:
            b = b[:-1]
    return b + b"a" * (n - len(b))


def over_long_words() -> list[bytes]:
    """Words around tokenizers' max_input_chars_per_word (100 code points -> [UNK] beyond)."""
    return [b"a" * 99, b"a" * 100, b"a" * 101, "é".encode() * 100, "é".encode() * 101,
            b"the " + b"x" * 5000 + b" film", b"film " * 3 + "🎬".encode() * 101 + b" the end",
            b"thethethe" * 11 + b"t", b"A" * 100 + b"!" + b"b" * 100]


def check_against_mirror(work, texts: list[bytes], results: list) -> None:
    """Every result equals the deploy mirror on the whole text; EMPTY where it has no ids."""
    reqs, lines = [], []
    for t, r in zip(texts, results):
        every = tok_mod.encode_all(work["mirror"].tok, t.decode("utf-8"))
        if not every:
            assert isinstance(r, DeviceError) and r.status == Status.EMPTY, (t[:40], r)
            continue
        assert not isinstance(r, Exception), (len(t), t[:60], r)
        reqs.append((b"!c " + t if t.startswith(b"!") else t) + b"\n")
        lines.append(r.line)
    assert work["mirror"].check(reqs, lines) == len(reqs)


def classify_all(spec: str, texts: list[bytes], **kw) -> tuple[list, Client]:
    with Client(open_transport(spec, timeout=60), timeout=60, **kw) as c:
        c.handshake()
        return list(c.classify_many([t.decode("utf-8") for t in texts])), c


# --------------------------------------------------------------------------- any length

def test_any_length_equals_pytorch_on_the_host_emulator(work):
    """0 .. 1,000,000 bytes and over-long words, pipelined at the client's defaults (the
    long ones in `!more` pieces): every answer is PyTorch's on the whole text."""
    texts = [text_of(work, n, n) for n in LENGTHS + [MEGA]] + over_long_words()
    got, c = classify_all(f"exec:{work['exe']}", texts)
    check_against_mirror(work, texts, got)
    assert c.stats["retries"] == 0


def test_a_long_text_on_one_line_equals_its_pieces(work):
    """The device streams a line of any length: one 200 KB line, and the same text as
    pieces, give the same reply (cost aside), equal to the mirror."""
    import subprocess
    text = text_of(work, 200_000, 7)
    pieces = protocol.text_requests(text, 1000, 42)
    data = text + b"\n" + b"".join(p + b"\n" for p in pieces)
    out = subprocess.run([str(work["exe"])], input=data, capture_output=True, timeout=60).stdout.decode().splitlines()
    strip = [protocol.parse_reply(line) for line in (out[0], out[-1])]
    assert out[1:-1] == [f"ok more n={1000 * (k + 1)}" for k in range(len(pieces) - 1)]
    assert strip[0].logits_hex == strip[1].logits_hex and strip[0].tokens == strip[1].tokens
    check_against_mirror(work, [text], [strip[0]])


@needs(firmware.CC, "qemu-system-arm")
@pytest.mark.parametrize("board", QEMU_BOARDS)
def test_any_length_equals_pytorch_on_the_m4(work, board):
    """The same texts through the Cortex-M4 firmware in QEMU (1,000,000 bytes on
    mps2-an386 only: ~30 s of QEMU's serial line). The firmware's RAM is one static
    figure: nothing in it depends on the length of a text."""
    b = work["fw"][board]
    texts = [text_of(work, n, n) for n in LENGTHS + ([MEGA] if board == "mps2-an386" else [])]
    texts += over_long_words()
    with start_qemu(b.elf, board, log=work["dir"] / f"{board}-any.log") as q:
        got, c = classify_all(q.url, texts)
    check_against_mirror(work, texts, got)
    src = (b.out_dir / "src" / "bx_board.h").read_text()
    assert f"#define BX_RX_RING {protocol.RX_RING}" in src        # the one input buffer, fixed
    print(f"\n{board}: RAM {b.ram_used} B for texts of 0 .. {max(len(t) for t in texts)} bytes")


# --------------------------------------------------------------------------- cost

@needs(firmware.CC, "qemu-system-arm")
@pytest.mark.parametrize("board", QEMU_BOARDS)
def test_cost_is_the_same_at_any_window(work, board):
    """cost= excludes the UART interrupt: the same texts at window 1 and at the default
    window (bytes of later requests arriving during a classification), two runs each,
    give identical costs; a text sent whole or in pieces too."""
    rng = random.Random(3)
    texts = [text_of(work, rng.choice([20, 60, 200, 900]), 100 + k) for k in range(40)] + [text_of(work, 3000, 9)]
    runs = []
    with start_qemu(work["fw"][board].elf, board, log=work["dir"] / f"{board}-cost.log") as q:
        with Client(open_transport(q.url, timeout=30), timeout=30) as c:
            c.handshake()
            for window in (1, None, 1, None):
                runs.append([r.cost for r in c.classify_many([t.decode() for t in texts], window=window)])
    assert runs[0] == runs[1] == runs[2] == runs[3], [
        (k, [r[k] for r in runs]) for k in range(len(texts)) if len({r[k] for r in runs}) > 1][:5]


# --------------------------------------------------------------------------- integrity

def test_request_check_c_equals_python(work):
    """The C's CRC-32 (main.c) is protocol.crc32 / zlib's: lines with the right check are
    executed, any one-bit change of the id, the check or the body is refused with the id's
    echo or not taken as a checked request; bare lines and `#<id> ` lines still work."""
    import subprocess
    assert protocol.crc32(b"123456789") == 0xCBF43926 == zlib.crc32(b"123456789")
    rng = random.Random(5)
    bodies = [b"!ping", b"the film", "naïve café 🎬".encode(), text_of(work, 700, 1), b"!tok is a bore", b""]
    good = [protocol.request_line(rng.randrange(1, protocol.ID_MOD), body) for body in bodies]
    bad = []
    for line in good:
        for _ in range(20):
            k = rng.randrange(1, len(line))
            flipped = bytearray(line)
            flipped[k] ^= 1 << rng.randrange(7)
            if flipped[k] not in b"\r\n":
                bad.append(bytes(flipped))
    data = b"".join(x + b"\n" for x in good + bad + [b"the film", b"#77 the film"])
    out = subprocess.run([str(work["exe"])], input=data, capture_output=True, timeout=60).stdout.decode().splitlines()
    assert len(out) == len(good) + len(bad) + 2
    for line, rep in zip(good, out):
        rid, check, rest = protocol.split_prefix(rep)
        assert (rid, check) == (int(line[1:line.index(b":")]), protocol.request_check(rid, line[line.index(b" ") + 1:]))
        assert not rest.startswith("err 8")
    for line, rep in zip(bad, out[len(good):]):
        rid, check, rest = protocol.split_prefix(rep)
        # refused as damaged, or not a checked request at all (no check echoed): never a
        # checked success the host would accept
        assert rest.startswith("err 8 BAD_CHECK") or check is None or \
            check != protocol.request_check(rid, line[line.index(b" ") + 1:]) or \
            protocol.request_line(rid, line[line.index(b" ") + 1:]) == line, (line[:40], rep[:60])
    assert out[-2].startswith("ok cls=") and out[-1].startswith("#77 ok cls=")


class FaultyTransport:
    """A transport whose writes (host -> device) drop, duplicate or flip bytes at `rate`."""

    def __init__(self, inner, rate: float, seed: int):
        self.inner, self.rate, self.rng = inner, rate, random.Random(seed)
        self.faults = 0
        orig = inner._write_all

        def write_all(data: bytes, timeout: float) -> None:
            out = bytearray()
            for b in data:
                r = self.rng.random()
                if r >= self.rate:
                    out.append(b)
                    continue
                self.faults += 1
                kind = self.rng.randrange(3)
                if kind == 1:
                    out += bytes([b, b])
                elif kind == 2:
                    out.append(b ^ (1 << self.rng.randrange(8)))
            orig(bytes(out), timeout)
        inner._write_all = write_all


def fault_run(spec: str, texts: list[str], rate: float, seed: int):
    t = open_transport(spec, timeout=5)
    faulty = FaultyTransport(t, rate, seed) if rate else None
    with Client(t, timeout=1.5, retries=20) as c:
        c.handshake()
        got = list(c.classify_many(texts))
        return got, c.stats, faulty.faults if faulty else 0


def key(r):
    return r if isinstance(r, Exception) and not isinstance(r, DeviceError) else \
        (r.status if isinstance(r, DeviceError) else (r.cls, r.exit_depth, r.tokens, r.logits_hex))


@pytest.mark.parametrize("target", ["host"] + QEMU_BOARDS)
def test_link_faults_never_give_a_wrong_success(work, target):
    """Drop, duplicate and flip bytes host -> device at 0.1 % and 1 %, 1,000 requests each
    (500 per rate): every reply the client reports as a success equals the fault-free one;
    the faults show up as retries (or errors), never as wrong answers."""
    if target != "host" and not work["fw"]:
        pytest.skip("no arm-none-eabi-gcc / qemu-system-arm")
    rng = random.Random(11)
    texts = [text_of(work, rng.choice([8, 30, 60, 120]), 1000 + k).decode() for k in range(500)]

    def run(spec):
        clean, st0, _ = fault_run(spec, texts, 0.0, 0)
        assert st0["retries"] == 0
        for rate, seed in ((0.001, 1), (0.01, 2)):
            got, st, faults = fault_run(spec, texts, rate, seed)
            wrong = [k for k, (a, b) in enumerate(zip(clean, got)) if key(a) != key(b)]
            assert not wrong, [(texts[k][:40], key(clean[k]), key(got[k])) for k in wrong[:3]]
            print(f"\n{target} at {rate:.1%}: {faults} faults, {st['retries']} retries, "
                  f"{st['corrupted']} BAD_CHECK, {st['garbage']} garbage lines, all {len(got)} replies right")
            assert faults > 0 and st["retries"] > 0
    if target == "host":
        run(f"exec:{work['exe']}")
    else:
        with start_qemu(work["fw"][target].elf, target, log=work["dir"] / f"{target}-faults.log") as q:
            run(q.url)


# --------------------------------------------------------------------------- load

LOAD_N = int(__import__("os").environ.get("BX_LOAD_N", "300"))   # the full run: BX_LOAD_N=10000


def mixed_lengths(n: int, seed: int) -> list[int]:
    """Text lengths from 1 B to 64 KB, chosen so QEMU's ~14-35 kB/s serial line carries
    them in minutes: 97 % log-uniform in 1-256 B, 2.5 % in 256 B-4 KB, 0.5 % in 4-64 KB,
    plus one of exactly 64 KB and one of 1 B (mean ~150 B: 10,000 texts are ~1.5 MB)."""
    rng = random.Random(seed)

    def log_uniform(lo, hi):
        return int(round(lo * (hi / lo) ** rng.random()))
    out = [log_uniform(1, 256) if r < 0.97 else log_uniform(256, 4096) if r < 0.995 else log_uniform(4096, 65536)
           for r in (rng.random() for _ in range(n - 2))]
    return out + [65536, 1]


@needs(firmware.CC, "qemu-system-arm")
@pytest.mark.parametrize("board", QEMU_BOARDS)
def test_load_mixed_lengths_pipelined(work, board):
    """LOAD_N texts of mixed lengths pipelined at the client's defaults (byte credit,
    pieces): all replies, in order, none merged or lost (no retry), each equal to the
    host emulator's (cost and unit aside)."""
    lens = mixed_lengths(LOAD_N, 21)
    texts = [text_of(work, n, 5000 + k).decode() for k, n in enumerate(lens)]
    host, c0 = classify_all(f"exec:{work['exe']}", [t.encode() for t in texts])
    with start_qemu(work["fw"][board].elf, board, log=work["dir"] / f"{board}-load.log") as q:
        with Client(open_transport(q.url, timeout=60), timeout=60) as c:
            c.handshake()
            got = list(c.classify_many(texts))
            stats = dict(c.stats)
    assert len(got) == len(texts) and stats.get("retries", 0) == 0 and stats.get("garbage", 0) == 0, stats
    strip = lambda r: r if isinstance(r, Exception) else re.sub(r" (cost|unit)=\S+", "", r.line)  # noqa: E731
    bad = [k for k, (a, b) in enumerate(zip(host, got)) if str(strip(a)) != str(strip(b))]
    assert not bad, [(lens[k], strip(host[k]), strip(got[k])) for k in bad[:3]]
    print(f"\n{board}: {len(texts)} texts, {sum(lens):,} bytes, all equal to the host emulator, {stats}")
