"""Stream text to a beexgen device and print its predictions.

The device is a board on a serial port, firmware in QEMU (`socket://...` or a pty) or the
x86 host emulator (`--emulator PATH`). One request line, one reply line
(docs/INTERNALS.md, "Serial protocol").

Library use (tests, benchmarks):

    from beexgen.host.transport import open_transport
    from beexgen.host.infer import Client
    with Client(open_transport("exec:./bx_host", timeout=5)) as c:
        c.handshake()
        r = c.classify("what a lovely film")      # protocol.Reply
        print(r.label, r.confidence, r.exit_depth, r.cost, r.unit)

Robustness. Every request carries a request id (`#<id> ` in front, echoed by the device
in front of its reply) and the device answers every line exactly once, in order
(docs/INTERNALS.md, "Serial protocol" and "Flow control"). So:
- a reply is matched to its request by id, never by timing: a late reply to a request
  given up on carries an id no longer awaited and is skipped ("stale"). Any latency
  below the timeout is fine, and each reply gets the full timeout, counted from its
  request or from the previous reply, whichever is later;
- up to `window` requests are in flight (the device's `!info window=`, whose receive
  buffer provably holds that many); a reply whose id skips an earlier request proves
  that request's reply lost, and it is sent again at once;
- every accepted reply is checked strictly against the grammar and the device's `!info`
  (class count and names, block count, all fields present once, logits complete); a
  reply that fails is sent again, and after `retries` the error says what was wrong;
- after a line that is no reply at all (noise), one `!ping` fence is sent: its pong
  tells whether the awaited replies were lost without waiting for the timeout;
- on connect (and reconnect) a line end goes first: it ends any partial line left in
  the device's buffer (whose reply has no id and is ignored), then `!ping` until a
  pong with one of our ids comes back;
- `!info` is read twice and both copies must agree (its last field could be truncated
  undetectably otherwise).
What this cannot catch: bytes corrupted inside a reply that keep it well-formed (a digit
changed in `cost=`), or a whole reply line duplicated by the link. A CRC field in the
reply would; the protocol has none today.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shlex
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field

import click

from beexgen.core import protocol
from beexgen.core.protocol import DeviceError, ProtocolError, Reply, Status, wire_label
from beexgen.host.transport import (Disconnected, PortNotFound, Transport, TransportError,
                                    TransportTimeout, open_transport)

EXIT_OK = 0
EXIT_USAGE = 1          # bad option, unreadable input file, bad artifact dir
EXIT_TRANSPORT = 2      # port missing, no answer, connection lost, hopelessly noisy line
EXIT_DEVICE = 3         # at least one request got an `err` reply (batch: all lines still run)
EXIT_HASH = 4           # the device's model hash differs from --artifact's
EXIT_INTERRUPTED = 130

MAX_REPINGS = 64        # during a resync, at most this many extra pings for garbled lines

INFO_KEYS = ("format", "hash", "board", "classes", "blocks", "d", "heads", "seq", "vocab",
             "labels", "policy", "thr", "unit")
CLASSIFY_KEYS = ("cls", "label", "conf", "exit", "tokens", "cost", "unit", "bmacs", "flops", "logits")
_INT = re.compile(r"\d+\Z")
_FLOAT = re.compile(r"-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\Z")
_HEX32 = re.compile(r"[0-9a-fA-F]{8}\Z")
_HASH = re.compile(r"[0-9a-f]{64}\Z")
_ERR_NAME = re.compile(r"[A-Z][A-Z0-9_]*\Z")


class _Lost(Exception):
    """The awaited reply did not arrive (timeout) or provably was lost (a fence pong came first)."""


class _Garbage(Exception):
    """A line that is not a well-formed reply."""


# --------------------------------------------------------------------------------------
# strict reply checks: parse_reply accepts a superset; these reject truncated/glued lines
# --------------------------------------------------------------------------------------
def _keys_once(line: str) -> None:
    keys = [p.partition("=")[0] for p in line.split(" ")[1:] if "=" in p]
    if len(keys) != len(set(keys)):
        raise _Garbage(f"repeated field in {line[:80]!r}")


def _floats(s: str) -> list[float]:
    """A threshold list: hex32 bit patterns (what the firmware sends) or decimals."""
    if s == "":
        return []
    parts = s.split(",")
    if all(_HEX32.match(p) for p in parts):
        return [protocol.hex_to_float(p) for p in parts]
    if not all(_FLOAT.match(p) for p in parts):
        raise _Garbage(f"bad number list {s!r}")
    return [float(p) for p in parts]


def _f32_hex(x: float) -> str:
    return protocol.float_to_hex(x)


def check_err(line: str) -> DeviceError:
    """A DeviceError for a well-formed `err <code> <NAME> [detail]` line, else _Garbage."""
    parts = line.split(" ")
    if len(parts) < 3 or not _INT.match(parts[1]) or not _ERR_NAME.match(parts[2]):
        raise _Garbage(f"malformed error reply {line[:80]!r}")
    code = int(parts[1])
    if code in Status._value2member_map_ and (code == Status.OK or Status(code).name != parts[2]):
        raise _Garbage(f"error code {code} with name {parts[2]!r}: {line[:80]!r}")
    return DeviceError(code, " ".join(parts[3:]), line)


def check_info(r: Reply) -> dict:
    f = r.fields
    _keys_once(r.line)
    missing = [k for k in INFO_KEYS if k not in f]
    if missing:
        raise _Garbage(f"info reply lacks {missing}")
    for k in ("classes", "blocks", "d", "heads", "seq", "vocab"):
        if not _INT.match(f[k]):
            raise _Garbage(f"info {k}={f[k]!r} is not an integer")
    if not _HASH.match(f["hash"]):
        raise _Garbage(f"info hash {f['hash']!r} is not a sha256 hex digest")
    labels = f["labels"].split(",")
    if len(labels) != int(f["classes"]) or not all(labels):
        raise _Garbage(f"info labels {f['labels']!r} do not match classes={f['classes']}")
    if not f["unit"] or not f["board"] or not f["policy"]:
        raise _Garbage("info has an empty field")
    if "line" in f and not _INT.match(f["line"]):
        raise _Garbage(f"info line={f['line']!r} is not an integer")
    info = dict(f)
    info.update({k: int(f[k]) for k in ("classes", "blocks", "d", "heads", "seq", "vocab")})
    if "window" in f and not (_INT.match(f["window"]) and int(f["window"]) >= 1):
        raise _Garbage(f"info window={f['window']!r} is not a positive integer")
    info["line"] = int(f["line"]) if "line" in f else None
    info["window"] = int(f["window"]) if "window" in f else 1
    if "first" in f and f["first"] not in ("0", "1"):
        raise _Garbage(f"info first={f['first']!r} is not 0 or 1")
    info["first"] = int(f.get("first", "1"))        # the first exit: 0 when the model has a wide exit
    info["labels"] = labels
    info["thr"] = _floats(f["thr"])
    return info


def check_classify(r: Reply, info: dict) -> Reply:
    f = r.fields
    _keys_once(r.line)
    for k in ("cls", "tokens", "cost", "bmacs", "flops"):
        if not _INT.match(f[k]):
            raise _Garbage(f"{k}={f[k]!r} is not an integer")
    d, _, b = f["exit"].partition("/")
    if not (_INT.match(d) and _INT.match(b)) or int(b) != info["blocks"] or not info["first"] <= int(d) <= int(b):
        raise _Garbage(f"exit={f['exit']!r} with {info['blocks']} blocks")
    cls = int(f["cls"])
    if cls >= info["classes"] or f["label"] != info["labels"][cls]:
        raise _Garbage(f"cls={cls} label={f['label']!r} does not match the device's labels")
    if not _FLOAT.match(f["conf"]) or not 0.0 <= float(f["conf"]) <= 1.0:
        raise _Garbage(f"conf={f['conf']!r}")
    logits = f["logits"].split(",")
    if len(logits) != info["classes"] or not all(_HEX32.match(h) for h in logits):
        raise _Garbage(f"logits={f['logits'][:40]!r}... is not {info['classes']} hex32 values")
    if f["unit"] != info["unit"]:
        raise _Garbage(f"unit={f['unit']!r}, the device said {info['unit']!r}")
    return r


def check_tok(r: Reply) -> list[int]:
    _keys_once(r.line)
    f = r.fields
    if set(f) != {"n", "ids"} or not _INT.match(f["n"]):
        raise _Garbage(f"malformed tok reply {r.line[:80]!r}")
    parts = f["ids"].split(",") if f["ids"] else []
    if len(parts) != int(f["n"]) or not all(_INT.match(p) for p in parts):
        raise _Garbage(f"tok reply n={f['n']} does not match its ids")
    return [int(p) for p in parts]


# --------------------------------------------------------------------------------------
# the client
# --------------------------------------------------------------------------------------
class _Req:
    """One request line on the wire: `#<id> <body>`. `job` is its index in the
    pipeline's job list, None for a ping of the client's own (handshake, fence)."""
    __slots__ = ("id", "body", "job", "sent")

    def __init__(self, rid: int, body: bytes, job: int | None, sent: float):
        self.id, self.body, self.job, self.sent = rid, body, job, sent


_ID_PREFIX = re.compile(r"#(\d{1,%d}) " % protocol.ID_DIGITS)
_ID_MOD = 10 ** protocol.ID_DIGITS
_PING = b"!ping"
MAX_HANDSHAKE_PINGS = 8     # unanswered pings while waiting for a booting device


class Client:
    """Request/reply over a Transport, with request ids, pipelining up to the device's
    window, retries and reconnects.

    Methods raise protocol.DeviceError for `err` replies, TransportError when the link
    fails (after `retries` retries and reconnects), ProtocolError when the device keeps
    answering with garbage. `stats` counts what the robustness machinery did
    ("retries", "stale", "garbage", "reconnects"; "retries" stays 0 on a good link)."""

    def __init__(self, transport: Transport, *, timeout: float = 5.0, retries: int = 2,
                 reconnect_wait: float = 5.0, window: int | None = None):
        self.transport = transport
        self.timeout = timeout
        self.retries = retries
        self.reconnect_wait = reconnect_wait
        self.window = window         # requests in flight; None: the device's (from !info)
        self.stats: Counter = Counter()
        self._ready = False          # handshake done on this connection
        self._info: dict | None = None
        self._next_id = 1
        self._inflight: deque[_Req] = deque()    # sent, unanswered, in the order sent
        self._last_rx = 0.0          # when the last reply line arrived

    # -- public API ---------------------------------------------------------------------
    def handshake(self, timeout: float | None = None) -> None:
        """Send a line end (ends a partial line another program left in the device's
        buffer; its reply has no id and is ignored), then ping until a pong with one of
        our ids arrives (the firmware may still be booting)."""
        self._with_reconnect(lambda: self._handshake(self.timeout if timeout is None else timeout))

    def ping(self) -> None:
        self._request(_PING, lambda r: r if r.kind == "pong" else None)

    def info(self, refresh: bool = False) -> dict:
        """The device's `!info` as a dict (ints for sizes, lists for labels and thr)."""
        if self._info is None or refresh:
            def twice() -> dict:
                a, b = self._run([(b"!info", _info_line)] * 2, window=1)
                for r in (a, b):
                    if isinstance(r, DeviceError):
                        raise r
                if a != b:
                    raise ProtocolError(f"{self.transport.spec}: two !info replies differ")
                return check_info(protocol.parse_reply(a))
            self._info = twice()
        return self._info

    def device_window(self) -> int:
        """The pipelining depth: the device's documented window (`!info window=`), or
        this client's `window` when that is smaller."""
        dev = self.info().get("window") or 1
        return max(1, min(dev, self.window)) if self.window else dev

    def classify(self, text: str) -> Reply:
        """Classify a text. The model reads the whole line (the wide exit counts every
        id, the blocks see its head and tail), so a text longer than the device's line
        buffer cannot be cut without changing the answer: DeviceError LINE_TOO_LONG,
        before anything is sent (build the firmware with a longer line for such texts)."""
        r = next(self.classify_many([text], window=1))
        if isinstance(r, DeviceError):
            raise r
        return r

    def classify_many(self, texts, window: int | None = None):
        """Classify texts with up to `window` requests in flight (default: the device's
        window). Yields, in input order, a Reply or a DeviceError per text."""
        info = self.info()
        w = self.device_window() if window is None else max(1, min(window, self.device_window()))
        jobs = []
        for text in texts:
            req = protocol.classify_request(text).rstrip(b"\n")
            if info.get("line") and len(req) > info["line"]:
                jobs.append(DeviceError(Status.LINE_TOO_LONG, f"text of {len(req)} bytes does not fit the "
                                        f"device's {info['line']}-byte line (the whole text is the input)"))
            else:
                jobs.append((req, lambda r: check_classify(r, info) if r.kind == "classify" else None))
        yield from self._run(jobs, window=w, lazy=True)

    def tokenize(self, text: str) -> list[int]:
        """The device's token ids for `text`, [CLS] included."""
        req = b"!tok " + protocol.classify_request(text).rstrip(b"\n")
        if req.startswith(b"!tok !c "):       # `!tok` takes the text verbatim
            req = b"!tok " + req[len(b"!tok !c "):]
        return self._request(req, lambda r: check_tok(r) if r.kind == "tok" else None)

    def set_policy(self, name: str, thresholds: list[float] | None = None) -> Reply:
        """Switch the exit policy at run time; the device's echo is checked against the request."""
        if not name or " " in name:
            raise ValueError(f"bad policy name {name!r}")
        # thresholds travel as 0x<hex32>: the device gets exactly float32(t), no decimal rounding
        want = [_f32_hex(t) for t in thresholds or []]
        req = f"!policy {name}" + (" " + ",".join("0x" + h for h in want) if want else "")

        def check(r: Reply):
            if r.kind != "policy":
                return None
            _keys_once(r.line)
            thr = r.fields.get("thr")
            if thr is None or r.fields["policy"] != name:
                raise _Garbage(f"policy echo {r.line!r} does not match the request {req!r}")
            got = _floats(thr)                     # also rejects a malformed list
            if want and [_f32_hex(x) for x in got] != want:
                raise _Garbage(f"policy echo {r.line!r} does not match the request {req!r}")
            return r
        r = self._request(req.encode(), check)
        if self._info is not None:
            self._info["policy"] = r.fields["policy"]
            self._info["thr"] = _floats(r.fields.get("thr", ""))
        return r

    def close(self) -> None:
        self.transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- machinery -----------------------------------------------------------------------
    def _send(self, body: bytes, job: int | None) -> _Req:
        rid = self._next_id
        self._next_id = self._next_id % (_ID_MOD - 1) + 1
        r = _Req(rid, body, job, time.monotonic())
        self._inflight.append(r)              # first: a write that fails midway is in flight too
        self.transport.write_line(b"#%d " % rid + body)
        return r

    def _read(self, deadline: float) -> str | None:
        """The next line, or None when `deadline` passed first."""
        try:
            return self.transport.read_line(max(0.0, deadline - time.monotonic()))
        except TransportTimeout:
            return None

    def _deadline(self) -> float:
        """The oldest request in flight has `timeout` s from when it was sent or from the
        last reply to one of ours, whichever is later: each reply may take up to `timeout`.
        (Lines that are no reply of ours do not count: a device spewing noise still times out.)"""
        return max(self._inflight[0].sent, self._last_rx) + self.timeout

    def _match(self, line: str):
        """Split a reply line: (request it answers or None, position in flight, rest of line)."""
        m = _ID_PREFIX.match(line)
        if not m:
            return None, -1, line
        rid = int(m.group(1))
        for pos, r in enumerate(self._inflight):
            if r.id == rid:
                return r, pos, line[m.end():]
        return None, -2, line[m.end():]            # an id we are not waiting for: stale

    def _handshake(self, timeout: float) -> None:
        t = self.transport
        self.stats["handshakes"] += 1
        self._inflight.clear()
        t.write_line(b"\n")
        deadline = time.monotonic() + timeout
        interval, garbage, idless_pong = 0.1, 0, False
        last_ping = time.monotonic()
        self._send(_PING, None)
        while True:
            now = time.monotonic()
            if now >= deadline:
                hint = ("; it answers `ok pong` without the request id: its firmware predates "
                        "request ids, rebuild it with this beexgen" if idless_pong else
                        f"; it sent {garbage} line(s) that are not replies (wrong baud rate, or not "
                        "beexgen firmware?)" if garbage else "")
                self._inflight.clear()
                raise TransportTimeout(f"no answer from {t.spec} to !ping within {timeout:g} s{hint}")
            line = self._read(min(deadline, last_ping + interval))
            if line is None:
                if len(self._inflight) < MAX_HANDSHAKE_PINGS:   # perhaps still booting: ask again
                    self._send(_PING, None)
                    last_ping = time.monotonic()
                    interval = min(interval * 2, 1.0)
                continue
            req, pos, rest = self._match(line)
            if req is None:
                idless_pong |= line == "ok pong"
                garbage += not line.startswith(("ok", "err", "#"))   # replies to the line end are expected
                continue
            for _ in range(pos + 1):                  # earlier pings were lost (sent while booting)
                self._inflight.popleft()
            if rest == "ok pong":
                self._ready = True                    # later pings stay in flight, answered in turn
                return

    def _run(self, jobs: list, window: int, lazy: bool = False):
        """Send jobs (`(body, check)` or a ready result) with up to `window` requests in
        flight; returns (lazy: yields) each job's result in order: check's value or a
        DeviceError. Lost replies (timeout, garbled, skipped by a later id, an overrun)
        are sent again, at most `retries` times each."""
        gen = self._pipeline(jobs, window)
        return gen if lazy else list(gen)

    def _pipeline(self, jobs: list, window: int):
        results: dict[int, object] = {}
        tries: Counter = Counter()
        why: dict[int, str] = {}
        todo: deque[int] = deque()
        for k, job in enumerate(jobs):
            if isinstance(job, DeviceError):
                results[k] = job
            else:
                todo.append(k)
        out, reconnects, want_fence = 0, 0, False
        fence: _Req | None = None

        def lost(r: _Req, reason: str) -> None:
            nonlocal fence
            if r is fence:
                fence = None
            if r.job is None:
                return
            tries[r.job] += 1
            why[r.job] = reason
            self.stats["retries"] += 1
            if tries[r.job] > self.retries:
                body = r.body[:60]
                if reason.startswith("no reply"):
                    raise TransportTimeout(f"{reason} to {body!r} (after {tries[r.job]} attempts)")
                raise ProtocolError(f"{self.transport.spec}: no valid reply to {body!r} after "
                                    f"{tries[r.job]} attempts: {reason}")
            todo.appendleft(r.job)

        while out < len(jobs):
            if out in results:
                yield results.pop(out)
                out += 1
                continue
            if not self._ready:
                self._with_reconnect(lambda: self._handshake(self.timeout))
            sendable = [r for r in self._inflight if r is not fence]
            n_flight = len(sendable)
            try:
                if want_fence and fence is None and self._inflight:
                    fence = self._send(_PING, None)
                want_fence = False
                while todo and n_flight < window:
                    k = todo.popleft()
                    self._send(jobs[k][0], k)
                    n_flight += 1
                line = self._read(self._deadline())
            except Disconnected:
                reconnects += 1
                if not self.transport.can_reconnect or self.reconnect_wait <= 0 or reconnects > self.retries + 1:
                    raise
                lost_now = list(self._inflight)
                self._inflight.clear()
                fence = None
                self._reconnect()
                for r in reversed(lost_now):
                    if r.job is not None:
                        todo.appendleft(r.job)
                continue
            if line is None:                        # the oldest request got no reply in time
                r = self._inflight.popleft()
                lost(r, f"no reply from {self.transport.spec} within {self.timeout:g} s")
                continue
            req, pos, rest = self._match(line)
            if req is None:
                if pos == -2:
                    self.stats["stale"] += 1        # a late reply to a request given up on
                    continue
                if line == f"err {int(Status.OVERRUN)} OVERRUN" and self._inflight:
                    # the device lost the bytes of a line, its id with them: in order, the oldest
                    r = self._inflight.popleft()
                    lost(r, "the device lost bytes of the request (err 7 OVERRUN)")
                    continue
                self.stats["garbage"] += 1          # maybe our reply, garbled: a fence tells
                want_fence = True
                continue
            self._last_rx = time.monotonic()
            for _ in range(pos):                    # in order: the ones before it were lost
                lost(self._inflight.popleft(), f"reply lost (a later reply came first): {line[:80]!r}")
            self._inflight.popleft()
            if req is fence:
                fence = None
            if req.job is None:
                continue                            # the pong of a ping of ours
            try:
                kind, obj = self._parse(rest)
                if kind == "err":
                    if obj.status == Status.OVERRUN:
                        lost(req, "the device lost bytes of the request (err 7 OVERRUN)")
                        continue
                    results[req.job] = obj
                    continue
                val = jobs[req.job][1](obj)
                if val is None:
                    raise _Garbage(f"a {obj.kind} reply to {req.body[:40]!r}")
                results[req.job] = val
            except _Garbage as e:
                lost(req, f"invalid reply {rest[:80]!r}: {e}")

    def _parse(self, line: str):
        """('reply', Reply) | ('err', DeviceError) | raises _Garbage."""
        if line.startswith("err"):
            return "err", check_err(line)
        try:
            return "reply", protocol.parse_reply(line)
        except (ProtocolError, DeviceError, ValueError, IndexError) as e:
            raise _Garbage(str(e)) from None

    def _reconnect(self) -> None:
        self.stats["reconnects"] += 1
        self.transport.reconnect(self.reconnect_wait)
        self._ready = False

    def _with_reconnect(self, fn):
        reconnects = 0
        while True:
            try:
                return fn()
            except Disconnected:
                if not self.transport.can_reconnect or self.reconnect_wait <= 0 or reconnects > self.retries:
                    raise
                reconnects += 1
                self._reconnect()

    def _request(self, req: bytes, check):
        (r,) = self._run([(req, check)], window=1)
        if isinstance(r, DeviceError):
            raise r
        return r


def _info_line(r: Reply):
    return r.line if r.kind == "info" else None


# --------------------------------------------------------------------------------------
# input files
# --------------------------------------------------------------------------------------
@dataclass
class Item:
    lineno: int           # 1-based line (or CSV record) number in the input
    text: str
    gold: str | None = None


class InputError(Exception):
    pass


def read_items(stream: io.TextIOBase, fmt: str, name: str, text_column: str | None,
               label_column: str | None) -> list[Item]:
    data = stream.read()
    data = data.removeprefix("\ufeff")          # a UTF-8 byte order mark (Excel, Notepad)
    if fmt == "auto":
        if text_column or label_column or name.lower().endswith(".csv"):
            fmt = "csv"
        else:
            lines = [ln for ln in data.splitlines() if ln.strip()]
            fmt = "tsv" if lines and all("\t" in ln for ln in lines) else "text"
    if fmt == "text":
        return [Item(i, ln) for i, ln in enumerate(data.splitlines(), 1) if ln != ""]
    if fmt == "tsv":
        items = []
        for i, ln in enumerate(data.splitlines(), 1):
            if ln == "":
                continue
            gold, tab, text = ln.partition("\t")
            if not tab:
                raise InputError(f"{name}:{i}: no TAB in a label<TAB>text line")
            items.append(Item(i, text, gold.strip()))
        return items
    rows = list(csv.reader(io.StringIO(data, newline="")))
    if not rows:
        return []
    header = rows[0]

    def col(spec: str | None, default: str | None) -> int | None:
        if spec is None:
            return header.index(default) if default in header else None
        if spec in header:
            return header.index(spec)
        if spec.isdigit() and int(spec) < len(header):
            return int(spec)
        raise InputError(f"{name}: no column {spec!r} (columns: {', '.join(header)})")
    tcol = col(text_column, "text")
    if tcol is None:
        if len(header) == 1:
            tcol = 0
        else:
            raise InputError(f"{name}: which column is the text? pass --text-column "
                             f"(columns: {', '.join(header)})")
    lcol = col(label_column, "label")
    items = []
    for i, row in enumerate(rows[1:], 2):
        if not row:
            continue
        if tcol >= len(row) or (lcol is not None and lcol >= len(row)):
            raise InputError(f"{name}: record {i} has {len(row)} fields")
        items.append(Item(i, row[tcol], row[lcol].strip() if lcol is not None else None))
    return items


# --------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------
def reply_json(r: Reply) -> dict:
    return {"label": r.label, "cls": r.cls, "conf": r.confidence, "exit": r.exit_depth,
            "blocks": r.n_blocks, "tokens": r.tokens, "cost": r.cost, "unit": r.unit,
            "bmacs": r.bmacs, "flops": r.flops, "logits": r.logits, "logits_hex": r.logits_hex}


def error_json(e: DeviceError) -> dict:
    name = e.status.name if isinstance(e.status, Status) else str(e.status)
    return {"code": int(e.status), "name": name, "detail": e.detail}


def shown(text: str) -> str:
    """Input text for display: undecodable input bytes (kept for the device) become U+FFFD."""
    return text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")


def reply_text(r: Reply) -> str:
    return f"{r.label} (conf {r.confidence:.2f}) exit {r.exit_depth}/{r.n_blocks} cost {r.cost} {r.unit}"


def is_correct(r: Reply, gold: str, labels: list[str]) -> bool:
    """Gold labels are class names (as in the data file, or in the device's wire form,
    see protocol.wire_label), or class indices when they are not names."""
    gold_w = wire_label(gold)
    if gold_w in labels or not gold.isdigit():
        return gold_w == r.label
    return int(gold) == r.cls


@dataclass
class Tally:
    labels: list
    lines: int = 0
    replies: list = field(default_factory=list)          # (Item, Reply)
    errors: Counter = field(default_factory=Counter)     # status name -> count

    def add(self, item: Item, r: Reply) -> None:
        self.lines += 1
        self.replies.append((item, r))

    def add_error(self, e: DeviceError) -> None:
        self.lines += 1
        self.errors[error_json(e)["name"]] += 1

    def summary(self, blocks: int | None, unit: str | None) -> str:
        n_err = sum(self.errors.values())
        out = [f"summary: {self.lines} line(s), {len(self.replies)} classified, {n_err} device error(s)"]
        if n_err:
            out.append("  device errors: " + ", ".join(f"{k} x{v}" for k, v in sorted(self.errors.items())))
        labelled = [(it, r) for it, r in self.replies if it.gold is not None]
        if labelled:
            right = sum(is_correct(r, it.gold, self.labels) for it, r in labelled)
            out.append(f"accuracy: {right}/{len(labelled)} = {100.0 * right / len(labelled):.2f}% "
                       f"(labelled lines that were classified)")
        if self.replies:
            b = blocks or max(r.n_blocks for _, r in self.replies)
            hist = Counter(r.exit_depth for _, r in self.replies)
            top = max(hist.values())
            out.append(f"exit taken (blocks run, of {b}; 0 = the wide exit):")
            for d in range(0 if hist[0] else 1, b + 1):
                bar = "#" * round(30 * hist[d] / top) if top else ""
                out.append(f"  {d:>2}  {bar:<30} {hist[d]:>6}  {100.0 * hist[d] / len(self.replies):5.1f}%")
            costs = [r.cost for _, r in self.replies]
            u = unit or self.replies[0][1].unit
            out.append(f"mean cost: {sum(costs) / len(costs):.1f} {u} per line "
                       f"(min {min(costs)}, max {max(costs)}); mean tokens "
                       f"{sum(r.tokens for _, r in self.replies) / len(self.replies):.1f}")
        return "\n".join(out)


# --------------------------------------------------------------------------------------
# the command
# --------------------------------------------------------------------------------------
class _Command(click.Command):
    """Map click's usage errors to exit code 1 (click uses 2, which here means transport)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as e:
            e.show()
            sys.exit(EXIT_USAGE)
        except click.Abort:
            click.echo("error: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(rv if isinstance(rv, int) else EXIT_OK)


def _fail(msg: str, code: int) -> int:
    click.echo(f"error: {msg}", err=True)
    return code


F32_MAX = 3.4028234663852886e38


def _parse_policy(spec: str) -> tuple[str, list[float] | None]:
    """NAME or NAME:t1,t2,...; every threshold a finite number >= 0 that a float32 holds
    (the device's rule, docs/INTERNALS.md)."""
    name, colon, rest = spec.partition(":")
    if not name or " " in name:
        raise click.BadParameter(f"{spec!r}: expected NAME or NAME:t1,t2,...", param_hint="--policy")
    if not colon:
        return name, None
    out = []
    for x in rest.split(","):
        try:
            t = float(x)
        except ValueError:
            raise click.BadParameter(f"{spec!r}: thresholds must be numbers, comma separated",
                                     param_hint="--policy") from None
        if not math.isfinite(t) or t < 0:
            raise click.BadParameter(f"{spec!r}: threshold {x!r} must be a finite number >= 0",
                                     param_hint="--policy")
        if t > F32_MAX:
            raise click.BadParameter(f"{spec!r}: threshold {x!r} is beyond the float32 range (max {F32_MAX:.7g})",
                                     param_hint="--policy")
        out.append(t)
    return name, out


def _finite_seconds(ctx, param, value):
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value!r} is not a finite number of seconds")
    return value


HELP = f"""Send text to a beexgen device and print its predictions.

\b
Modes:
  interactive   stdin is a terminal and no FILE: type a sentence, get
                `label (conf 0.93) exit 2/4 cost 123456 instr`
  batch         FILE (or - for stdin, or piped stdin): one text per line,
                or TSV `label<TAB>text`, or CSV (--text-column/--label-column);
                prints one prediction per line, then a summary on stderr
                (accuracy if labelled, exit-depth histogram, mean cost)
  --info        print the device's model information and exit

\b
Exit codes:
  {EXIT_OK}  ok
  {EXIT_USAGE}  usage error, unreadable input file or artifact
  {EXIT_TRANSPORT}  transport error: port missing, no answer, connection lost
  {EXIT_DEVICE}  the device answered `err` to at least one request (batch: all
     lines are still processed, errors are reported per line)
  {EXIT_HASH}  the device's model hash differs from --artifact (see --no-check)
"""


@click.command(cls=_Command, help=HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("file", required=False, metavar="[FILE]")
@click.option("--port", "-p", envvar="BEEXGEN_PORT", metavar="SPEC",
              help="Device: serial path (/dev/ttyACM0, a pty), socket://HOST:PORT, or exec:PROGRAM [ARGS]. "
                   "Default: $BEEXGEN_PORT.")
@click.option("--emulator", "-e", metavar="PATH", help="Run this host-emulator executable (same as --port exec:PATH).")
@click.option("--baud", default=115200, show_default=True, help="Baud rate for serial ports.")
@click.option("--artifact", "-a", metavar="DIR", help="Artifact directory; its meta.json hash must equal the device's.")
@click.option("--no-check", is_flag=True, help="Warn instead of failing when the artifact hash differs.")
@click.option("--timeout", "-t", default=5.0, show_default=True, type=click.FloatRange(min=0.01, max=86400),
              callback=_finite_seconds,
              help="Seconds to wait for each reply (and for the first answer at start).")
@click.option("--retries", default=2, show_default=True, type=click.IntRange(min=0),
              help="Times to resend a request whose reply timed out or was lost.")
@click.option("--window", "-w", type=click.IntRange(min=1), metavar="N",
              help="Requests in flight at once (pipelining). Default and maximum: the device's window "
                   "(`--info` shows it), the requests its receive buffer provably holds.")
@click.option("--reconnect-wait", default=5.0, show_default=True, type=click.FloatRange(min=0, max=86400),
              callback=_finite_seconds,
              help="Seconds to wait for a vanished serial port to come back (0: give up at once).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per input line (or for --info).")
@click.option("--policy", metavar="NAME[:t1,t2]", help="Switch the device's exit policy first (e.g. entropy:0.3).")
@click.option("--info", "show_info", is_flag=True, help="Print the device information and exit.")
@click.option("--format", "fmt", type=click.Choice(["auto", "text", "tsv", "csv"]), default="auto", show_default=True,
              help="Input format; auto: CSV for *.csv or with column options, TSV when every line has a TAB.")
@click.option("--text-column", metavar="NAME|N", help="CSV column holding the text (default: 'text').")
@click.option("--label-column", metavar="NAME|N", help="CSV column holding the gold label (default: 'label' if present).")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr (default: when stderr is a terminal).")
def main(file, port, emulator, baud, artifact, no_check, timeout, retries, window, reconnect_wait, as_json,
         policy, show_info, fmt, text_column, label_column, progress):
    if port and emulator:
        raise click.UsageError("give --port or --emulator, not both")
    if emulator:
        port = "exec:" + shlex.quote(emulator)
    if not port:
        raise click.UsageError("no device: pass --port SPEC or --emulator PATH (or set BEEXGEN_PORT)")
    pol = _parse_policy(policy) if policy else None
    want_hash = _artifact_hash(artifact) if artifact else None

    items = None
    interactive = False
    if not show_info:
        if file is None and sys.stdin.isatty():
            interactive = True
        else:
            name = "<stdin>" if file in (None, "-") else file
            try:
                if file in (None, "-"):
                    stream = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="surrogateescape")
                else:
                    stream = open(file, encoding="utf-8", errors="surrogateescape", newline="")
                with stream:
                    items = read_items(stream, fmt, name, text_column, label_column)
            except OSError as e:
                return _fail(f"cannot read {name}: {e.strerror or e}", EXIT_USAGE)
            except (InputError, csv.Error) as e:
                return _fail(str(e), EXIT_USAGE)

    try:
        transport = open_transport(port, timeout=timeout, baudrate=baud)
    except TransportError as e:
        return _fail(str(e), EXIT_TRANSPORT)
    client = Client(transport, timeout=timeout, retries=retries, reconnect_wait=reconnect_wait, window=window)
    try:
        client.handshake()
        info = client.info()
        if want_hash is not None and info["hash"] != want_hash:
            msg = (f"device model hash {info['hash'][:16]}... differs from artifact {artifact} "
                   f"({want_hash[:16]}...): flash/build the matching firmware, or pass --no-check")
            if not no_check:
                return _fail(msg, EXIT_HASH)
            click.echo(f"warning: {msg}", err=True)
        if window and window > info["window"]:
            click.echo(f"warning: --window {window} is more than the device's window {info['window']} "
                       f"(the requests its receive buffer provably holds): using {info['window']}", err=True)
        if pol is not None:
            try:
                r = client.set_policy(*pol)
            except DeviceError as e:
                return _fail(f"--policy {policy}: the device refused it: {e}", EXIT_DEVICE)
            thr = ",".join(f"{t:g}" for t in _floats(r.fields.get("thr", "")))
            click.echo(f"policy: {r.fields['policy']} thr={thr}", err=True)
        if show_info:
            _print_info(info, as_json)
            return EXIT_OK
        if interactive:
            return _interactive(client, info, as_json)
        return _batch(client, info, items, as_json, progress)
    except DeviceError as e:
        return _fail(f"{transport.spec}: {e}", EXIT_DEVICE)
    except (TransportError, ProtocolError) as e:
        return _fail(str(e), EXIT_TRANSPORT)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    finally:
        client.close()


def _artifact_hash(d: str) -> str:
    """The content hash of artifact directory d, recomputed from its files, after the
    whole artifact check (beexgen/core/validate.py: pure Python, no weights loaded)."""
    from beexgen.core.validate import ArtifactError, check_dir
    try:
        return check_dir(d)["hash"]
    except ArtifactError as e:
        raise click.ClickException(f"--artifact {e}") from None
    except OSError as e:
        raise click.ClickException(f"--artifact {d}: {e.strerror or e}") from None


def _print_info(info: dict, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(info))
        return
    for k in INFO_KEYS:
        v = info[k]
        if k == "thr":
            v = [f"{t:g}" for t in v]
        click.echo(f"{k + ':':<9} {','.join(map(str, v)) if isinstance(v, list) else v}")


def _interactive(client: Client, info: dict, as_json: bool) -> int:
    click.echo(f"connected: {info['board']}, model {info['hash'][:12]}, classes {','.join(info['labels'])}, "
               f"policy {info['policy']}. Type a sentence; Ctrl-D quits.", err=True)
    had_error = False
    while True:
        try:
            text = input("> ")
        except EOFError:
            click.echo("", err=True)
            return EXIT_DEVICE if had_error else EXIT_OK
        if not text.strip():
            continue
        try:
            r = client.classify(text)
        except DeviceError as e:
            had_error = True
            click.echo(json.dumps({"error": error_json(e)}) if as_json else f"error: {e}")
            continue
        click.echo(json.dumps(reply_json(r)) if as_json else reply_text(r))


def _batch(client: Client, info: dict, items: list[Item], as_json: bool, progress) -> int:
    from tqdm import tqdm
    tally = Tally(info["labels"])
    code = EXIT_OK
    bar = tqdm(total=len(items), unit="line", file=sys.stderr, disable=(not progress) if progress is not None else None,
               dynamic_ncols=True, leave=False)

    def emit(s: str) -> None:
        if bar.disable:
            click.echo(s)
        else:
            bar.write(s, file=sys.stdout)
    try:
        for item, r in zip(items, client.classify_many([it.text for it in items])):
            if isinstance(r, DeviceError):
                e = r
                tally.add_error(e)
                if as_json:
                    emit(json.dumps({"line": item.lineno, "text": shown(item.text), "gold": item.gold,
                                     "error": error_json(e)}, ensure_ascii=False))
                else:
                    emit(f"error: line {item.lineno}: {e}")
            else:
                tally.add(item, r)
                if as_json:
                    obj = {"line": item.lineno, "text": shown(item.text), "gold": item.gold, **reply_json(r)}
                    emit(json.dumps(obj, ensure_ascii=False))
                else:
                    s = reply_text(r)
                    if item.gold is not None:
                        s += f"  | gold {item.gold}: {'right' if is_correct(r, item.gold, info['labels']) else 'wrong'}"
                    emit(s)
            bar.update(1)
    except (TransportError, ProtocolError) as e:
        code = EXIT_TRANSPORT
        failure = str(e)
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
        failure = "interrupted"
    finally:
        bar.close()
    click.echo(tally.summary(info["blocks"], info["unit"]), err=True)
    noisy = {k: v for k, v in client.stats.items() if k != "handshakes" or v > 1}
    if noisy:
        click.echo("link: " + ", ".join(f"{k} {v}" for k, v in sorted(noisy.items())), err=True)
    if code != EXIT_OK:
        done = tally.lines
        return _fail(f"{failure} (after {done} of {len(items)} lines)", code)
    return EXIT_DEVICE if tally.errors else EXIT_OK


if __name__ == "__main__":
    main()
