"""Run a firmware ELF in QEMU with its UART on a TCP socket or a pty.

    with start_qemu(build.elf, "mps2-an386", log=out / "qemu.log") as q:
        ser = serial.serial_for_url(q.url, timeout=5)
        handshake(ser, timeout=10)
        ser.write(b"!info\\n"); print(ser.readline())

QEMU arguments (../shared/TOOLCHAIN.md): `-display none -monitor none` (never
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


def handshake(ser, timeout: float = 10.0, interval: float = 0.25) -> None:
    """Send `!ping` until the firmware answers `ok pong`, then drain the answers to the
    earlier pings, so the next line read belongs to the next request. Bytes sent before
    the firmware's UART was ready may be lost or garble a line: every line but `ok pong`
    is ignored here. Raises HandshakeError with what was received."""
    deadline = time.monotonic() + timeout
    received, buf = b"", b""
    sent = pongs = 0
    old_timeout = ser.timeout
    ser.timeout = 0.02
    try:
        next_ping = 0.0
        while pongs == 0:
            now = time.monotonic()
            if now > deadline:
                raise HandshakeError(f"no `ok pong` in {timeout} s (received {received[-200:]!r})", received)
            if now >= next_ping:
                ser.write(b"\n!ping\n" if sent else b"!ping\n")
                sent += 1
                next_ping = now + interval
            chunk = ser.read(4096)
            received += chunk
            buf += chunk
            *lines, buf = buf.split(b"\n")
            pongs += sum(ln.rstrip(b"\r") == b"ok pong" for ln in lines)
        # answers to the other pings (and `err ... EMPTY` for the blank separators) may
        # still be on their way: read until the line has been quiet for a while
        quiet_until = time.monotonic() + 0.3
        while time.monotonic() < min(quiet_until, deadline + 1.0):
            chunk = ser.read(4096)
            if chunk:
                received += chunk
                buf += chunk
                quiet_until = time.monotonic() + 0.3
        if buf and not buf.endswith(b"\n"):
            raise HandshakeError(f"partial line after the handshake: {buf[-200:]!r}", received)
    finally:
        ser.timeout = old_timeout
