"""host/infer.py and host/transport.py against the real host emulator.

The emulator is built once per module (codegen.build.build_host on tiny_artifact). It is
driven through the CLI (click's CliRunner, or a subprocess where a real pty or a kill is
needed) and through `Client`. The only stand-in is `FaultRelay`, a thread between the
emulator's pty and a host-side pty that injects line noise and can unplug the port.
"""
from __future__ import annotations

import json
import os
import random
import re
import select
import signal
import subprocess
import sys
import threading
import time
import tty
from pathlib import Path

import pytest
from click.testing import CliRunner

from beexgen.host import infer
from beexgen.host.client import Client
from beexgen.core.protocol import DeviceError, Status
from beexgen.host.transport import Disconnected, PortNotFound, open_transport

from fixtures import CORPUS, tiny_artifact

from beexgen.codegen import build

TEXTS = CORPUS + [
    "!starts with a bang", "mixed CASE and punctuation?!", "tabs\tand   spaces",
    "café ☕ naïve", "x " * 40, "the film", "q",
]


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("infer")
    art = tiny_artifact(d / "art")
    other = tiny_artifact(d / "other", seed=1)
    exe = build.build_host(art, d / "build")
    return {"dir": d, "art": art, "other": other, "exe": exe}


@pytest.fixture(scope="module")
def expected(env):
    """Direct Client replies for TEXTS (cost excluded: ns of wall time varies)."""
    with Client(open_transport(f"exec:{env['exe']}", timeout=5)) as c:
        c.handshake()
        return {t: c.classify(t) for t in TEXTS}


def same(a, b) -> bool:
    """Two classify replies agree on everything but the measured cost."""
    drop = lambda r: {k: v for k, v in r.fields.items() if k != "cost"}
    return drop(a) == drop(b)


def run_cli(args, input=None):
    return CliRunner().invoke(infer.main, [str(a) for a in args], input=input)


# ------------------------------------------------------------------------------ the fault relay
class FaultRelay:
    """emulator <-pty-> relay thread <-pty-> client, the client side reached by a stable
    symlink (like /dev/serial/by-id/...). Device->host lines may get noise first: junk
    lines, truncated copies of earlier replies, junk glued onto the front of the reply;
    CRLF/CR endings at random. drop() unplugs the host side (the client sees EIO and the
    path vanish), restore() plugs a fresh pty in under the same path."""

    def __init__(self, exe: Path, link: Path, *, p_noise=0.0, seed=0):
        self.rng = random.Random(seed)
        self.p_noise = p_noise
        self.link = link
        self.injected = 0
        m, s = os.openpty()
        tty.setraw(s)
        self.proc = subprocess.Popen([str(exe)], stdin=s, stdout=s, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        os.close(s)
        self.dev = m
        self.lock = threading.Lock()
        self.host = self.host_slave = None
        self.pending = b""
        self.history: list[bytes] = []
        self.stop = False
        self._plug()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _plug(self):
        m, s = os.openpty()
        tty.setraw(s)
        self.host, self.host_slave = m, s
        tmp = self.link.with_name(self.link.name + ".new")
        os.symlink(os.ttyname(s), tmp)
        os.replace(tmp, self.link)

    def drop(self):
        with self.lock:
            self.link.unlink()
            os.close(self.host)
            os.close(self.host_slave)
            self.host = self.host_slave = None

    def restore(self):
        with self.lock:
            self._plug()

    def _noise(self, line: bytes) -> bytes:
        kind = self.rng.randrange(3)
        junk = bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 12)))
        if kind == 0:                                   # a junk line
            return junk + b"\n"
        if kind == 1 and self.history:                  # a truncated earlier reply
            old = self.rng.choice(self.history)
            return old[:self.rng.randrange(1, len(old))] + b"\n"
        return junk.replace(b"\n", b"#").replace(b"\r", b"#")   # glued onto the real line

    def _run(self):
        while not self.stop:
            fds = [self.dev] + ([self.host] if self.host is not None else [])
            try:
                ready, _, _ = select.select(fds, [], [], 0.02)
            except (OSError, ValueError):
                continue                                # host fd closed by drop() meanwhile
            with self.lock:
                if self.dev in ready:
                    try:
                        data = os.read(self.dev, 65536)
                    except OSError:
                        return                          # emulator gone
                    self.pending += data
                    out = b""
                    while b"\n" in self.pending:
                        line, _, self.pending = self.pending.partition(b"\n")
                        if self.rng.random() < self.p_noise:
                            out += self._noise(line)
                            self.injected += 1
                        self.history.append(line)
                        out += line + self.rng.choice([b"\n", b"\r\n", b"\r"])
                    if self.host is not None and out:
                        os.write(self.host, out)        # while unplugged, replies are lost
                if self.host is not None and self.host in ready:
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
            if fd is not None:
                os.close(fd)


# ------------------------------------------------------------------------------ Client API
def test_client_api(env, expected):
    with Client(open_transport(str(env["exe"]), timeout=5)) as c:     # a bare executable path
        c.handshake()
        c.ping()
        info = c.info()
        assert info["hash"] == env["art"].hash
        assert info["labels"] == [f"class{i}" for i in range(3)] and info["blocks"] == 3
        assert info["unit"] == "ns"
        ids = c.tokenize("the film")
        assert ids[0] == 2 and len(ids) >= 3                     # [CLS] first
        assert c.tokenize("!starts with a bang")[0] == 2
        r = c.classify("the film")
        assert same(r, expected["the film"])
        assert len(r.logits) == 3 and 0 <= r.exit_depth <= r.n_blocks == 3      # 0: the wide exit
        assert r.tokens == len(ids)
        with pytest.raises(DeviceError) as e:
            c.classify("   ")
        assert e.value.status == Status.EMPTY
        with pytest.raises(DeviceError) as e:
            c.set_policy("nonsense")
        assert e.value.status == Status.BAD_ARGUMENT
        c.classify("still serving after errors")


def test_policy_switch_client(env):
    with Client(open_transport(f"exec:{env['exe']}", timeout=5)) as c:
        c.handshake()
        c.set_policy("none")
        assert c.info(refresh=True)["policy"] == "none"
        assert all(c.classify(t).exit_depth == 3 for t in TEXTS[:5])   # no early exit
        c.set_policy("entropy", [0.75])
        info = c.info(refresh=True)
        assert info["policy"] == "entropy" and info["thr"] == [0.75]


# ------------------------------------------------------------------------------ CLI batch
def test_batch_tsv_summary_and_accuracy(env, expected, tmp_path):
    labels = ["class0", "class1", "class2", "2"]        # names, and a class index
    rows = [(labels[i % 4], t) for i, t in enumerate(TEXTS)]
    f = tmp_path / "in.tsv"
    f.write_text("".join(f"{g}\t{t}\n" for g, t in rows), encoding="utf-8")
    res = run_cli(["--emulator", env["exe"], "--artifact", env["art"].path, f])
    assert res.exit_code == 0, res.output
    out = res.stdout.splitlines()
    assert len(out) == len(rows)
    right = 0
    for line, (gold, text) in zip(out, rows):
        r = expected[text]
        assert line.startswith(f"{r.label} (conf {r.confidence:.2f}) exit {r.exit_depth}/3 cost ")
        ok = r.label == gold or (gold == "2" and r.cls == 2)
        right += ok
        assert line.endswith("right" if ok else "wrong")
    acc = re.search(r"accuracy: (\d+)/(\d+) = ([\d.]+)%", res.stderr)
    assert acc and (int(acc[1]), int(acc[2])) == (right, len(rows))
    assert float(acc[3]) == pytest.approx(100 * right / len(rows), abs=0.01)
    for d in (1, 2, 3):                                   # exit-depth histogram counts
        n = sum(r.exit_depth == d for r in expected.values())
        assert re.search(rf"^\s+{d}\s+#*\s+{n}\s", res.stderr, re.M), res.stderr
    assert "mean cost:" in res.stderr and " ns per line" in res.stderr


def test_summary_counts_refused_lines_in_the_denominator(env, expected, tmp_path):
    """Labelled lines the device refuses (an empty text, invalid UTF-8) count in the
    accuracy's denominator as wrong, and the summary says how many (issue 20)."""
    rows = [("class0", t) for t in TEXTS[:6]] + [("class1", "   "), ("class2", "\x01\x02")]
    f = tmp_path / "in.tsv"
    f.write_text("".join(f"{g}\t{t}\n" for g, t in rows), encoding="utf-8")
    res = run_cli(["--emulator", env["exe"], f])
    assert res.exit_code == infer.EXIT_DEVICE, res.output
    right = sum(expected[t].label == g for g, t in rows[:6])
    acc = re.search(r"accuracy: (\d+)/(\d+) = ([\d.]+)% of the labelled lines \((\d+) refused", res.stderr)
    assert acc and (int(acc[1]), int(acc[2]), int(acc[4])) == (right, len(rows), 2), res.stderr
    assert "2 device error(s)" in res.stderr and "EMPTY x2" in res.stderr


def test_batch_json_matches_client(env, expected, tmp_path):
    f = tmp_path / "in.txt"
    f.write_text("\n".join(TEXTS + ["   "]) + "\n", encoding="utf-8")
    res = run_cli(["--emulator", env["exe"], "--json", f])
    assert res.exit_code == infer.EXIT_DEVICE, res.output      # the blank line: err EMPTY
    objs = [json.loads(s) for s in res.stdout.splitlines()]
    assert len(objs) == len(TEXTS) + 1
    for o, t in zip(objs, TEXTS):
        r = expected[t]
        assert o["text"] == t
        assert (o["label"], o["cls"], o["conf"], o["exit"], o["tokens"], o["bmacs"], o["flops"]) == \
            (r.label, r.cls, r.confidence, r.exit_depth, r.tokens, r.bmacs, r.flops)
        assert o["logits_hex"] == r.logits_hex and o["unit"] == "ns"
    assert objs[-1]["error"]["name"] == "EMPTY"
    assert "EMPTY x1" in res.stderr


def test_csv_and_stdin(env, expected, tmp_path):
    f = tmp_path / "in.csv"
    f.write_text('id,sentence,y\n1,"the film",class0\n2,"a, b ""quoted""",class1\n', encoding="utf-8")
    res = run_cli(["--emulator", env["exe"], "--json", "--text-column", "sentence", "--label-column", "y", f])
    assert res.exit_code == 0, res.output
    objs = [json.loads(s) for s in res.stdout.splitlines()]
    assert [o["text"] for o in objs] == ["the film", 'a, b "quoted"'] and objs[0]["gold"] == "class0"
    res = run_cli(["--emulator", env["exe"], "-"], input="the film\n")
    assert res.exit_code == 0 and res.stdout.startswith(expected["the film"].label + " (conf")
    res = run_cli(["--emulator", env["exe"], "--text-column", "nope", f])
    assert res.exit_code == infer.EXIT_USAGE and "error: " in res.stderr and "nope" in res.stderr


def test_info_hash_check_and_policy(env):
    res = run_cli(["--emulator", env["exe"], "--info", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["hash"] == env["art"].hash
    res = run_cli(["--emulator", env["exe"], "--info", "--artifact", env["art"].path])
    assert res.exit_code == 0 and env["art"].hash in res.stdout
    res = run_cli(["--emulator", env["exe"], "--info", "--artifact", env["other"].path])
    assert res.exit_code == infer.EXIT_HASH
    assert res.stderr.startswith("error: device model hash") and "--no-check" in res.stderr
    res = run_cli(["--emulator", env["exe"], "--info", "--artifact", env["other"].path, "--no-check"])
    assert res.exit_code == 0 and "warning:" in res.stderr
    res = run_cli(["--emulator", env["exe"], "--info", "--artifact", env["dir"] / "missing"])
    assert res.exit_code == infer.EXIT_USAGE
    res = run_cli(["--emulator", env["exe"], "--policy", "none", "--info", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["policy"] == "none"
    res = run_cli(["--emulator", env["exe"], "--policy", "none", "-"], input="the film\n")
    assert res.exit_code == 0 and " exit 3/3 " in res.stdout
    res = run_cli(["--emulator", env["exe"], "--policy", "bogus", "--info"])
    assert res.exit_code == infer.EXIT_DEVICE and "--policy bogus" in res.stderr
    res = run_cli(["--emulator", env["exe"], "--policy", "entropy:x", "--info"])
    assert res.exit_code == infer.EXIT_USAGE


def test_usage_errors(env, tmp_path):
    res = run_cli(["--emulator", env["exe"], tmp_path / "nonexistent.txt"])
    assert res.exit_code == infer.EXIT_USAGE and "error: cannot read" in res.stderr
    res = run_cli(["--bogus-option"])
    assert res.exit_code == infer.EXIT_USAGE
    res = run_cli(["--info"])
    assert res.exit_code == infer.EXIT_USAGE and "--port" in res.stderr
    res = run_cli(["--help"])
    assert res.exit_code == 0
    for code in range(5):
        assert re.search(rf"^\s+{code}\s+\S", res.stdout, re.M)   # exit codes documented


# ------------------------------------------------------------------------------ transport errors
def test_missing_port(tmp_path):
    res = run_cli(["--port", tmp_path / "ttyNOPE", "--info"])
    assert res.exit_code == infer.EXIT_TRANSPORT
    assert res.stderr.startswith("error: cannot open") and "Traceback" not in res.output
    with pytest.raises(PortNotFound):
        open_transport("socket://127.0.0.1:1", timeout=1)


def test_device_never_answers(tmp_path):
    t0 = time.monotonic()
    res = run_cli(["--port", "exec:sleep 100", "--timeout", "0.3", "--info"])
    assert res.exit_code == infer.EXIT_TRANSPORT and "no answer" in res.stderr
    m, s = os.openpty()                     # a pty nobody serves
    try:
        res = run_cli(["--port", os.ttyname(s), "--timeout", "0.3", "--info"])
        assert res.exit_code == infer.EXIT_TRANSPORT and "no answer" in res.stderr
    finally:
        os.close(m)
        os.close(s)
    assert time.monotonic() - t0 < 5


def test_line_reading_tolerates_endings_and_bad_bytes():
    t = open_transport("exec:printf 'a\\rb\\r\\nc\\n\\377d\\n'", timeout=1)
    try:
        assert [t.read_line(1) for _ in range(4)] == ["a", "b", "c", "\ufffdd"]
        with pytest.raises(Disconnected):
            t.read_line(1)
    finally:
        t.close()


def test_garbage_resync(env, expected, tmp_path):
    relay = FaultRelay(env["exe"], tmp_path / "ttyRELAY", p_noise=0.35, seed=1)
    try:
        with Client(open_transport(str(relay.link), timeout=1), timeout=0.5, retries=6) as c:
            c.handshake()
            assert c.info()["hash"] == env["art"].hash
            for t in TEXTS * 2:
                assert same(c.classify(t), expected[t]), t
            assert len(c.tokenize("the film")) >= 3
        assert relay.injected > 5 and c.stats["garbage"] > 0
    finally:
        relay.close()


def test_port_drop_and_reconnect(env, expected, tmp_path):
    relay = FaultRelay(env["exe"], tmp_path / "ttyRELAY", seed=2)
    try:
        with Client(open_transport(str(relay.link), timeout=1), timeout=1, reconnect_wait=3) as c:
            c.handshake()
            assert same(c.classify("the film"), expected["the film"])
            relay.drop()
            threading.Timer(0.3, relay.restore).start()
            for t in TEXTS[:6]:
                assert same(c.classify(t), expected[t])
            assert c.stats["reconnects"] >= 1
            relay.drop()                                # and it never comes back
            c.reconnect_wait = 0.3
            with pytest.raises(Disconnected):
                c.classify("the film")
    finally:
        relay.close()


def test_cli_through_noisy_relay(env, expected, tmp_path):
    relay = FaultRelay(env["exe"], tmp_path / "ttyRELAY", p_noise=0.3, seed=3)
    f = tmp_path / "in.txt"
    f.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    try:
        res = run_cli(["--port", relay.link, "--json", "--timeout", "0.5", "--retries", "6", f])
    finally:
        relay.close()
    assert res.exit_code == 0, res.output
    for o, t in zip([json.loads(s) for s in res.stdout.splitlines()], TEXTS, strict=True):
        assert o["logits_hex"] == expected[t].logits_hex and o["exit"] == expected[t].exit_depth


def test_emulator_killed_mid_batch(env, tmp_path):
    pidfile = tmp_path / "pid"
    f = tmp_path / "many.txt"
    f.write_text("the film is a charming and often affecting journey\n" * 100000)
    port = f"exec:sh -c 'echo $$ > {pidfile}; exec {env['exe']}'"
    p = subprocess.Popen([sys.executable, "-m", "beexgen.host.infer", "--port", port, "--no-progress", str(f)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(100):
            if pidfile.exists() and pidfile.read_text().strip():
                break
            time.sleep(0.05)
        time.sleep(0.5)
        os.kill(int(pidfile.read_text()), signal.SIGKILL)
        _, err = p.communicate(timeout=20)
    finally:
        p.kill()
    assert p.returncode == infer.EXIT_TRANSPORT, err
    assert "killed by signal SIGKILL" in err and "Traceback" not in err
    assert re.search(r"summary: \d+ line", err)


def test_socket_url(env, expected):
    """socket://HOST:PORT, as for QEMU's `-serial tcp:...`: a TCP bridge to the emulator."""
    import socket
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    proc = subprocess.Popen([str(env["exe"])], stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def bridge():
        conn, _ = srv.accept()
        threading.Thread(target=lambda: [conn.sendall(b) for b in iter(lambda: os.read(proc.stdout.fileno(), 4096), b"")],
                         daemon=True).start()
        for b in iter(lambda: conn.recv(4096), b""):
            proc.stdin.write(b)
            proc.stdin.flush()
    threading.Thread(target=bridge, daemon=True).start()
    try:
        with Client(open_transport(f"socket://127.0.0.1:{srv.getsockname()[1]}", timeout=2), timeout=2) as c:
            c.handshake()
            assert same(c.classify("the film"), expected["the film"])
    finally:
        proc.kill()
        proc.wait()
        srv.close()


# ------------------------------------------------------------------------------ interactive
def test_interactive_on_a_pty(env, expected):
    m, s = os.openpty()
    p = subprocess.Popen([sys.executable, "-m", "beexgen.host.infer", "--emulator", str(env["exe"])],
                         stdin=s, stdout=s, stderr=s, start_new_session=True)
    os.close(s)
    seen = b""

    def wait_for(pattern: bytes, timeout=10.0):
        nonlocal seen
        end = time.monotonic() + timeout
        while not re.search(pattern, seen):
            left = end - time.monotonic()
            assert left > 0, f"no {pattern!r} in {seen!r}"
            if select.select([m], [], [], left)[0]:
                try:
                    seen += os.read(m, 4096)
                except OSError:
                    break
    try:
        wait_for(b"> ")
        os.write(m, b"the film\n")
        r = expected["the film"]
        wait_for(rb"\(conf [\d.]+\) exit \d/3 cost \d+ ns")
        assert f"{r.label} (conf {r.confidence:.2f}) exit {r.exit_depth}/3 cost ".encode() in seen
        os.write(m, b"\x04")                        # Ctrl-D
        assert p.wait(timeout=10) == 0
    finally:
        p.kill()
        os.close(m)
