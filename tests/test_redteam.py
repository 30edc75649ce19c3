"""Issue 14's red team: one test per defect class, on the host emulator, and on QEMU
(mps2-an386, netduinoplus2) where the defect is the device's.

    1 pipelined requests lost or merged      test_pipelining_*, test_beyond_the_window_*
    2 beexgen-infer on slow links            test_latency
    3 tracebacks for odd numbers             test_odd_numbers_are_refused_in_one_line
    4 --artifact trusting meta.json's hash   test_artifact_flag_checks_the_files
    5 inconsistent artifacts                 test_inconsistent_artifact_is_refused
    6 training files                         test_training_file_defects, test_label_rule
    7 a partial line surviving a reconnect   test_partial_line_before_connect_*
    8 the emulator dying of SIGPIPE          test_emulator_closed_stdout_exits_2
    9 error messages without the reason      test_errors_name_the_reason

Everything is real: the host emulator and the firmware in QEMU, pyserial over ptys and
sockets. The only stand-in is `Relay`, a thread between the emulator's pty and a host
pty that can hold each reply line back (a slow link) or rewrite it (a broken device).
Expected answers are computed at test time from the host emulator.
"""
from __future__ import annotations

import json
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time
import tty
from pathlib import Path

import pytest
from click.testing import CliRunner

from beexgen.core import artifact, validate
from beexgen.cli import main as beexgen_cli
from beexgen.codegen import build, firmware
from beexgen.core import protocol
from beexgen.host import infer
from beexgen.host.client import Client
from beexgen.host.transport import open_transport
from beexgen.train import data

from conftest import needs
from fixtures import CORPUS, tiny_artifact

QEMU_BOARDS = ["mps2-an386", "netduinoplus2"]
PROBE = b"the film is a charming and often affecting journey"     # 51 bytes, as in the issue
TEXTS = CORPUS + ["!starts with a bang", "x " * 30, "q", "caf\u00e9 \u2615 na\u00efve"]


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("redteam")
    art = tiny_artifact(d / "art")
    exe = build.build_host(art, d / "host")
    with Client(open_transport(f"exec:{exe}", timeout=5)) as c:
        c.handshake()
        ref = {t: c.classify(t) for t in TEXTS + [PROBE.decode(), "a bore", "the film", "the film is"]}
    return {"dir": d, "art": art, "exe": exe, "ref": ref}


@pytest.fixture(scope="module")
def boards(env):
    """Firmware ELF per QEMU board, built once."""
    if not all(map(__import__("shutil").which, (firmware.CC, "qemu-system-arm"))):
        pytest.fail("missing arm-none-eabi-gcc or qemu-system-arm: run `make setup`")
    return {b: firmware.build_firmware(env["art"], b, env["dir"] / b).elf for b in QEMU_BOARDS}


def answer(r) -> tuple:
    """Everything of a classify reply but the measured cost and its unit."""
    return (r.cls, r.label, r.fields["conf"], r.exit_depth, r.tokens, r.bmacs, r.flops, r.logits_hex)


def run_infer(args, input=None):
    return CliRunner().invoke(infer.main, [str(a) for a in args], input=input)


def one_clean_line(text: str) -> bool:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return len(lines) == 1 and "Traceback" not in text


def read_lines(ser, n: int, timeout: float) -> list[str]:
    """Up to n reply lines from a pyserial port; stops after `timeout` s of silence."""
    out, buf = [], b""
    ser.timeout = 0.05
    quiet_until = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < quiet_until:
        chunk = ser.read(65536)
        if chunk:
            quiet_until = time.monotonic() + timeout
            buf += chunk
            *lines, buf = buf.split(b"\n")
            out += [ln.decode("utf-8", "replace").rstrip("\r") for ln in lines]
    return out


# ------------------------------------------------------------------------------ the relay
class Relay:
    """emulator <-pty-> thread <-pty-> client (`self.path`). Each reply line is held back
    `delay` s after it left the emulator (in order: a device `delay` late), optionally
    passed through `rewrite(line) -> line` first."""

    def __init__(self, exe: Path, *, delay: float = 0.0, rewrite=None):
        self.delay, self.rewrite = delay, rewrite
        m, s = os.openpty()
        tty.setraw(s)
        self.proc = subprocess.Popen([str(exe)], stdin=s, stdout=s, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        os.close(s)
        self.dev = m
        self.host, hs = os.openpty()
        tty.setraw(hs)
        self.host_slave = hs
        self.path = os.ttyname(hs)
        self.held: list[tuple[float, bytes]] = []
        self.pending = b""
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            now = time.monotonic()
            while self.held and self.held[0][0] <= now:
                os.write(self.host, self.held.pop(0)[1])
            wait = min([0.02] + [max(0.0, self.held[0][0] - now)] if self.held else [0.02])
            try:
                ready, _, _ = select.select([self.dev, self.host], [], [], wait)
            except (OSError, ValueError):
                return
            if self.dev in ready:
                try:
                    self.pending += os.read(self.dev, 65536)
                except OSError:
                    return
                while b"\n" in self.pending:
                    line, _, self.pending = self.pending.partition(b"\n")
                    if self.rewrite:
                        line = self.rewrite(line)
                    self.held.append((time.monotonic() + self.delay, line + b"\n"))
            if self.host in ready:
                try:
                    os.write(self.dev, os.read(self.host, 65536))
                except OSError:
                    pass

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.proc.kill()
        self.proc.wait()
        for fd in (self.dev, self.host, self.host_slave):
            os.close(fd)


# ============================================================================== 1 pipelining
def _probe_lines(n: int) -> bytes:
    return b"".join(b"#%d " % i + PROBE + b"\n" for i in range(n))


def _check_pipelined(replies: list[str], n: int, ref) -> int:
    """Every line answered once, in order, by its id; each ok equal to the emulator's
    unpipelined answer, each error an OVERRUN. Returns the number of ok replies."""
    assert len(replies) == n, f"{len(replies)} replies to {n} lines"
    ok = 0
    for i, line in enumerate(replies):
        if line.startswith(f"#{i} ok "):
            assert answer(protocol.parse_reply(line[len(f"#{i} "):])) == answer(ref), line
            ok += 1
        else:
            assert line in (f"#{i} err 7 OVERRUN", "err 7 OVERRUN"), f"reply {i}: {line!r}"
    return ok


def test_pipelining_host_emulator(env):
    r = subprocess.run([str(env["exe"])], input=_probe_lines(100), capture_output=True, timeout=60)
    assert _check_pipelined(r.stdout.decode().splitlines(), 100, env["ref"][PROBE.decode()]) == 100


@needs(firmware.CC, "qemu-system-arm")
@pytest.mark.parametrize("board", QEMU_BOARDS)
def test_pipelining_qemu(env, boards, board):
    """100 probe lines in one write (the issue: 74 and 46 replies before): each answered
    once, in order; then the client at the device's window: every answer right, no retry."""
    import serial

    from beexgen.codegen.emulate import handshake, start_qemu
    with start_qemu(boards[board], board, log=env["dir"] / f"{board}-pipe.log") as q:
        ser = serial.serial_for_url(q.url, timeout=5)
        try:
            handshake(ser, timeout=15)
            ser.write(_probe_lines(100))
            got = read_lines(ser, 100, timeout=5.0)
        finally:
            ser.close()
        ok = _check_pipelined(got, 100, env["ref"][PROBE.decode()])
        print(f"\n{board}: 100 lines in one write: 100 replies in order, {ok} ok, {100 - ok} err OVERRUN")
        with Client(open_transport(q.url, timeout=10), timeout=10) as c:
            c.handshake()
            texts = (TEXTS * 8)[:96]
            t0 = time.monotonic()
            got = list(c.classify_many(texts))
            dt = time.monotonic() - t0
            assert c.stats["retries"] == 0 and c.device_window() == protocol.WINDOW
        assert [answer(r) for r in got] == [answer(env["ref"][t]) for t in texts]
        print(f"{board}: {len(texts)} texts at window {protocol.WINDOW}: all right, {dt:.1f} s")


@needs(firmware.CC, "qemu-system-arm")
def test_beyond_the_window_every_line_gets_one_reply(env):
    """A 64-byte ring and 300 mixed lines (LF, CR, CRLF endings, with and without ids) in
    one write: far beyond the window, bytes are dropped, yet every line gets exactly one
    reply, in order, and an ok reply is the right answer to its own line (none merged)."""
    import serial

    from beexgen.codegen.emulate import handshake, start_qemu
    board = "mps2-an386"
    b = firmware.build_firmware(env["art"], board, env["dir"] / "ring64", defines={"BX_RX_RING": 64})
    texts = [t for t in TEXTS if not t.startswith("!")]
    ends = [b"\n", b"\r", b"\r\n"]
    lines, want = [], []
    for i in range(300):
        t = texts[i % len(texts)]
        lines.append(b"#%d " % i + protocol.classify_request(t).rstrip(b"\n") + ends[i % 3])
        want.append(t)
    with start_qemu(b.elf, board, log=env["dir"] / "ring64.log") as q:
        ser = serial.serial_for_url(q.url, timeout=5)
        try:
            handshake(ser, timeout=15)
            ser.write(b"".join(lines))
            got = read_lines(ser, 301, timeout=5.0)
            ser.write(b"#999 !ping\n")
            after = read_lines(ser, 1, timeout=5.0)
        finally:
            ser.close()
    assert len(got) == 300, f"{len(got)} replies to 300 lines"
    ok = 0
    for i, line in enumerate(got):
        m = re.match(r"#(\d+) (.*)", line)
        if m:
            assert int(m.group(1)) == i, f"reply {i} carries id {m.group(1)}: {line!r}"
            body = m.group(2)
        else:
            body = line
        if body.startswith("ok "):
            assert m and answer(protocol.parse_reply(body)) == answer(env["ref"][want[i]]), line
            ok += 1
        else:
            assert body == "err 7 OVERRUN", line
    assert 0 < ok < 300 and after == ["#999 ok pong"]
    print(f"\n64-byte ring, 300 lines in one write: 300 replies in order, {ok} ok, {300 - ok} err OVERRUN")


# ============================================================================== 2 latency
@pytest.mark.parametrize("delay", [0.2, 2.0])
def test_latency(env, tmp_path, delay):
    """A device that answers every request `delay` s late, in order: beexgen-infer
    --timeout 5 exits 0 with no retry and every answer right (the issue: exit 2 at 1 s)."""
    relay = Relay(env["exe"], delay=delay)
    texts = TEXTS[:8]
    f = tmp_path / "in.txt"
    f.write_text("\n".join(texts) + "\n", encoding="utf-8")
    try:
        t0 = time.monotonic()
        res = run_infer(["--port", relay.path, "--timeout", "5", "--json", "--no-progress", f])
        dt = time.monotonic() - t0
    finally:
        relay.close()
    assert res.exit_code == 0, res.output
    assert "link:" not in res.stderr, res.stderr            # no retries, no garbage, no stale replies
    objs = [json.loads(s) for s in res.stdout.splitlines()]
    assert [o["logits_hex"] for o in objs] == [env["ref"][t].logits_hex for t in texts]
    assert [o["exit"] for o in objs] == [env["ref"][t].exit_depth for t in texts]
    print(f"\nlatency {delay} s: {len(texts)} lines in {dt:.1f} s, exit 0, no retries")


# ============================================================================== 3 odd numbers
@pytest.mark.parametrize("args,needle", [
    (["--timeout", "nan"], "--timeout"), (["--timeout", "inf"], "--timeout"), (["--timeout", "-1"], "--timeout"),
    (["--policy", "entropy:1e40"], "float32"), (["--policy", "entropy:nan"], "finite"),
    (["--policy", "confidence:-0.5,0.5"], ">= 0"), (["--reconnect-wait", "inf"], "--reconnect-wait"),
    (["--window", "0"], "--window"),
])
def test_odd_numbers_are_refused_in_one_line(env, args, needle):
    res = run_infer(["--emulator", env["exe"], "--info", *args])
    assert res.exit_code == infer.EXIT_USAGE, res.output
    assert needle in res.stderr and "Traceback" not in res.output, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception


# ============================================================================== 4 --artifact
def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


def _flip(d):
    p = d / "weights.safetensors"
    b = bytearray(p.read_bytes())
    b[-3] ^= 0x10
    p.write_bytes(bytes(b))


def _truncate(d):
    p = d / "weights.safetensors"
    p.write_bytes(p.read_bytes()[:-64])


def _meta_edit(key, value):
    def edit(d):
        p = d / "meta.json"
        m = json.loads(p.read_text())
        m[key] = value
        p.write_text(json.dumps(m))
    return edit


@pytest.mark.parametrize("name,damage,needle", [
    ("flipped", _flip, "hash mismatch"),
    ("truncated", _truncate, "hash mismatch"),
    ("no_tokenizer", lambda d: (d / "tokenizer.json").unlink(), "tokenizer.json: missing"),
    ("other_version", _meta_edit("format_version", artifact.FORMAT_VERSION + 1),
     f"format version {artifact.FORMAT_VERSION + 1}"),
    ("format", _meta_edit("format", "onnx"), "not a beexgen artifact"),
])
def test_artifact_flag_checks_the_files(env, tmp_path, name, damage, needle):
    d = _copy(env["art"].path, tmp_path / name)
    damage(d)
    res = run_infer(["--emulator", env["exe"], "--info", "--artifact", d])
    assert res.exit_code == infer.EXIT_USAGE, res.output
    assert needle in res.stderr and one_clean_line(res.stderr), res.stderr
    with pytest.raises(artifact.ArtifactError, match=needle):
        artifact.load(d)


# ============================================================================== 5 inconsistent
def _rehash(d: Path, edit_meta=None, tokenizer=None) -> Path:
    """An edit by hand or by a buggy exporter: the hash is recomputed, so only the
    consistency checks can catch it."""
    meta = json.loads((d / "meta.json").read_text())
    if edit_meta:
        edit_meta(meta)
    if tokenizer is not None:
        (d / "tokenizer.json").write_text(tokenizer)
    meta["hash"] = validate.content_hash(meta, (d / "weights.safetensors").read_bytes(),
                                         (d / "tokenizer.json").read_bytes())
    (d / "meta.json").write_text(json.dumps(meta))
    return d


def _cfg(key, value):
    return lambda m: m["config"].__setitem__(key, value)


def _foreign_tokenizer(tok_json: str) -> str:
    t = json.loads(tok_json)
    t["model"]["type"] = "BPE"
    return json.dumps(t)


INCONSISTENT = {
    "heads_not_dividing": (_cfg("n_heads", 3), "config.n_heads"),
    "classes_vs_names": (lambda m: m["classes"].pop(), "classes"),
    "thresholds_count": (lambda m: m["exit_policy"].__setitem__("thresholds", [0.1, 0.2, 0.3]),
                         "exit_policy.thresholds"),
    "vocab_vs_tokenizer": (_cfg("vocab_size", 500), "config.vocab_size"),
    "seq_max_0": (_cfg("seq_max", 0), "config.seq_max"),
    "seq_max_huge": (_cfg("seq_max", 100000), "config.seq_max"),
    "d_model_string": (_cfg("d_model", "32"), "config.d_model"),
    "d_model_96": (_cfg("d_model", 96), "config.d_model"),
    "nan_threshold": (lambda m: m["exit_policy"].__setitem__("thresholds", [float("nan")]),
                      "exit_policy.thresholds[0]"),
    "unknown_policy": (lambda m: m["exit_policy"].__setitem__("name", "fastest"), "exit_policy.name"),
    "extra_tensor_claim": (_cfg("slfn", False), "slfn"),
    "foreign_tokenizer": (None, "tokenizer.json"),
}


@pytest.mark.parametrize("case", sorted(INCONSISTENT))
def test_inconsistent_artifact_is_refused(env, tmp_path, case):
    """Each case of the issue's item 5: refused by load, `beexgen build` and
    `beexgen-infer --artifact` with one line naming the field, no traceback."""
    edit, field = INCONSISTENT[case]
    d = _copy(env["art"].path, tmp_path / case)
    tok = _foreign_tokenizer(env["art"].tokenizer_json) if case == "foreign_tokenizer" else None
    _rehash(d, edit, tok)
    with pytest.raises(artifact.ArtifactError) as e:
        artifact.load(d)
    assert field in str(e.value) and "\n" not in str(e.value), str(e.value)
    res = CliRunner().invoke(beexgen_cli, ["build", str(d), "--target", "host", "--out", str(tmp_path / "b")])
    assert res.exit_code != 0 and field in res.output and one_clean_line(res.output), res.output
    assert not (tmp_path / "b" / "src").exists()                 # refused before any C was written
    res = run_infer(["--emulator", env["exe"], "--info", "--artifact", d])
    assert res.exit_code == infer.EXIT_USAGE and field in res.stderr and one_clean_line(res.stderr), res.output


def test_expected_tensors_is_what_export_writes(env):
    """The validator's table and the exporter agree (the table is the contract)."""
    want = validate.expected_tensors(env["art"].config)
    got = {k: (str(v.dtype), v.shape) for k, v in env["art"].tensors.items()}
    assert got == want
    assert list(validate.POLICY_NAMES) == [p.name.lower() for p in artifact.Policy]


# ============================================================================== 6 data files
def _w(tmp_path, name, content):
    p = tmp_path / name
    (p.write_bytes if isinstance(content, bytes) else p.write_text)(content)
    return p


GOOD = "".join(f'{{"text": "sentence {i}", "label": "{"ab"[i % 2]}"}}\n' for i in range(40))


@pytest.mark.parametrize("name,content,needle", [
    ("surrogate.jsonl", GOOD + '{"text": "bad \\ud800 text", "label": "a"}\n', r"surrogate\.jsonl:41: .*lone surrogate"),
    ("dup.csv", "text,label,text\n" + "".join(f"t{i},{'ab'[i % 2]},u{i}\n" for i in range(40)),
     r"dup\.csv: column 'text' appears 2 times"),
    ("bom_bad.csv", b"text,label\n" + b"ok,a\n" * 20 + b"caf\xe9,b\n", r"bom_bad\.csv:22: bytes that are not UTF-8"),
])
def test_training_file_defects(tmp_path, name, content, needle):
    with pytest.raises(data.DataError, match=needle):
        data.load_dataset(str(_w(tmp_path, name, content)))


def test_tiny_data_set_is_refused_before_training(tmp_path):
    """A class with one example in a tiny set: the validation split would be empty (the
    issue: "Mean of empty slice", then "no checkpoint.pt")."""
    p = _w(tmp_path, "tiny.csv", "text,label\n" + "".join(f"t{i},a\n" for i in range(4)) + "u,b\n")
    ds = data.load_dataset(str(p))
    with pytest.raises(data.DataError, match=r"too few: the validation split would be empty"):
        data.split_dataset(ds, 0)


def test_label_rule(tmp_path, capsys):
    rows = [{"text": f"t{i}", "label": lab} for i, lab in enumerate([1, "1", 1.0, False, " 1 ", "x", 0, "0.50"] * 5)]
    p = _w(tmp_path, "labels.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    ds = data.load_dataset(str(p))
    assert data.class_names(ds) == ["0", "0.5", "1", "false", "x"]
    err = capsys.readouterr().err
    assert re.search(r"warning: .*labels\.jsonl: label values .* are all class '1'", err), err
    csv_p = _w(tmp_path, "labels.csv", "text,label\n" + "".join(f"t{i},{lab}\n" for i, lab in
                                                                   enumerate(["1", "01", "1.0", "2"] * 5)))
    assert data.class_names(data.load_dataset(str(csv_p))) == ["1", "2"]
    assert "all class '1'" in capsys.readouterr().err


def test_infer_reads_a_csv_with_a_bom(env, tmp_path):
    f = _w(tmp_path, "bom.csv", "\ufefftext,label\nthe film,class0\n".encode("utf-8"))
    res = run_infer(["--emulator", env["exe"], "--json", f])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["logits_hex"] == env["ref"]["the film"].logits_hex


# ============================================================================== 7 partial line
def test_partial_line_before_connect_host_emulator(env):
    """Another program left "the film is" (no line end) in the device's buffer: the
    client's leading line end ends it, before any request of the client: the device's
    first reply is to "the film is" alone, and " a bore" is classified on its own."""
    seen = []
    relay = Relay(env["exe"], rewrite=lambda ln: seen.append(ln) or ln)
    try:
        fd = os.open(relay.path, os.O_RDWR | os.O_NOCTTY)
        os.write(fd, b"the film is")
        os.close(fd)
        time.sleep(0.2)
        with Client(open_transport(relay.path, timeout=5), timeout=5) as c:
            c.handshake()
            assert answer(c.classify("a bore")) == answer(env["ref"]["a bore"])
    finally:
        relay.close()
    assert answer(protocol.parse_reply(seen[0].decode())) == answer(env["ref"]["the film is"]), seen[0]


@needs(firmware.CC, "qemu-system-arm")
@pytest.mark.parametrize("board", QEMU_BOARDS)
def test_partial_line_before_connect_qemu(env, boards, board):
    from beexgen.codegen.emulate import start_qemu
    with start_qemu(boards[board], board, log=env["dir"] / f"{board}-partial.log") as q:
        port = int(q.url.rsplit(":", 1)[1])
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"the film is")
        time.sleep(0.3)
        s.close()
        time.sleep(0.2)
        with Client(open_transport(q.url, timeout=10), timeout=10) as c:
            c.handshake()
            assert answer(c.classify("a bore")) == answer(env["ref"]["a bore"])


# ============================================================================== 8 SIGPIPE
def test_emulator_closed_stdout_exits_2(env):
    """stdout a closed pipe: the documented exit status 2, not death by SIGPIPE (-13)."""
    r, w = os.pipe()
    os.close(r)
    p = subprocess.Popen([str(env["exe"])], stdin=subprocess.PIPE, stdout=w, stderr=subprocess.DEVNULL)
    os.close(w)
    try:
        p.stdin.write(b"!ping\nthe film\n" * 100)
        p.stdin.close()
    except BrokenPipeError:
        pass
    assert p.wait(timeout=10) == 2


# ============================================================================== 9 reasons
@pytest.mark.parametrize("rewrite,needle", [
    (lambda ln: ln.replace(b"label=class", b"label=klass"), "does not match the device's labels"),
    (lambda ln: re.sub(rb"conf=[0-9.]+", b"conf=1.5", ln), "conf='1.5'"),
    (lambda ln: re.sub(rb"exit=\d/", b"exit=9/", ln), "exit='9/3'"),
])
def test_errors_name_the_reason(env, tmp_path, rewrite, needle):
    """A device whose classify replies fail validation: the error says what failed (the
    issue: only "reply lost in line noise")."""
    relay = Relay(env["exe"], rewrite=lambda ln: rewrite(ln) if b" ok cls=" in ln else ln)
    try:
        res = run_infer(["--port", relay.path, "--timeout", "2", "--retries", "1", "-"], input="the film\n")
    finally:
        relay.close()
    assert res.exit_code == infer.EXIT_TRANSPORT, res.output
    assert needle in res.stderr and "Traceback" not in res.output, res.stderr


def test_nan_from_the_device_is_a_device_error_not_a_transport_error(env):
    """Weights of 3e38 build firmware that replies `conf=nan`: a device error (exit 3,
    no retries), not a transport error (issue 25)."""
    relay = Relay(env["exe"], rewrite=lambda ln: re.sub(rb"conf=[0-9.]+", b"conf=nan", ln) if b" ok cls=" in ln else ln)
    try:
        res = run_infer(["--port", relay.path, "--timeout", "2", "--retries", "1", "-"], input="the film\n")
    finally:
        relay.close()
    assert res.exit_code == infer.EXIT_DEVICE, res.output
    assert "non-finite" in res.output and "Traceback" not in res.output, res.output


def test_bad_urls_and_thresholds_name_the_reason(env):
    res = run_infer(["--port", "socket://nohostport", "--info"])
    assert res.exit_code == infer.EXIT_TRANSPORT and "HOST:PORT" in res.stderr and one_clean_line(res.stderr)
    # the device refuses non-finite and negative thresholds in hex as in decimal
    req = (b"!policy entropy 0x7f800000\n!policy entropy inf\n!policy confidence 0xbf000000,0.5,0.5\n"
           b"!policy confidence -0.5,0.5,0.5\n!policy confidence -0,1.5,1.5\n")   # wide exit + 3 blocks: 3
    out = subprocess.run([str(env["exe"])], input=req, capture_output=True, timeout=10).stdout.decode().splitlines()
    assert out[:4] == ["err 5 BAD_ARGUMENT bad threshold"] * 4 and out[4].startswith("ok policy=confidence")
