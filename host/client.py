"""The client of a beexgen device: request ids, pipelining, strict replies, retries.

    from beexgen.host.transport import open_transport
    from beexgen.host.client import Client
    with Client(open_transport("exec:./bx_host", timeout=5)) as c:
        c.handshake()
        r = c.classify("what a lovely film")      # protocol.Reply
        print(r.label, r.confidence, r.exit_depth, r.cost, r.unit)

The layers (like mpremote's transport / commands / main): host/transport.py moves lines,
this module speaks the protocol over one, host/cli.py is the `beexgen-infer` command.
Every reply goes through beexgen.core.protocol.parse_reply, the one strict parser of the
grammar, and the handshake is beexgen.core.protocol.handshake.

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

import time
from collections import Counter, deque

from beexgen.core import protocol
from beexgen.core.protocol import DeviceError, ProtocolError, Reply, Status
from beexgen.host.transport import Disconnected, Transport, TransportTimeout


class _Req:
    """One request line on the wire: `#<id> <body>`. `job` is its index in the
    pipeline's job list, None for a ping of the client's own (handshake, fence)."""
    __slots__ = ("id", "body", "job", "sent")

    def __init__(self, rid: int, body: bytes, job: int | None, sent: float):
        self.id, self.body, self.job, self.sent = rid, body, job, sent


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
        self._request(protocol.PING, lambda r: r if r.kind == "pong" else None)

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
                return protocol.parse_info(a)
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
                jobs.append((req, lambda r: r if r.kind == "classify" else None))
        yield from self._run(jobs, window=w, lazy=True)

    def tokenize(self, text: str) -> list[int]:
        """The device's token ids for `text`, [CLS] included."""
        req = b"!tok " + protocol.classify_request(text).rstrip(b"\n")
        if req.startswith(b"!tok !c "):       # `!tok` takes the text verbatim
            req = b"!tok " + req[len(b"!tok !c "):]
        return self._request(req, lambda r: r.ids if r.kind == "tok" else None)

    def selftest(self) -> int:
        """The device's self-test: the golden sentences that mismatch (-1: none embedded)."""
        return self._request(protocol.SELFTEST,
                             lambda r: int(r.fields["mismatches"]) if r.kind == "selftest" else None)

    def set_policy(self, name: str, thresholds: list[float] | None = None) -> Reply:
        """Switch the exit policy at run time; the device's echo is checked against the request."""
        if not name or " " in name:
            raise ValueError(f"bad policy name {name!r}")
        # thresholds travel as 0x<hex32>: the device gets exactly float32(t), no decimal rounding
        want = [protocol.float_to_hex(t) for t in thresholds or []]
        req = f"!policy {name}" + (" " + ",".join("0x" + h for h in want) if want else "")

        def check(r: Reply):
            if r.kind != "policy":
                return None
            if r.fields["policy"] != name:
                raise ProtocolError(f"policy echo {r.line!r} does not match the request {req!r}")
            got = protocol.parse_numbers(r.fields["thr"])
            if want and [protocol.float_to_hex(x) for x in got] != want:
                raise ProtocolError(f"policy echo {r.line!r} does not match the request {req!r}")
            return r
        r = self._request(req.encode(), check)
        if self._info is not None:
            self._info["policy"] = r.fields["policy"]
            self._info["thr"] = protocol.parse_numbers(r.fields["thr"])
        return r

    def close(self) -> None:
        self.transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- machinery -----------------------------------------------------------------------
    def _new_id(self) -> int:
        rid = self._next_id
        self._next_id = self._next_id % (protocol.ID_MOD - 1) + 1
        return rid

    def _send(self, body: bytes, job: int | None) -> _Req:
        rid = self._new_id()
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
        rid, rest = protocol.split_id(line)
        if rid is None:
            return None, -1, line
        for pos, r in enumerate(self._inflight):
            if r.id == rid:
                return r, pos, rest
        return None, -2, rest                      # an id we are not waiting for: stale

    def _handshake(self, timeout: float) -> None:
        """protocol.handshake over this transport, with this client's request ids; the
        pings after the answered one stay in flight and are answered in turn."""
        self.stats["handshakes"] += 1
        self._inflight.clear()
        try:
            later = protocol.handshake(self.transport.write_line,
                                       lambda t: self._read(time.monotonic() + t), self._new_id, timeout,
                                       spec=self.transport.spec)
        except protocol.NoAnswer as e:
            raise TransportTimeout(str(e)) from None
        now = time.monotonic()
        self._inflight.extend(_Req(rid, protocol.PING, None, now) for rid in later)
        self._ready = True

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
                    fence = self._send(protocol.PING, None)
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
                    raise ProtocolError(f"a {obj.kind} reply to {req.body[:40]!r}")
                results[req.job] = val
            except ProtocolError as e:
                lost(req, f"invalid reply {rest[:80]!r}: {e}")

    def _parse(self, line: str):
        """('reply', Reply) | ('err', DeviceError); ProtocolError for anything else.
        Classify replies are checked against the device's !info too."""
        try:
            return "reply", protocol.parse_reply(line, self._info)
        except DeviceError as e:
            return "err", e

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
