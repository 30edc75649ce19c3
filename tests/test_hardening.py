"""Hostile input on the serial line, against the host emulator AND the QEMU firmware.

One table of cases (CASES) is driven through both transports: the x86 host emulator
(ASan + UBSan build) on stdin/stdout pipes, and the Cortex-M4 firmware for mps2-an386
in QEMU over a TCP serial line (pyserial). Each case is sent as

    VALID_BEFORE + case + VALID_BETWEEN + case + VALID_AFTER

and every reply, the valid requests' and the hostile lines', is compared with the Python
reference of the protocol (test_host_emulator.Reference: the line splitter modelled on
docs/INTERNALS.md, HF tokenizers, the deploy mirror), board-dependent fields (cost=,
unit=, board=) aside. Since the host emulator's replies equal the reference exactly,
the firmware's equal the host emulator's. Also checked, for every case:
  - no hang: every reply is awaited with a deadline;
  - no dropped or duplicated reply: exactly one reply per request line (counted by
    the reference splitter), and then silence for a while;
  - no reset: each device is started once for the whole module, and the exit policy set
    at its start (`!policy confidence ...`, not the artifact's default) is still in place
    in every `!policy` reply (a reboot would restore the default); the process (QEMU, the
    emulator) is the same one and still running; at the end the emulator exits 0 with an
    empty stderr (no sanitizer report).
Cases with Silence(s) also check timing: after the bytes sent so far, exactly the replies
to the complete lines arrive, then nothing for s seconds (a partial line is not answered
until its terminator arrives; then it gets exactly one reply).

Without arm-none-eabi-gcc / qemu-system-arm the QEMU cases fail (set-up installs them).
"""
from __future__ import annotations

import queue
import random
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from beexgen.codegen import build as build_mod
from beexgen.codegen import firmware
from beexgen.codegen.emulate import handshake, start_qemu

from fixtures import tiny_artifact
from test_host_emulator import Reference, split_lines

LINE_MAX = 512
BOARD = "mps2-an386"
HOST_FLOOD = 1 << 20
# The QEMU serial line carries ~14-35 kB/s (one UART interrupt per byte under -icount):
# a megabyte would take ~50 s per send, so the firmware gets a 64 KB flood (128 times
# BX_LINE_MAX, far past any buffer) and the host emulator the full megabyte.
QEMU_FLOOD = 64 << 10
REPLY_TIMEOUT = 30.0            # per batch of replies: a hang fails here
QUIET = {"host": 0.15, "qemu": 0.4}   # silence expected after the last reply of a batch
BOARD_FIELDS = re.compile(r"\b(cost|unit|board)=\S*")
POLICY_SET = b"!policy confidence 0.5,0x3f400000,0.75\n"    # wide exit + 3 blocks -> 3 thresholds

HAVE_QEMU = shutil.which(firmware.CC) is not None and shutil.which("qemu-system-arm") is not None

VALID_BEFORE = b"!ping\nthe film is a charming and often affecting journey\n!policy\n"
VALID_BETWEEN = b"!tok the film\n!ping\nhow many people live in tokyo?\n"
VALID_AFTER = b"WHAT is the capital of France?\n!policy\n!info\n!ping\n"


@dataclass(frozen=True)
class Silence:
    """Wait for the replies to every complete line sent so far, then expect none for s seconds."""
    seconds: float


def _garbage(seed: int, n: int, newlines: bool) -> bytes:
    r = random.Random(seed)
    b = r.randbytes(n)
    return b if newlines else b.replace(b"\n", b"N").replace(b"\r", b"R")


PIPELINED = b"".join([
    b"the film is a charming and often affecting journey\n", b"!ping\n", b"a gorgeous, witty, seductive movie.\n",
    b"!tok it's a bore\n", b"\xff\n", b"x" * (LINE_MAX + 1) + b"\n", b"!info\n", b"!nope\n",
    b"who wrote 'hamlet'?\r\n", b"ok lor... i'll see u at 5pm :-)\r", b"\n", b"!policy\n",
] * 4)

# name -> (chunks for the host emulator, chunks for QEMU or None for the same)
CASES: dict[str, tuple[list, list | None]] = {
    "line_max_exact": ([b"!tok " + b" " * (LINE_MAX - 9) + b"film\n"], None),
    "line_max_plus_one": ([b"!tok " + b" " * (LINE_MAX - 8) + b"film\n"], None),
    "long_line_rest_discarded": ([b"!ping" + b"x" * 3000 + b"\n!ping\n"], None),
    "long_line_multibyte_cut": ([("é" * 300).encode() + b"\n" + ("漢" * 171).encode() + b"\r\n"], None),
    "long_line_cr_only": ([b"y" * (LINE_MAX + 1) + b"\r" + b"y" * LINE_MAX + b"\r"], None),
    "invalid_utf8": ([b"\xff\ncaf\xc3 x\n\xed\xa0\x80\n\xc0\xaf\n\xf4\x90\x80\x80 x\n!tok \xfe\n!c \x80\nok \xe2\x82\n"
                      b"\xf0\x9f\x98\n\xc3\x28\n\x80\x80\x80\n!\xff\n"], None),
    "nul_and_control": ([b"the\x00film\x01is\x1b[31m red\x7f\n\x00\n!tok a\x00b\x7fc\x1f\n\x00\x00\x00\n"
                         b"!pi\x00ng\n\x08\x07\x0c\x0b\x1b\n\x7f\x7f\n!tok \x00\n"], None),
    "cr_lf_crlf": ([b"the film\rthe film\nthe film\r\nis a bore\r\n\r\n\n\r\r\r\n!ping\r\n\r!tok a\r\r\n"], None),
    "crlf_split_across_writes": ([b"!ping\r", Silence(0.5), b"\n!ping\r", Silence(0.3), b"\n\n"], None),
    "flood_without_newline": ([b"x" * HOST_FLOOD + b"\n"], [b"x" * QEMU_FLOOD + b"\n"]),
    "binary_flood_then_crlf": ([_garbage(1, HOST_FLOOD, False) + b"\r\n"], [_garbage(1, QEMU_FLOOD, False) + b"\r\n"]),
    "partial_line_then_silence": ([b"the film is", Silence(1.0), b" a bore\n", b"!pi", Silence(0.5), b"ng\n"], None),
    "binary_garbage": ([_garbage(2, 3000, True) + b"\n"], None),
    "empty_and_spaces": ([b"\n   \n\t \x00\x01\n!c \n!c\n!tok\n!tok \n"], None),
    "unknown_commands": ([b"!foo\n!\n! ping\n!PING\n!pingx\n!ping x\n!info x\n!" + b"z" * 40 + b" y\n!\xff\x00\x01\n"],
                         None),
    "policy_garbage_keeps_policy": ([b"!policy entropy \xff\n!policy \x00\n!policy confidence nan,nan\n"
                                     b"!policy entropy 0x\n!policy " + b"9" * 600 + b"\n!policy budget 1,2,3,4\n"],
                                    None),
    "pipelined_while_computing": ([PIPELINED], None),
}


def normalise(reply: str) -> str:
    return BOARD_FIELDS.sub(lambda m: m.group(1) + "=*", reply)


# --------------------------------------------------------------------------- devices

class Device:
    """A byte pipe to a running firmware: write(), and a buffer of received bytes."""

    name = ""

    def __init__(self):
        self.buf = bytearray()

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def _pull(self, timeout: float) -> bytes:
        raise NotImplementedError

    def lines(self, n: int, timeout: float = REPLY_TIMEOUT) -> list[str]:
        """n reply lines (without their LF), or AssertionError at the deadline."""
        deadline = time.monotonic() + timeout
        while self.buf.count(b"\n") < n:
            left = deadline - time.monotonic()
            have = self.buf.count(b"\n")
            assert left > 0, (f"{self.name}: hang: {have} of {n} replies after {timeout} s; "
                              f"tail {bytes(self.buf[-200:])!r}")
            self.buf += self._pull(min(left, 0.2))
        out = []
        for _ in range(n):
            i = self.buf.index(b"\n")
            out.append(self.buf[:i].decode("utf-8", "surrogateescape"))
            del self.buf[:i + 1]
        return out

    def quiet(self, seconds: float) -> bytes:
        """Whatever arrives within `seconds` beyond what was consumed (should be nothing)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.buf += self._pull(min(left, 0.1))
        extra = bytes(self.buf)
        self.buf.clear()
        return extra

    def alive(self) -> bool:
        raise NotImplementedError


class HostDevice(Device):
    name = "host"

    def __init__(self, exe: Path):
        super().__init__()
        self.p = subprocess.Popen([str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        self.pid = self.p.pid
        self.q: queue.Queue = queue.Queue()
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        while chunk := self.p.stdout.read1(65536):
            self.q.put(chunk)

    def write(self, data: bytes) -> None:
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def _pull(self, timeout: float) -> bytes:
        try:
            return self.q.get(timeout=timeout)
        except queue.Empty:
            return b""

    def alive(self) -> bool:
        return self.p.poll() is None

    def close(self) -> tuple[int, str]:
        self.p.stdin.close()
        rc = self.p.wait(timeout=REPLY_TIMEOUT)
        return rc, self.p.stderr.read().decode(errors="replace")


class QemuDevice(Device):
    name = "qemu"

    def __init__(self, elf: Path, log: Path):
        import serial
        super().__init__()
        self.q = start_qemu(elf, BOARD, serial="tcp", log=log)
        self.pid = self.q.proc.pid
        self.ser = serial.serial_for_url(self.q.url, timeout=0.2)
        handshake(self.ser, timeout=20)
        self.ser.timeout = 0.1

    def write(self, data: bytes) -> None:
        self.ser.write(data)

    def _pull(self, timeout: float) -> bytes:
        self.ser.timeout = timeout
        return self.ser.read(65536)

    def alive(self) -> bool:
        return self.q.running

    def close(self) -> None:
        try:
            self.ser.close()
        finally:
            self.q.stop()


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("hardening")
    art = tiny_artifact(d / "art")
    return {"dir": d, "art": art}


def _start(dev: Device, ref: Reference) -> Device:
    """Put the device in a state a reset would lose: a non-default exit policy."""
    dev.ref = ref
    want = ref.replies(POLICY_SET)
    dev.write(POLICY_SET)
    got = dev.lines(len(want))
    assert [normalise(g) for g in got] == [normalise(w) for w in want]
    assert got[0].startswith("ok policy=confidence")
    return dev


@pytest.fixture(scope="module")
def host(work):
    exe = build_mod.build_host(work["art"], work["dir"] / "host", sanitize=True)
    dev = HostDevice(exe)
    yield _start(dev, Reference(work["art"]))
    if dev.alive():
        dev.p.kill()


@pytest.fixture(scope="module")
def qemu(work):
    if not HAVE_QEMU:   # set-up installs both: missing means a broken set-up, not a skip
        pytest.fail("needs arm-none-eabi-gcc and qemu-system-arm: run `make setup` (scripts/setup.sh)")
    b = firmware.build_firmware(work["art"], BOARD, work["dir"] / BOARD)
    dev = QemuDevice(b.elf, work["dir"] / "qemu.log")
    try:
        yield _start(dev, Reference(work["art"]))
    finally:
        dev.close()


@pytest.fixture(params=["host", "qemu"])
def device(request):
    return request.getfixturevalue(request.param)


# --------------------------------------------------------------------------- the driver

def drive(dev: Device, chunks: list) -> tuple[list[str], list[str]]:
    """Send the chunks (honouring Silence); return (replies, expected replies)."""
    sent = b""
    got: list[str] = []
    for item in chunks:
        if isinstance(item, Silence):
            due = len(split_lines(sent))
            got += dev.lines(due - len(got))
            extra = dev.quiet(item.seconds)
            assert not extra, (f"{dev.name}: a reply before the line ended (after {sent[-40:]!r}, "
                               f"{item.seconds} s of silence expected): {extra[:200]!r}")
        else:
            dev.write(item)
            sent += item
    due = len(split_lines(sent))
    got += dev.lines(due - len(got))
    extra = dev.quiet(QUIET[dev.name])
    assert not extra, f"{dev.name}: more replies than request lines ({due}): {extra[:300]!r}"
    return got, dev.ref.replies(sent)


def check_same(dev: Device, got: list[str], want: list[str], what: str):
    assert len(got) == len(want), f"{dev.name} {what}: {len(got)} replies, want {len(want)}"
    bad = [f"  reply {i}:\n    got  {g[:200]}\n    want {w[:200]}"
           for i, (g, w) in enumerate(zip(got, want)) if normalise(g) != normalise(w)]
    assert not bad, f"{dev.name} {what}: {len(bad)} of {len(want)} replies differ:\n" + "\n".join(bad[:8])


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_case(device, case):
    host_chunks, qemu_chunks = CASES[case]
    chunks = qemu_chunks if device.name == "qemu" and qemu_chunks is not None else host_chunks
    t = time.monotonic()
    seq = [VALID_BEFORE, *chunks, VALID_BETWEEN, *chunks, VALID_AFTER]
    got, want = drive(device, seq)
    check_same(device, got, want, case)
    # no reset: the same process, still running, still under the policy set at its start
    assert device.alive(), f"{device.name} died during {case}"
    policy = [g for g in got if g.startswith("ok policy=")]
    assert policy and all(p.startswith("ok policy=confidence thr=3f000000,3f400000") for p in policy), policy
    assert got[0] == "ok pong" and got[-1] == "ok pong"
    print(f"\n{device.name} {case}: {len(got)} replies in {time.monotonic() - t:.1f} s")


def test_no_reset_after_all_cases(device):
    """After the whole table: same process, same state, answering; the emulator exits
    cleanly with nothing on stderr (ASan + UBSan build)."""
    pid = device.pid
    got, want = drive(device, [b"!policy\n!ping\n"])
    check_same(device, got, want, "final")
    assert got == ["ok policy=confidence thr=3f000000,3f400000,3f400000", "ok pong"]
    assert device.alive() and device.pid == pid
    if isinstance(device, HostDevice):
        rc, stderr = device.close()
        assert rc == 0 and not stderr, f"exit {rc}, stderr:\n{stderr[-3000:]}"
    else:
        log = device.q.log_text()
        assert "fault" not in log.lower(), log[-2000:]
