"""The generated C project as the x86 host emulator, against the Python references.

The emulator (codegen/build.py `build_host`) is built once per artifact configuration,
plain and under ASan + UBSan, then driven over stdin/stdout pipes (one process, many
lines, requests pipelined) and over a raw pty with pyserial. Every reply is compared
with what a Python model of the protocol expects, computed at test time from:
  - the PyTorch deploy mirror (train/deploy.py, train/exits.py) for classifications,
    bit for bit (logits as hex32, conf through Python's "%.4f");
  - beexgen.train.tokenizer (HF tokenizers) for the ids;
  - beexgen/core/cost.py for bmacs and flops;
  - a reference line splitter and command parser written here from docs/INTERNALS.md.
"""
from __future__ import annotations

import ctypes
import json
import os
import queue
import random
import re
import string
import subprocess
import threading
import tty
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from beexgen.core import artifact, cost, wide
from beexgen.codegen import build as build_mod
from beexgen.codegen import cflags, project
from beexgen.core import protocol
from beexgen.core.protocol import Status, float_to_hex, wire_label
from beexgen.train import deploy, exits
from beexgen.train import tokenizer as tok_mod

from cbuild import gcc
from fixtures import tiny_artifact

LINE_MAX = 512
TIMEOUT = 60.0
ECHO_MAX = 16
DEC_DIGITS_MAX = 18
CONFIGS = {
    "default": {},
    # the paper's architecture (no wide exit) at awkward sizes
    "awkward": dict(d_model=33, n_heads=3, d_ff=65, slfn=False, n_blocks=2, seq_max=17, n_classes=5,
                    seed=1, wide=False, policy={"name": "confidence", "thresholds": [0.55]}),
}
BUILDS = [("default", False), ("awkward", False), ("default", True), ("awkward", True)]


# --------------------------------------------------------------------------- references

def f32_nearest(s: str) -> np.float32:
    """The decimal s rounded once to the nearest float32, ties to even (exact, via Fraction)."""
    fr = Fraction(s)
    if fr == 0:
        return np.float32(-0.0 if s.lstrip().startswith("-") else 0.0)
    c = np.float32(float(fr))
    cands = [np.nextafter(c, np.float32(-np.inf)), c, np.nextafter(c, np.float32(np.inf))]
    return min(cands, key=lambda f: (abs(Fraction(float(f)) - fr), int(np.float32(f).view(np.uint32)) & 1))


DECIMAL = re.compile(rb"[+-]?(?=\.?[0-9])[0-9]*\.?[0-9]*")
HEX32 = re.compile(rb"0[xX][0-9a-fA-F]{1,8}")


def parse_threshold(b: bytes) -> np.float32 | None:
    """Python model of bx_parse_f32."""
    if b[:2] in (b"0x", b"0X"):
        return np.uint32(int(b[2:], 16)).view(np.float32) if HEX32.fullmatch(b) else None
    if not DECIMAL.fullmatch(b) or sum(ch.isdigit() for ch in b.decode()) > DEC_DIGITS_MAX:
        return None
    return f32_nearest(b.decode())


def err(status: Status, detail: str = "") -> str:
    return f"err {int(status)} {status.name}" + (f" {detail}" if detail else "")


OVERRUN = -2   # BX_GETC_OVERRUN, in a list of received ints


def split_lines(data: bytes | list[int], at_eof: bool = False) -> list[tuple[bytes, Status | None]]:
    """Python model of main.c: (line, error status or None) per line the device answers.
    Lines have no length limit (texts stream; a command's arguments are bounded in reply)."""
    out, cur, status, after_cr = [], bytearray(), None, False
    for b in data:
        was_cr, after_cr = after_cr, b == 13
        if b == OVERRUN:
            status = Status.OVERRUN
        elif b == 10 and was_cr:
            continue
        if b in (10, 13):
            out.append((bytes(cur), status))
            cur, status = bytearray(), None
        elif status is None and b != OVERRUN:
            cur.append(b)
    if at_eof and (cur or status):
        out.append((bytes(cur), status))
    return out


BUFFERED = (b"ping", b"info", b"policy")     # commands whose arguments the device buffers (BX_LINE_MAX)


class Reference:
    """What the device should answer, from the artifact and the Python implementation."""

    # per artifact hash: (tokenizer, deploy model, stats cache), shared by the plain and
    # sanitizer builds of one configuration and by all tests (the mirror is the slow part)
    _shared: dict[str, tuple] = {}

    def __init__(self, art: artifact.Artifact):
        self.art = art
        self.cfg = art.config
        if art.hash not in self._shared:
            self._shared[art.hash] = (tok_mod.from_str(art.tokenizer_json), deploy.DeployModel(art), {})
        self.tok, self.model, self._cache = self._shared[art.hash]
        pol = art.policy
        self.default_policy = (artifact.Policy[pol["name"].upper()],
                               [np.float32(t) for t in pol["thresholds"]])
        self.policy = self.default_policy

    def ids(self, text: str) -> list[int]:
        """Block input ids ([CLS] + head/tail), as `!tok` reports them."""
        return tok_mod.model_ids(self.all_ids(text), self.cfg["seq_max"])

    def all_ids(self, text: str) -> list[int]:
        """Every tokenizer id of the text (the wide exit's bag)."""
        return tok_mod.encode_all(self.tok, text)

    @staticmethod
    def key(bag) -> tuple:
        """A text's wide-exit input as a dict key: its ids and its word hashes (wide.Bag)."""
        return tuple(bag), tuple(bag.words.tolist())

    def stats(self, all_list: list[list[int]]) -> dict[tuple, tuple]:
        """(logits (E, C), cls (E,), conf (E,), entropy (E,)) of every exit, per text's key (ids, words)."""
        todo = sorted({self.key(i) for i in all_list} - self._cache.keys())
        if todo:
            seq = self.cfg["seq_max"]
            bags = [wide.Bag(t[0], t[1]) for t in todo]
            r = deploy.run(self.model, [tok_mod.model_ids(list(t[0]), seq) for t in todo], bags)
            for k, t in enumerate(todo):
                self._cache[t] = (r.logits[k], r.cls[k], r.conf[k], r.entropy[k])
        return {self.key(i): self._cache[self.key(i)] for i in all_list}

    def classify_reply(self, all_ids: list[int], policy=None) -> str:
        policy = policy or self.policy
        logits, cls, conf, ent = self.stats([all_ids])[self.key(all_ids)]
        first = cost.first_exit(self.cfg)
        depth = int(exits.decide(policy[0], policy[1], conf[None], ent[None], first_exit=first,
                                 h_prior=self.art.meta["h_prior"])[0])
        k = depth - first
        c, B = int(cls[k]), self.cfg["n_blocks"]
        n = len(tok_mod.model_ids(all_ids, self.cfg["seq_max"]))
        bm, fl = cost.sentence_cost(self.cfg, n, depth, len(all_ids))
        return (f"ok cls={c} label={self.art.classes[c]} conf={float(conf[k]):.4f} "
                f"exit={depth}/{B} tokens={n} cost=* unit=ns bmacs={bm} flops={fl} "
                f"logits={','.join(float_to_hex(float(v)) for v in logits[k])}")

    @property
    def n_exits(self) -> int:
        return self.cfg["n_blocks"] + (1 if self.cfg.get("wide") else 0)

    def policy_fields(self) -> str:
        p, thr = self.policy
        return f"policy={p.name.lower()} thr={','.join(float_to_hex(float(t)) for t in thr)}"

    def info_reply(self) -> str:
        c = self.cfg
        return (f"ok info format={self.art.meta['format_version']} hash={self.art.hash} board=host "
                f"classes={c['n_classes']} blocks={c['n_blocks']} d={c['d_model']} heads={c['n_heads']} "
                f"seq={c['seq_max']} vocab={c['vocab_size']} labels={','.join(map(wire_label, self.art.classes))} "
                f"{self.policy_fields()} unit=ns line={LINE_MAX} window={protocol.WINDOW} "
                f"first={cost.first_exit(c)} ring={protocol.RX_RING}")

    def _text(self, b: bytes) -> str | None:
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            return None

    def _classify(self, b: bytes) -> str:
        text = self._text(b)
        if text is None:
            return err(Status.BAD_UTF8)
        ids = self.all_ids(text)
        return err(Status.EMPTY) if not ids else self.classify_reply(ids)

    def _policy(self, args: bytes) -> str:
        if not args:
            return "ok " + self.policy_fields()
        name, _, lst = args.partition(b" ")
        try:
            p = artifact.Policy[name.decode("ascii").upper()] if name.islower() else None
        except (KeyError, UnicodeDecodeError):
            p = None
        if p is None:
            return err(Status.BAD_ARGUMENT, "unknown policy")
        items = lst.split(b",") if lst else []
        thr = []
        for it in items:
            if len(thr) == self.n_exits:
                return err(Status.BAD_ARGUMENT, "too many thresholds")
            v = parse_threshold(it)
            if v is None or not np.isfinite(v) or v < 0:      # finite and >= 0 (-0 is 0)
                return err(Status.BAD_ARGUMENT, "bad threshold")
            thr.append(v)
        if len(thr) != exits.n_thresholds(p, self.n_exits):
            return err(Status.BAD_ARGUMENT, "wrong number of thresholds for this policy")
        self.policy = (p, thr)
        return "ok " + self.policy_fields()

    def reply(self, line: bytes, status: Status | None = None) -> str:
        """The expected reply to one received line (classify replies with cost=*)."""
        m = re.match(rb"#(\d{1,%d})(?::([0-9a-f]{%d}))? " % (protocol.ID_DIGITS, protocol.CHECK_DIGITS), line)
        if m:                                 # a request id, echoed in front (issue 14), and its check
            rest = line[m.end():]
            if status is None and m.group(2) and int(m.group(2), 16) != protocol.request_check(int(m.group(1)), rest):
                status = Status.BAD_CHECK
            return m.group(0).decode() + self.reply(rest, status)
        if status is not None:
            return err(status)
        if not line.startswith(b"!"):
            return self._classify(line)
        name, _, args = line[1:].partition(b" ")
        if name in BUFFERED and len(args) > LINE_MAX:
            return err(Status.LINE_TOO_LONG)
        if name == b"c":
            return self._classify(args)
        if name == b"ping":
            return "ok pong" if not args else err(Status.BAD_ARGUMENT, "ping takes no argument")
        if name == b"info":
            return self.info_reply() if not args else err(Status.BAD_ARGUMENT, "info takes no argument")
        if name == b"tok":
            text = self._text(args)
            if text is None:
                return err(Status.BAD_UTF8)
            ids = self.ids(text)
            return f"ok tok n={len(ids)} ids={','.join(map(str, ids))}"
        if name == b"policy":
            return self._policy(args)
        echo = "".join(chr(b) if 0x20 < b < 0x7F else "?" for b in name[:ECHO_MAX])
        return err(Status.UNKNOWN_COMMAND, "!" + echo + ("..." if len(name) > ECHO_MAX else ""))

    def replies(self, data: bytes | list[int], at_eof: bool = False) -> list[str]:
        lines = split_lines(data, at_eof=at_eof)
        # one batched deploy run for all classifications, then the replies in order
        texts = []
        for line, st in lines:
            body = line[3:] if line.startswith(b"!c ") else line
            if st is None and (not line.startswith(b"!") or line.startswith(b"!c ")):
                t = self._text(body)
                if t is not None and self.all_ids(t):
                    texts.append(self.all_ids(t))
        if texts:
            self.stats(texts)
        return [self.reply(line, st) for line, st in lines]


# --------------------------------------------------------------------------- inputs

NON_ASCII = ["é", "naïve", "café", "🎬", "über", "日本語", "—", "£1000", "Ñandú", "👩‍💻", "déjà"]


def sentences(ref: Reference, n: int, seed: int) -> list[str]:
    """Seeded sentences: vocabulary words (with ## continuations glued on), upper case,
    random ASCII with punctuation, non-ASCII; some start with '!', some overflow seq_max."""
    rng = random.Random(seed)
    vocab = sorted(ref.tok.get_vocab())
    initial = [w for w in vocab if not w.startswith("##") and not w.startswith("[")]
    cont = [w[2:] for w in vocab if w.startswith("##")]
    printable = string.ascii_letters + string.digits + string.punctuation
    out = []
    for i in range(n):
        words = []
        for _ in range(rng.randint(1, 40 if i % 3 else 8)):
            r = rng.random()
            if r < 0.6:
                w = rng.choice(initial) + (rng.choice(cont) if cont and rng.random() < 0.3 else "")
                words.append(w.upper() if rng.random() < 0.1 else w)
            elif r < 0.85:
                words.append("".join(rng.choice(printable) for _ in range(rng.randint(1, 12))))
            else:
                words.append(rng.choice(NON_ASCII))
        text = rng.choice([" ", " ", "  ", "\t", ", "]).join(words)
        out.append("!" + text if i % 17 == 0 else text)
    return out


def pool(ref: Reference, start: int, n: int) -> list[str]:
    """n sentences of one seeded pool of 200 per artifact (one mirror run serves all tests)."""
    texts = sentences(ref, 200, seed=1)
    return [texts[(start + i) % len(texts)] for i in range(n)]


def request(text: str) -> bytes:
    return (("!c " + text) if text.startswith("!") else text).encode("utf-8") + b"\n"


# --------------------------------------------------------------------------- transports

class Emulator:
    """The host emulator on pipes: a reader thread queues reply lines as they come."""

    def __init__(self, exe: Path):
        self.p = subprocess.Popen([str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        self.q: queue.Queue = queue.Queue()
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        for line in self.p.stdout:
            self.q.put(line)
        self.q.put(None)

    def send(self, data: bytes):
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def replies(self, n: int) -> list[str]:
        out = []
        for _ in range(n):
            try:
                line = self.q.get(timeout=TIMEOUT)
            except queue.Empty:
                raise AssertionError(f"no reply after {TIMEOUT}s; got {len(out)} of {n}: {out[-3:]}") from None
            if line is None:
                raise AssertionError(f"emulator closed its output after {len(out)} of {n} replies; "
                                     f"stderr: {self.p.stderr.read().decode(errors='replace')[-3000:]}")
            assert line.endswith(b"\n")
            out.append(line[:-1].decode("utf-8", errors="surrogateescape"))
        return out

    def close(self, extra_input: bytes = b"") -> list[str]:
        """Close stdin; return any replies still to come; check a clean exit."""
        if extra_input:
            self.send(extra_input)
        self.p.stdin.close()
        rc = self.p.wait(timeout=TIMEOUT)
        rest = []
        while (line := self.q.get(timeout=TIMEOUT)) is not None:
            rest.append(line.decode("utf-8", errors="surrogateescape").rstrip("\n"))
        stderr = self.p.stderr.read().decode(errors="replace")
        assert rc == 0 and not stderr, f"exit {rc}, stderr:\n{stderr[-4000:]}"
        return rest


def normalise(reply: str) -> str:
    return re.sub(r" cost=\d+ unit=", " cost=* unit=", reply)


def check(got: list[str], want: list[str], requests: list[bytes] | None = None):
    """Every reply equal (cost aside: an integer); all mismatches listed."""
    assert len(got) == len(want), f"{len(got)} replies, want {len(want)}"
    bad = []
    for i, (g, w) in enumerate(zip(got, want)):
        if normalise(g) != w:
            req = repr(requests[i][:80]) if requests else ""
            bad.append(f"ERROR at reply {i} {req}:\n  got  {g[:300]}\n  want {w[:300]}")
    assert not bad, f"{len(bad)} of {len(want)} replies differ:\n" + "\n".join(bad[:10])


def session(emu, ref: Reference, data: bytes, *, at_eof: bool = False) -> list[str]:
    """Send data at once (pipelined), check every reply against the reference."""
    want = ref.replies(data, at_eof=at_eof)
    if at_eof:
        got = emu.close(data if isinstance(data, bytes) else escape_overruns(data))
    else:
        emu.send(data)
        got = emu.replies(len(want))
    check(got, want, [ln for ln, _ in split_lines(data, at_eof=at_eof)])
    return got


# --------------------------------------------------------------------------- fixtures

_BUILDS: dict[tuple[str, bool], dict] = {}


def _build(tmp_path_factory, cfg_name: str, sanitize: bool) -> dict:
    """The artifact of a configuration and its emulator, built once per test session."""
    key = (cfg_name, sanitize)
    if key not in _BUILDS:
        d = tmp_path_factory.mktemp(f"emu_{cfg_name}_{int(sanitize)}")
        art = tiny_artifact(d / "art", **CONFIGS[cfg_name])
        exe = build_mod.build_host(d / "art", d / "build", sanitize=sanitize)
        _BUILDS[key] = {"art": art, "exe": exe, "dir": d / "build", "sanitize": sanitize}
    return _BUILDS[key]


@pytest.fixture(scope="module", params=BUILDS, ids=[f"{c}{'-asan' if s else ''}" for c, s in BUILDS])
def built(request, tmp_path_factory):
    return _build(tmp_path_factory, *request.param)


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def plain(request, tmp_path_factory):
    """The plain (unsanitized) build, for tests that need one build per configuration."""
    return _build(tmp_path_factory, request.param, False)


@pytest.fixture
def ref(built):
    return Reference(built["art"])


@pytest.fixture
def emu(built):
    e = Emulator(built["exe"])
    yield e
    if e.p.poll() is None:
        extra = e.close()
        assert not extra, f"replies nobody asked for: {extra[:5]}"


# --------------------------------------------------------------------------- tests: model parity

def test_classify_matches_deploy_mirror(emu, ref):
    texts = pool(ref, 0, 200)
    data = b"".join(request(t) for t in texts)
    got = session(emu, ref, data)
    depths = [int(re.search(r"exit=(\d+)/", g).group(1)) for g in got if g.startswith("ok")]
    assert len(depths) >= 190
    assert all(int(re.search(r"cost=(\d+)", g).group(1)) >= 0 for g in got if g.startswith("ok"))


def test_tok_matches_tokenizer(emu, ref):
    texts = sentences(ref, 150, seed=2) + ["", " ", "[CLS]", "!", "a" * 101, "x " * 40]
    data = b"".join(b"!tok " + t.encode() + b"\n" for t in texts) + b"!tok\n"
    got = session(emu, ref, data)
    assert got[-1] == "ok tok n=1 ids=2" and got[-2].startswith("ok tok n=")


def test_info(emu, ref, built):
    line = session(emu, ref, b"!info\n!ping\n!info extra\n!info\n")[0]
    assert f"hash={built['art'].hash}" in line and "board=host" in line and line.endswith(f" unit=ns line=512 window={protocol.WINDOW} first={cost.first_exit(built['art'].config)} ring={protocol.RX_RING}")
    manifest = json.loads((built["dir"] / "build.json").read_text())
    assert manifest["artifact_hash"] == built["art"].hash and manifest["ram_bytes"] > 0


def policy_commands(ref: Reference) -> list[bytes]:
    early = ref.n_exits - 1
    return [
        b"!policy none",
        b"!policy entropy 0.25",
        b"!policy entropy 0x3e800000",
        b"!policy entropy 2",
        b"!policy confidence " + b",".join([b"0.6"] * early),
        b"!policy confidence " + b",".join(b"0x3f%02x0000" % (0x10 + 8 * i) for i in range(early)),
        b"!policy budget " + b",".join([b".9"] * early),
        b"!policy confidence " + b",".join([b"1.5"] * early),   # never exits early
        b"!policy confidence " + b",".join([b"-0"] * early),    # always takes the first exit
    ]


BAD_POLICY_ARGS = [
    b"!policy bogus", b"!policy NONE", b"!policy none 0.1", b"!policy entropy",
    b"!policy entropy 0.1,0.2", b"!policy entropy abc", b"!policy entropy 1e-3", b"!policy entropy 0x",
    b"!policy entropy 0x123456789", b"!policy entropy 0x7fc00000", b"!policy entropy 0.5,",
    b"!policy entropy ,0.5", b"!policy entropy 1.2.3", b"!policy entropy .", b"!policy entropy -",
    b"!policy entropy 1234567890123456789", b"!policy entropy  0.5", b"!policy entropy nan",
    b"!policy entropy inf", b"!policy confidence", b"!policy budget 0.5,0.5,0.5,0.5",
    b"!policy entropy 0x7f800000", b"!policy entropy 0xff800000", b"!policy entropy -0.5",
    b"!policy entropy 0x80000001",
    b"!policy entropy \xff", b"!policy \x00",
]


def test_policy_switch_at_run_time(emu, ref):
    texts = pool(ref, 0, 60)
    probe = b"".join(request(t) for t in texts)
    data = b""
    for cmd in policy_commands(ref):
        data += cmd + b"\n" + probe + b"!policy\n"
    got = session(emu, ref, data)
    # the depths really change with the policy (the test is not vacuous)
    assert len({g.split(" exit=")[1].split(" ")[0] for g in got if " exit=" in g}) >= 2


def long_lines(ref: Reference, seed: int, n: int = 40) -> list[str]:
    """Lines of up to LINE_MAX bytes with far more ids than seq_max (head + tail, and
    a wide exit that counts every id), plus lines just around seq_max - 1 ids."""
    rng = np.random.default_rng(seed)
    words = [w for w in tok_mod.vocab_list(ref.tok) if w.isalpha()] or ["a"]
    out = []
    while len(out) < n:
        line = " ".join(rng.choice(words, size=int(rng.integers(5, 200))))[:LINE_MAX - 8].rstrip()
        if line:
            out.append(line)
    seq = ref.cfg["seq_max"]
    for k in (seq - 2, seq - 1, seq, seq + 1):   # ids around the cut
        out.append(" ".join(rng.choice(words, size=max(k, 1))))
    return [t for t in out if len(t.encode()) <= LINE_MAX - 8]   # room for "!tok "


def test_long_lines_every_exit_and_policy(emu, ref):
    """Whole lines longer than seq_max: block ids are head + tail, the wide exit counts
    every id; C == the deploy mirror under every policy, exit 0 included."""
    texts = long_lines(ref, 7)
    assert any(len(ref.all_ids(t)) > 3 * ref.cfg["seq_max"] for t in texts)
    probe = b"".join(request(t) for t in texts)
    got_tok = session(emu, ref, b"".join(b"!tok " + t.encode() + b"\n" for t in texts))
    assert all(g.startswith("ok tok") for g in got_tok)
    data = b""
    for cmd in policy_commands(ref):
        data += cmd + b"\n" + probe
    session(emu, ref, data)


def test_bad_policy_arguments_keep_the_old_policy(emu, ref):
    texts = pool(ref, 60, 10)
    probe = b"".join(request(t) for t in texts)
    data = policy_commands(ref)[4] + b"\n" + probe
    for bad in BAD_POLICY_ARGS:
        data += bad + b"\n!policy\n" + probe
    got = session(emu, ref, data)
    assert sum(g.startswith("err 5 BAD_ARGUMENT") for g in got) == len(BAD_POLICY_ARGS)


def test_threshold_decimals_round_exactly(emu, ref):
    rng = random.Random(5)
    vals = [b"16777217", b"16777219", b"33554435", b"0.1", b"0.3", b"1", b"0", b"-0", b"+0.5", b".5", b"5.",
            b"0.00000000000000001", b"999999999999999999", b"123456789.123456789", b"0.10000000149011612"]
    for _ in range(150):
        digits = rng.randint(1, DEC_DIGITS_MAX)
        s = "".join(rng.choice(string.digits) for _ in range(digits))
        p = rng.randint(0, digits)
        vals.append(((rng.choice(["", "+"])) + s[:p] + "." + s[p:]).encode())   # negatives are refused
    data = b"".join(b"!policy entropy " + v + b"\n" for v in vals)
    got = session(emu, ref, data)
    assert all(g.startswith("ok policy=entropy") for g in got)


# --------------------------------------------------------------------------- tests: the line protocol

def valid(ref: Reference, seed: int) -> bytes:
    """A few valid requests to put around every hostile one."""
    return b"!ping\n" + b"".join(request(t) for t in pool(ref, 3 * seed, 3)) + b"!tok the film\n"


CASES = {
    "cr_lf_crlf": b"the film\rthe film\nthe film\r\nis a bore\r\n\r\n\n\r\r\r\n!ping\r",
    "line_max_exact": b"!tok " + b" " * (LINE_MAX - 5 - 4) + b"film\n" + b"a " * (LINE_MAX // 2) + b"\n",
    "line_max_plus_one": b"!tok " + b" " * (LINE_MAX - 5 - 3) + b"film\n" + b"a " * (LINE_MAX // 2) + b"b\n",
    "command_over_line_max": b"!policy " + b"x" * (LINE_MAX + 1) + b"\n!info " + b"y" * (3 * LINE_MAX) + b"\n",
    "megabyte_flood": b"x" * (1 << 20) + b"\n",
    "megabyte_flood_crlf_after": b"!" * (1 << 20) + b"\r\n",
    "bad_utf8": b"\xff\n abc\xc3\nabc\xed\xa0\x80\n\xc0\xaf\n\xf4\x90\x80\x80 x\n!tok \xfe\n!c \x80\n",
    "nul_and_control": b"the\x00film\x01is\x1b[31m red\x7f\n\x00\n!tok a\x00b\x7fc\x1f\n\x00\x00the\n",
    "empty_and_spaces": b"\n   \n\t \x00\x01\n!c \n!c\n!tok\n!tok \n",
    "unknown_commands": b"!foo\n!\n! ping\n!PING\n!pingx\n!ping x\n!info x\n!" + b"z" * 40 + b" y\n!\xff\x00\x01\n!cc x\n",
    "bang_text": b"!c !text\n!c !ping\n!c !c !c\n",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_protocol_case(emu, ref, case):
    data = valid(ref, 10) + CASES[case] + valid(ref, 11) + CASES[case] + valid(ref, 12)
    session(emu, ref, data)


def test_random_binary_garbage(emu, ref):
    rng = random.Random(6)
    data = b""
    for k in range(20):
        n = rng.choice([1, 10, 100, 600, 5000])
        data += bytes(rng.getrandbits(8) for _ in range(n)) + b"\n" + valid(ref, 20 + k)
    session(emu, ref, data)


def test_unterminated_last_line_is_answered_at_eof(emu, ref):
    session(emu, ref, valid(ref, 30) + b"the film", at_eof=True)


def test_pipelined_mixed_requests_in_order(emu, ref):
    rng = random.Random(7)
    pool_ = [request(t) for t in pool(ref, 100, 40)] + [
        b"!ping\n", b"!info\n", b"!tok is a bore\n", b"\n", b"\xff\n", b"!nope\n", b"!policy\n",
        b"x" * (LINE_MAX + 1) + b"\n"]
    data = b"".join(rng.choice(pool_) for _ in range(400))
    got = session(emu, ref, data)
    assert len(got) == 400


# --------------------------------------------------------------------------- pty

class PtyEmulator:
    """The emulator on the master side of a raw pty, pyserial on the slave's path."""

    def __init__(self, exe: Path):
        import serial
        master, slave = os.openpty()
        tty.setraw(slave)
        self.p = subprocess.Popen([str(exe)], stdin=master, stdout=master, stderr=subprocess.PIPE,
                                  close_fds=True)
        os.close(master)
        self.slave = slave
        self.ser = serial.Serial(os.ttyname(slave), timeout=TIMEOUT)
        self.writer: threading.Thread | None = None

    def send(self, data: bytes):
        # written from a thread: the device may block on its replies until we read them
        if self.writer:
            self.writer.join()
        self.writer = threading.Thread(target=self.ser.write, args=(data,), daemon=True)
        self.writer.start()

    def replies(self, n: int) -> list[str]:
        out = []
        for _ in range(n):
            line = self.ser.readline()
            assert line.endswith(b"\n"), f"timeout after {len(out)} of {n} replies: {line[:80]!r}"
            out.append(line[:-1].decode("utf-8", errors="surrogateescape"))
        return out

    def close(self) -> int:
        if self.writer:
            self.writer.join()
        self.ser.close()
        os.close(self.slave)
        rc = self.p.wait(timeout=TIMEOUT)
        stderr = self.p.stderr.read().decode(errors="replace")
        assert not stderr, stderr[-3000:]
        return rc


def test_over_a_raw_pty(built):
    ref = Reference(built["art"])
    emu = PtyEmulator(built["exe"])
    try:
        check(emu.replies(0), [])
        session(emu, ref, b"!ping\n!info\n")
        session(emu, ref, b"".join(request(t) for t in pool(ref, 50, 100)))
        for case in ("cr_lf_crlf", "bad_utf8", "nul_and_control", "megabyte_flood", "line_max_plus_one"):
            session(emu, ref, valid(ref, 40) + CASES[case] + valid(ref, 41))
        session(emu, ref, policy_commands(ref)[1] + b"\n" + b"".join(request(t) for t in pool(ref, 0, 20)))
    finally:
        rc = emu.close()
    assert rc == 0


# --------------------------------------------------------------------------- receive overruns

# A test platform whose input escapes BX_GETC_OVERRUN: byte 0xF5 (never in UTF-8) then
# 0x00 is an overrun, 0xF5 0xF5 a literal 0xF5. Cost is always 0.
OVERRUN_PLATFORM = r"""
#include <stdio.h>
#include <stdlib.h>
#include "bx_platform.h"
#define ESC 0xF5
void bx_platform_init(void) {}
int bx_platform_getc(void)
{
    int c = getchar();
    if (c == EOF) return BX_GETC_EOF;
    if (c != ESC) return c;
    c = getchar();
    return c == ESC ? ESC : c == EOF ? BX_GETC_EOF : BX_GETC_OVERRUN;
}
void bx_platform_write(const char *s, size_t n) { fwrite(s, 1, n, stdout); fflush(stdout); }
uint64_t bx_platform_cost(void) { return 0; }
void bx_platform_exit(int code) { exit(code); }
"""


def escape_overruns(items: list[int]) -> bytes:
    return b"".join(b"\xf5\x00" if i == OVERRUN else b"\xf5\xf5" if i == 0xF5 else bytes([i]) for i in items)


def test_overrun_marker_answers_the_line_once(plain, tmp_path):
    src = plain["dir"] / "src"
    (tmp_path / "platform_overrun.c").write_text(OVERRUN_PLATFORM)
    exe = gcc(tmp_path / "bx_overrun", sorted(p for p in src.glob("*.c") if p.name != "platform_host.c")
              + [tmp_path / "platform_overrun.c"], [src])
    ref = Reference(plain["art"])
    v = list(valid(ref, 5))
    items = (v + list(b"the ") + [OVERRUN] + list(b"film\n") + v
             + [OVERRUN] + list(b"\n") + list(b"is a bore\r") + [OVERRUN] + list(b"\n") + v
             + list(b"x" * (LINE_MAX + 10)) + [OVERRUN] + list(b"y" * 10) + list(b"\r\n") + v
             + [OVERRUN, OVERRUN] + list(b"!ping\n") + list(b"caf\xf5 \n") + v + [OVERRUN])
    got = session(Emulator(exe), ref, items, at_eof=True)
    assert sum(g == err(Status.OVERRUN) for g in got) == 6


# --------------------------------------------------------------------------- formatters and parser

@pytest.fixture(scope="module")
def fmt_lib(plain, tmp_path_factory):
    """The generated sources minus main.c as a shared library, for the formatters."""
    src = plain["dir"] / "src"
    out = tmp_path_factory.mktemp("fmt") / "libbx.so"
    gcc(out, sorted(p for p in src.glob("*.c") if p.name != "main.c"), [src], ["-shared", "-fPIC"])
    lib = ctypes.CDLL(str(out))
    for fn, arg in (("bx_fmt_fixed4", ctypes.c_float), ("bx_fmt_u64", ctypes.c_uint64),
                    ("bx_fmt_i32", ctypes.c_int32), ("bx_fmt_hex32", ctypes.c_uint32)):
        getattr(lib, fn).argtypes = [ctypes.c_char_p, arg]
        getattr(lib, fn).restype = ctypes.c_size_t
    lib.bx_parse_f32.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_float)]
    return lib


def call_fmt(lib, fn, v) -> str:
    buf = ctypes.create_string_buffer(64)
    n = getattr(lib, fn)(buf, v)
    return buf.raw[:n].decode()


def test_fixed4_formatter_rounds_like_python(fmt_lib):
    rng = np.random.default_rng(11)
    ties = [np.float32(j / 32) for j in range(0, 2000)]           # odd j/32: exact ties at the 5th decimal
    probs = rng.random(20000).astype(np.float32)
    spread = (rng.random(5000) * np.exp2(rng.integers(-150, 48, 5000))).astype(np.float32)
    bits = rng.integers(0, 2**32, 5000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    special = np.array([0.0, -0.0, 1.0, 0.99995, 0.99994999, 5e-5, 4.9999e-5, 1e-45, 2.0**48 - 1, 2.0**48],
                       dtype=np.float32)
    bad = []
    for x in [*ties, *(-t for t in ties[:100]), *probs, *spread, *bits, *special]:
        x = np.float32(x)
        if np.isnan(x):
            want = "nan"
        elif abs(float(x)) >= 2.0**49:
            want = "-inf" if x < 0 else "inf"
        else:
            want = f"{float(x):.4f}"
        got = call_fmt(fmt_lib, "bx_fmt_fixed4", float(x))
        if got != want:
            bad.append(f"{float(x)!r} ({int(x.view(np.uint32)):08x}): got {got} want {want}")
    assert not bad, "\n".join(bad[:20])


def test_integer_formatters(fmt_lib):
    rng = np.random.default_rng(12)
    for v in [0, 1, 9, 10, 2**32 - 1, 2**63, 2**64 - 1, *rng.integers(0, 2**63, 2000).tolist()]:
        assert call_fmt(fmt_lib, "bx_fmt_u64", v) == str(v)
    for v in [0, -1, 2**31 - 1, -2**31, *rng.integers(-2**31, 2**31, 2000).tolist()]:
        assert call_fmt(fmt_lib, "bx_fmt_i32", v) == str(v)
    for v in [0, 1, 0xDEADBEEF, 2**32 - 1, *rng.integers(0, 2**32, 2000).tolist()]:
        assert call_fmt(fmt_lib, "bx_fmt_hex32", v) == f"{v:08x}"


def test_threshold_parser_against_exact_rounding(fmt_lib):
    rng = random.Random(13)
    cases = [b"0.5", b"1", b"16777217", b"16777219", b"33554433", b"33554435", b"0x3f800000", b"0X7F800000",
             b"0x1", b"0xffffffff", b"00000000000000001", b"0000000000000000001", b"", b"+", b"-", b".", b"1e3",
             b"0x", b"0xg", b"-0x1", b" 1", b"1 ", b"1..2", b"0.1234567890123456789"]
    for _ in range(3000):
        k = rng.randint(1, 20)
        s = "".join(rng.choice(string.digits) for _ in range(k))
        p = rng.randint(0, k)
        cases.append((rng.choice(["", "-", "+"]) + s[:p] + rng.choice([".", ""]) + s[p:]).encode())
    bad = []
    for c in cases:
        f = ctypes.c_float()
        rc = fmt_lib.bx_parse_f32(c, len(c), ctypes.byref(f))
        want = parse_threshold(c)
        got = None if rc else np.float32(f.value)
        if (want is None) != (got is None) or (want is not None and want.view(np.uint32) != got.view(np.uint32)):
            bad.append(f"{c!r}: got {got!r} want {want!r}")
    assert not bad, "\n".join(bad[:20])


def test_generation_is_deterministic(plain, tmp_path):
    a = project.write_sources(plain["art"], tmp_path / "a", board_name="host", cost_unit="ns")
    b = project.write_sources(plain["art"].path, tmp_path / "b", board_name="host", cost_unit="ns")
    assert [p.name for p in a] == [p.name for p in b]
    for pa, pb in zip(a, b):
        assert pa.read_bytes() == pb.read_bytes(), pa.name
    board = (tmp_path / "a" / "bx_board.h").read_text()
    assert '#define BX_BOARD_NAME   "host"' in board and "#define BX_LINE_MAX     512" in board
    c = project.write_sources(plain["art"], tmp_path / "c", board_name="mps2-an386", cost_unit="instr",
                                   line_max=256, defines=[("BX_UART_BASE", "0x40004000u")])
    assert "#define BX_UART_BASE 0x40004000u" in c[[p.name for p in c].index("bx_board.h")].read_text()
    with pytest.raises(ValueError):
        project.write_sources(plain["art"], tmp_path / "d", board_name="a b", cost_unit="ns")
    with pytest.raises(ValueError):
        project.write_sources(plain["art"], tmp_path / "d", board_name="x", cost_unit="ns", line_max=4)


def test_build_errors_carry_gcc_stderr(plain, tmp_path, monkeypatch):
    monkeypatch.setattr(cflags, "HOST_OPT", cflags.HOST_OPT + ["-DBX_LINE_MAX=oops"])
    with pytest.raises(build_mod.BuildError, match="BX_LINE_MAX"):
        build_mod.build_host(plain["art"], tmp_path / "b")


@pytest.mark.parametrize("isa", [n for n in build_mod.HOST_ISA_NAMES if n in build_mod.host_isa_levels()])
def test_every_x86_path_gives_the_same_replies(plain, tmp_path, isa):
    """`build --isa`: each kernel path this machine has (portable C up to AVX-512) is
    compiled and must answer exactly as the deploy mirror, like the default build."""
    exe = build_mod.build_host(plain["art"], tmp_path / isa, isa=isa)
    assert json.loads((tmp_path / isa / build_mod.MANIFEST).read_text())["isa"] == isa
    ref = Reference(plain["art"])
    emu = Emulator(exe)
    session(emu, ref, b"".join(request(t) for t in pool(ref, 1, 60)))
    assert not emu.close()


def test_unavailable_x86_path_is_refused(plain, tmp_path, monkeypatch):
    monkeypatch.setattr(cflags, "host_cpu_flags", lambda: {"popcnt"})
    with pytest.raises(build_mod.BuildError, match=r"'avx2' is not available on this machine \(it has: portable, popcnt"):
        build_mod.build_host(plain["art"], tmp_path / "b", isa="avx2")
    with pytest.raises(build_mod.BuildError, match="known: portable, popcnt, avx2, avx512"):
        build_mod.build_host(plain["art"], tmp_path / "b", isa="neon")
