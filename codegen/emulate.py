"""Run a firmware ELF in QEMU with its UART on a TCP socket or a pty.

    with start_qemu(build.elf, "mps2-an386", log=out / "qemu.log") as q:
        ser = serial.serial_for_url(q.url, timeout=5)
        handshake(ser, timeout=10)           # core.protocol.handshake over pyserial
        ser.write(b"!info\\n"); print(ser.readline())

QEMU arguments (measured on QEMU 7.2): `-display none -monitor none` (never
-nographic: it multiplexes the monitor onto the serial line), semihosting on (the
firmware's exit and fault reports), `-icount shift=10,sleep=off` (deterministic
instruction counts, see codegen/boards.py), the serial line as
`tcp:127.0.0.1:PORT,server=on,wait=on,nodelay=on` (QEMU waits for the host to connect
before the guest starts, and without nodelay Nagle costs ~45 ms per round trip) or
`pty`. QEMU runs in its own session with stdout and stderr in one log file; stop()
kills its whole process group. Always use timeouts: a firmware that faults without
semihosting hangs.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from beexgen.codegen import boards as boards_mod
from beexgen.core import protocol

QEMU = "qemu-system-arm"
ICOUNT = f"shift={boards_mod.ICOUNT_SHIFT},sleep=off"
_PTY = re.compile(r"char device redirected to (\S+)")


class QemuError(RuntimeError):
    """QEMU did not start, or exited early; the message carries its log."""


class HandshakeError(TimeoutError):
    """The firmware did not answer `!ping` in time; carries the bytes received."""

    def __init__(self, message: str, received: bytes = b""):
        super().__init__(message)
        self.received = received


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def qemu_command(elf: str | Path, board: boards_mod.Board, serial_dev: str, icount: bool = True) -> list[str]:
    if board.qemu_machine is None:
        raise ValueError(f"board {board.name} is real hardware, QEMU does not emulate it; "
                         f"emulated boards: {', '.join(b for b, v in boards_mod.BOARDS.items() if v.emulated)}")
    cmd = [QEMU, "-M", board.qemu_machine, "-display", "none", "-monitor", "none",
           "-serial", serial_dev, "-semihosting-config", "enable=on,target=native"]
    if icount:
        cmd += ["-icount", ICOUNT]
    return cmd + ["-kernel", str(elf)]


class QemuHandle:
    """A running QEMU. `.url` is what pyserial's serial_for_url opens."""

    def __init__(self, proc: subprocess.Popen, url: str, log: Path, cmd: list[str], tmp: str | None = None):
        self.proc, self.url, self.log, self.cmd, self._tmp = proc, url, log, cmd, tmp

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def wait(self, timeout: float) -> int:
        """Wait for QEMU to exit (semihosting exit); returns its exit status."""
        return self.proc.wait(timeout=timeout)

    def stop(self) -> int | None:
        """Kill QEMU's process group (idempotent); returns its exit status."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=3)
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        return self.proc.returncode

    def __enter__(self) -> "QemuHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __del__(self):
        try:
            self.stop()
        except Exception:
            pass


def start_qemu(elf: str | Path, board_name: str, *, serial: str = "tcp", icount: bool = True,
               log: str | Path | None = None, start_timeout: float = 10.0) -> QemuHandle:
    """Start QEMU on `elf` for an emulated board and wait until its serial line can be
    opened (tcp: QEMU listens and waits for the connection; pty: the pty exists).
    Raises QemuError with the log when QEMU exits or does not get there in time."""
    board = boards_mod.get_board(board_name)
    if shutil.which(QEMU) is None:
        raise QemuError(f"{QEMU} not found (Debian: apt-get install -y --no-install-recommends qemu-system-arm)")
    tmp = None
    if log is None:
        tmp = tempfile.mkdtemp(prefix="bx_qemu_")
        log = Path(tmp) / "qemu.log"
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    if serial == "tcp":
        port = free_port()
        dev, url = f"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on", f"socket://127.0.0.1:{port}"
    elif serial == "pty":
        dev, url = "pty", None
    else:
        raise ValueError(f"serial {serial!r}: want 'tcp' or 'pty'")
    cmd = qemu_command(elf, board, dev, icount)
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)
    h = QemuHandle(proc, url or "", log, cmd, tmp)
    deadline = time.monotonic() + start_timeout
    try:
        while True:
            text = h.log_text()
            if serial == "pty":
                m = _PTY.search(text)
                if m:
                    h.url = m.group(1)
                    return h
            elif "waiting for connection" in text:
                return h
            if not h.running:
                raise QemuError(f"QEMU exited with {proc.returncode}:\n{' '.join(cmd)}\n{text[-4000:]}")
            if time.monotonic() > deadline:
                raise QemuError(f"QEMU did not open its serial line in {start_timeout} s:\n{' '.join(cmd)}\n"
                                f"{text[-4000:]}")
            time.sleep(0.02)
    except BaseException:
        h.stop()
        raise


def handshake(ser, timeout: float = 10.0) -> None:
    """beexgen.core.protocol.handshake (the one the host's Client runs) over a pyserial
    port `ser`, then read the pongs of the pings still in flight, so the next line read
    belongs to the next request. Bytes sent before the firmware's UART was ready may be
    lost or garble a line: such lines are ignored. Raises HandshakeError with what was
    received."""
    link = _SerialLines(ser)
    ids = iter(range(1, protocol.ID_MOD))
    deadline = time.monotonic() + timeout
    old_timeout = ser.timeout
    try:
        later = protocol.handshake(link.write_line, link.read_line, lambda: next(ids), timeout,
                                   spec=getattr(ser, "port", None) or "the firmware")
        for rid in later:
            while (line := link.read_line(max(0.0, deadline - time.monotonic()) + 1.0)) is None or \
                    protocol.split_id(line) != (rid, "ok pong"):
                if line is None:
                    raise protocol.NoAnswer(f"no pong to ping #{rid} after the handshake")
    except protocol.NoAnswer as e:
        raise HandshakeError(f"{e} (received {link.received[-200:]!r})", link.received) from None
    finally:
        ser.timeout = old_timeout
    if link.buf:
        raise HandshakeError(f"partial line after the handshake: {bytes(link.buf[-200:])!r}", link.received)


class _SerialLines:
    """Lines over a pyserial port for protocol.handshake: write_line(bytes) and
    read_line(seconds) -> the next non-empty line (LF, CR or CRLF ended) or None."""

    def __init__(self, ser):
        self.ser, self.buf, self.received = ser, bytearray(), b""

    def write_line(self, data: bytes) -> None:
        self.ser.write(data if data.endswith(b"\n") else data + b"\n")

    def read_line(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while True:
            for i, b in enumerate(self.buf):
                if b in b"\r\n":
                    raw = bytes(self.buf[:i])
                    del self.buf[:i + 1]
                    if raw:
                        return raw.decode("utf-8", errors="replace")
                    break
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.ser.timeout = left
                chunk = self.ser.read(1)              # waits up to `left`
                if chunk:
                    self.ser.timeout = 0
                    chunk += self.ser.read(65536)     # and whatever else is there
                self.received += chunk
                self.buf += chunk
