"""Byte transports to a device speaking the line protocol (docs/INTERNALS.md).

`open_transport(spec, timeout=...)` accepts
- a serial device or pty path: `/dev/ttyACM0`, `/dev/pts/7`, a udev symlink;
- a pyserial URL: `socket://127.0.0.1:4000` (QEMU `-serial tcp:...`), `rfc2217://...`;
- `exec:PATH [ARGS...]`, or the path of an executable file: the program (the host
  emulator) is spawned with stdin/stdout on a raw pty and killed on `close()`.

Every transport offers one read primitive, `read_line(timeout)`: the next non-empty line,
split on LF, CR or CRLF, decoded as UTF-8 with undecodable bytes replaced. Failures are
`TransportError` (`PortNotFound`, `TransportTimeout`, `Disconnected`): the link, not the
device's answer. `protocol.DeviceError` (an `err` reply) and `protocol.ProtocolError`
(a line that is not a reply) are the layer above.

This module imports pyserial only: host/ knows only the protocol (beexgen.core.protocol).
"""
from __future__ import annotations

import errno
import os
import select
import shlex
import signal
import socket
import stat
import subprocess
import tempfile
import termios
import time
import tty

import serial

MAX_PENDING = 1 << 20      # a device spewing bytes without a newline: cut the line here


class TransportError(Exception):
    """The link to the device failed: port missing, no answer in time, connection lost."""


class PortNotFound(TransportError):
    """The port cannot be opened (missing device, bad URL, permission)."""


class TransportTimeout(TransportError):
    """No complete line arrived in time."""


class Disconnected(TransportError):
    """The port vanished or the other side closed it (EOF, EIO, unplugged)."""


class Transport:
    """A line-oriented byte link. Subclasses provide `_read_some` / `_write_all`."""

    spec = "?"
    can_reconnect = False
    write_timeout = 5.0

    def __init__(self) -> None:
        self._buf = bytearray()

    # -- what subclasses implement ------------------------------------------------------
    def _read_some(self, timeout: float) -> bytes:
        """Bytes available within `timeout` (b"" on timeout); raise Disconnected on EOF."""
        raise NotImplementedError

    def _write_all(self, data: bytes, timeout: float) -> None:
        raise NotImplementedError

    def _open(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # -- the shared line logic -------------------------------------------------------------
    def write_line(self, data: bytes, timeout: float | None = None) -> None:
        """Send one request line (a trailing LF is added when missing)."""
        if not data.endswith((b"\n", b"\r")):
            data += b"\n"
        self._write_all(data, self.write_timeout if timeout is None else timeout)

    def _pop_line(self) -> str | None:
        while True:
            cut = min((i for i in (self._buf.find(b"\n"), self._buf.find(b"\r")) if i >= 0), default=-1)
            if cut < 0:
                if len(self._buf) > MAX_PENDING:     # no line ending in sight: hand it up as garbage
                    raw = bytes(self._buf)
                    self._buf.clear()
                    return raw.decode("utf-8", errors="replace")
                return None
            raw = bytes(self._buf[:cut])
            del self._buf[:cut + 1]
            if raw:                  # CRLF leaves an empty piece between CR and LF: skip it
                return raw.decode("utf-8", errors="replace")

    def read_line(self, timeout: float) -> str:
        """The next non-empty line (without its ending). Raises TransportTimeout."""
        deadline = time.monotonic() + timeout
        while True:
            line = self._pop_line()
            if line is not None:
                return line
            left = deadline - time.monotonic()
            if left <= 0:
                raise TransportTimeout(f"no reply from {self.spec} within {timeout:g} s")
            self._buf += self._read_some(left)

    def drain(self, quiet: float = 0.05, limit: float = 1.0) -> bytes:
        """Discard input until the line has been quiet for `quiet` s (at most `limit` s)."""
        dropped = bytearray(self._buf)
        self._buf.clear()
        end = time.monotonic() + limit
        while time.monotonic() < end:
            chunk = self._read_some(min(quiet, max(0.0, end - time.monotonic())))
            if not chunk:
                break
            dropped += chunk
        return bytes(dropped)

    def reconnect(self, wait: float = 5.0) -> None:
        """Close and reopen the port, retrying until it is back or `wait` s have passed."""
        if not self.can_reconnect:
            raise Disconnected(f"{self.spec}: cannot reconnect")
        self.close()
        deadline = time.monotonic() + wait
        delay = 0.05
        while True:
            try:
                self._open()
                self._buf.clear()
                return
            except PortNotFound as e:
                if time.monotonic() + delay > deadline:
                    raise Disconnected(f"{self.spec} did not come back within {wait:g} s ({e})") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec}>"


class SerialTransport(Transport):
    """pyserial: device paths, ptys, socket:// and the other pyserial URLs."""

    can_reconnect = True

    def __init__(self, spec: str, *, baudrate: int = 115200):
        super().__init__()
        self.spec = spec
        self.baudrate = baudrate
        self._ser: serial.SerialBase | None = None
        self._open()

    def _open(self) -> None:
        try:
            ser = serial.serial_for_url(self.spec, baudrate=self.baudrate, timeout=0)
        except (serial.SerialException, OSError, ValueError) as e:
            raise PortNotFound(f"cannot open {self.spec}: {_why(e)}") from None
        sock = getattr(ser, "_socket", None)     # socket://: avoid Nagle's ~40 ms per round trip
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        self._ser = ser

    def _port(self) -> serial.SerialBase:
        if self._ser is None:
            raise Disconnected(f"{self.spec} is closed")
        return self._ser

    def _read_some(self, timeout: float) -> bytes:
        ser = self._port()
        try:
            ser.timeout = max(timeout, 0.0)
            first = ser.read(1)                  # waits up to `timeout`
            if not first:
                return b""
            ser.timeout = 0                      # then whatever else is already there
            return first + ser.read(65536)
        except (serial.SerialException, OSError, termios.error) as e:
            raise Disconnected(f"lost {self.spec}: {_why(e)}") from None

    def _write_all(self, data: bytes, timeout: float) -> None:
        ser = self._port()
        try:
            ser.write_timeout = timeout
            ser.write(data)
            ser.flush()
        except serial.SerialTimeoutException:
            raise TransportTimeout(f"{self.spec}: write not accepted within {timeout:g} s") from None
        except (serial.SerialException, OSError, termios.error) as e:   # tcdrain: termios.error
            raise Disconnected(f"lost {self.spec}: {_why(e)}") from None

    def close(self) -> None:
        if self._ser is not None:
            try:
                self._ser.close()
            except Exception:       # closing a vanished port may fail: it is closed either way
                pass
            self._ser = None


class ExecTransport(Transport):
    """A program (the host emulator) with stdin/stdout on a raw pty; killed on close.

    Its stderr goes to a log file, quoted in the error when the program dies, so a sanitizer
    report or a crash message is not lost. A dead program is not restarted: reconnecting
    would hide a crash behind a fresh process."""

    def __init__(self, argv: list[str]):
        super().__init__()
        if not argv:
            raise PortNotFound("exec: needs a program")
        self.argv = list(argv)
        self.spec = "exec:" + shlex.join(self.argv)
        self._fd: int | None = None
        self.proc: subprocess.Popen | None = None
        self._log = tempfile.TemporaryFile(prefix="beexgen-exec-")
        self._open()

    def _open(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        try:
            self.proc = subprocess.Popen(self.argv, stdin=slave, stdout=slave, stderr=self._log,
                                         close_fds=True, start_new_session=True)
        except OSError as e:
            os.close(master)
            raise PortNotFound(f"cannot run {shlex.join(self.argv)}: {_why(e)}") from None
        finally:
            os.close(slave)             # only the child holds the slave: its exit gives us EIO
        os.set_blocking(master, False)
        self._fd = master

    def _died(self) -> Disconnected:
        code = None
        if self.proc is not None:
            try:
                code = self.proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                pass
        how = ("still running" if code is None else
               f"killed by signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}")
        msg = f"{shlex.join(self.argv)} closed the connection ({how})"
        tail = self.stderr_tail()
        return Disconnected(msg + (f"; its stderr ends with: {tail}" if tail else ""))

    def stderr_tail(self, n: int = 300) -> str:
        try:
            self._log.seek(0, os.SEEK_END)
            size = self._log.tell()
            self._log.seek(max(0, size - n))
            return self._log.read().decode("utf-8", errors="replace").strip().replace("\n", " | ")
        except (OSError, ValueError):
            return ""

    def _read_some(self, timeout: float) -> bytes:
        if self._fd is None:
            raise Disconnected(f"{self.spec} is closed")
        ready, _, _ = select.select([self._fd], [], [], max(timeout, 0.0))
        if not ready:
            return b""
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return b""
        except OSError as e:                 # EIO: every slave fd closed, the program is gone
            if e.errno == errno.EIO:
                raise self._died() from None
            raise Disconnected(f"lost {self.spec}: {_why(e)}") from None
        if not data:
            raise self._died()
        return data

    def _write_all(self, data: bytes, timeout: float) -> None:
        if self._fd is None:
            raise Disconnected(f"{self.spec} is closed")
        deadline = time.monotonic() + timeout
        view = memoryview(data)
        while view:
            if self.proc is not None and self.proc.poll() is not None:
                raise self._died()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TransportTimeout(f"{self.spec}: input not accepted within {timeout:g} s")
            _, ready, _ = select.select([], [self._fd], [], min(left, 0.1))
            if not ready:
                continue
            try:
                n = os.write(self._fd, view)
            except BlockingIOError:
                continue
            except OSError as e:
                if e.errno == errno.EIO:
                    raise self._died() from None
                raise Disconnected(f"lost {self.spec}: {_why(e)}") from None
            view = view[n:]

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                self.proc.kill()
            self.proc.wait()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):
        try:
            self.close()
            self._log.close()
        except Exception:
            pass


def _why(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    s = str(e)
    # pyserial wraps OSError as "[Errno 2] could not open port X: [Errno 2] No such file..."
    return s.rsplit("] ", 1)[-1] if s.startswith("[Errno") else s


def _check_host_port(spec: str) -> None:
    """socket:// and rfc2217:// need HOST:PORT (pyserial fails with a TypeError otherwise)."""
    from urllib.parse import urlsplit
    scheme = spec.split("://", 1)[0]
    try:
        u = urlsplit(spec)
        host, port = u.hostname, u.port
    except ValueError as e:
        raise PortNotFound(f"cannot open {spec}: {e}; expected {scheme}://HOST:PORT") from None
    if not host or port is None:
        raise PortNotFound(f"cannot open {spec}: expected {scheme}://HOST:PORT (e.g. {scheme}://127.0.0.1:4000)")


def _is_executable_file(path: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and os.access(path, os.X_OK)


def open_transport(spec: str, *, timeout: float = 5.0, baudrate: int = 115200) -> Transport:
    """Open the link named by `spec` (see the module docstring). `timeout` bounds writes.

    Raises PortNotFound when it cannot be opened."""
    spec = spec.strip()
    if spec.startswith("exec:"):
        try:
            argv = shlex.split(spec[len("exec:"):])
        except ValueError as e:
            raise PortNotFound(f"bad exec: spec {spec!r}: {e}") from None
        t: Transport = ExecTransport(argv)
    elif _is_executable_file(spec):
        t = ExecTransport([spec])
    elif "://" not in spec and not os.path.exists(spec):
        raise PortNotFound(f"cannot open {spec}: no such device")
    elif spec.startswith(("socket://", "rfc2217://")):
        _check_host_port(spec)
        t = SerialTransport(spec, baudrate=baudrate)
    else:
        t = SerialTransport(spec, baudrate=baudrate)
    t.write_timeout = timeout
    return t
