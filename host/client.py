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
- every request carries a check (`#<id>:<crc32> `, protocol.request_line): a request
  damaged on the way is answered `err BAD_CHECK` (or not recognised at all) and sent
  again, so a reply reported as a success always answers the bytes that were sent;
- flow control counts bytes: the request lines in flight (sent, not yet answered) never
  total more than the device's receive ring minus protocol.RX_SLACK (`!info ring=`), so
  the ring provably never overflows (docs/INTERNALS.md, "Flow control"); a text longer
  than protocol.piece_bytes goes as `!more` pieces and a last `!end`, sent back to back;
  a piece that fails fails its text, which is sent again whole;
- at most `window` requests are in flight besides (default: the device's `window=`);
  a reply whose id skips an earlier request proves that request's reply lost, and it
  is sent again at once;
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
changed in `cost=`), or a whole reply line duplicated by the link (replies carry no
check; requests do).
"""
from __future__ import annotations

import time
from collections import Counter, deque

from beexgen.core import protocol
from beexgen.core.protocol import DeviceError, ProtocolError, Reply, Status
from beexgen.host.transport import Disconnected, Transport, TransportTimeout


class _Req:
    """One request line on the wire: `#<id>:<check> <body>`. `job` is its index in the
    pipeline's job list (None for a ping of the client's own: handshake, fence), `part`
    its piece of that job, `attempt` the job's attempt it belongs to, `size` its bytes on
    the wire (against the credit), `more` the `n=` its `ok more` reply must carry (None:
    the job's last part)."""
    __slots__ = ("id", "body", "job", "sent", "part", "attempt", "size", "more")

    def __init__(self, rid: int, body: bytes, job: int | None, sent: float, part: int = 0, attempt: int = 0,
                 size: int = 0, more: int | None = None):
        self.id, self.body, self.job, self.sent = rid, body, job, sent
        self.part, self.attempt, self.size, self.more = part, attempt, size, more


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
        """The most requests in flight: the device's `!info window=`, or this client's
        `window` when that is smaller (the byte credit bounds them too)."""
        dev = self.info().get("window") or 1
        return max(1, min(dev, self.window)) if self.window else dev

    def credit(self) -> int:
        """Bytes of request lines in flight at most: the device's receive ring less
        protocol.RX_SLACK (`!info ring=`; an older firmware without it: one frame of
        its line, nothing pipelined beyond)."""
        info = self.info()
        if info.get("ring"):
            return protocol.credit_bytes(info["ring"])
        return (info.get("line") or protocol.LINE_MAX) + protocol.request_overhead()

    def piece(self) -> int:
        """Text bytes per request line: longer texts go in pieces."""
        info = self.info()
        return protocol.piece_bytes(info["ring"]) if info.get("ring") else (info.get("line") or protocol.LINE_MAX) - 4

    def classify(self, text: str) -> Reply:
        """Classify a text of any length (the device streams it; a long one goes in
        pieces). Raises DeviceError for an `err` reply."""
        r = next(self.classify_many([text], window=1))
        if isinstance(r, DeviceError):
            raise r
        return r

    def classify_many(self, texts, window: int | None = None):
        """Classify texts with up to `window` requests (default: the device's window) and
        the byte credit in flight. Yields, in input order, a Reply or a DeviceError per text."""
        self.info()
        w = self.device_window() if window is None else max(1, min(window, self.device_window()))
        piece = self.piece()
        classify = lambda r: r if r.kind == "classify" else None   # noqa: E731
        jobs = [(lambda key, t=protocol.text_bytes(text): protocol.text_requests(t, piece, key), classify)
                for text in texts]
        yield from self._run(jobs, window=w, lazy=True)

    def tokenize(self, text: str) -> list[int]:
        """The device's token ids for `text`, [CLS] included (one `!tok` line: the text
        must fit the byte credit)."""
        req = b"!tok " + protocol.text_bytes(text)
        if len(req) + protocol.request_overhead() > self.credit():
            raise ValueError(f"a text of {len(req)} bytes does not fit one request (credit {self.credit()} bytes)")
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

    def _send(self, body: bytes, job: int | None, **kw) -> _Req:
        rid = self._new_id()
        line = protocol.request_line(rid, body)
        r = _Req(rid, body, job, time.monotonic(), size=len(line) + 1, **kw)
        self._inflight.append(r)              # first: a write that fails midway is in flight too
        self.transport.write_line(line)
        return r

    def _new_key(self) -> int:
        """A key for the pieces of one attempt at one long text (protocol.text_requests)."""
        self._key = getattr(self, "_key", 0) % (protocol.ID_MOD - 1) + 1
        return self._key

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
        rid, check, rest = protocol.split_prefix(line)
        if rid is None:
            return None, -1, line
        for pos, r in enumerate(self._inflight):
            if r.id == rid:
                if check != protocol.request_check(r.id, r.body):
                    # the device did not see (or not verify) the check we sent: the request's
                    # prefix was damaged on the way, so its reply cannot be trusted
                    return r, pos, "err %d BAD_CHECK reply without the request's check" % Status.BAD_CHECK
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
        """Send jobs with up to `window` requests and the byte credit in flight; returns
        (lazy: yields) each job's result in order: check's value or a DeviceError. A job is
        `(body, check)`, `(parts, check)` with parts(key) -> the bodies of its pieces, or a
        ready result. A job fails when a reply is lost (timeout, garbled, skipped by a later
        id), refused for the link's sake (OVERRUN, BAD_CHECK, BAD_PIECE) or invalid; it is
        then sent again whole, at most `retries` times."""
        gen = self._pipeline(jobs, window)
        return gen if lazy else list(gen)

    def _pipeline(self, jobs: list, window: int):
        results: dict[int, object] = {}
        tries: Counter = Counter()
        attempt: Counter = Counter()          # a job's current attempt; replies to older ones are ignored
        todo: deque[int] = deque()
        for k, job in enumerate(jobs):
            if isinstance(job, DeviceError):
                results[k] = job
            else:
                todo.append(k)
        # before the device's !info is known (the !info requests themselves): one request at a time
        credit = self.credit() if self._info is not None else 0
        out, reconnects, want_fence = 0, 0, False
        fence: _Req | None = None
        cur: list = []                        # [job, bodies, next part]: the job being sent, back to back

        def parts_of(k: int) -> list[bytes]:
            body = jobs[k][0]
            return [body] if isinstance(body, bytes) else body(self._new_key())

        def lost(r: _Req, reason: str) -> None:
            nonlocal fence
            if r is fence:
                fence = None
            if r.job is None or r.attempt != attempt[r.job] or r.job in results:
                return                        # a ping of ours, or a part of an attempt already failed
            tries[r.job] += 1
            attempt[r.job] += 1
            self.stats["retries"] += 1
            if cur and cur[0] == r.job:
                cur.clear()                   # stop sending its pieces: the device discards the text
            if tries[r.job] > self.retries:
                body = r.body[:60]
                if reason.startswith("no reply"):
                    raise TransportTimeout(f"{reason} to {body!r} (after {tries[r.job]} attempts)")
                raise ProtocolError(f"{self.transport.spec}: no valid reply to {body!r} after "
                                    f"{tries[r.job]} attempts: {reason}")
            todo.appendleft(r.job)

        def send_some() -> None:
            nonlocal want_fence, fence
            if want_fence and fence is None and self._inflight:
                fence = self._send(protocol.PING, None)
            want_fence = False
            flight = [r for r in self._inflight if r is not fence]
            n_flight, n_bytes = len(flight), sum(r.size for r in flight)
            while n_flight < window:
                if not cur:
                    if not todo:
                        return
                    k = todo.popleft()
                    cur[:] = [k, parts_of(k), 0]
                k, bodies, i = cur
                size = len(protocol.request_line(protocol.ID_MOD - 1, bodies[i])) + 1
                if n_flight and n_bytes + size > credit:
                    return                    # the ring could overflow: wait for a reply
                last = i == len(bodies) - 1
                more = None
                if not last:                  # `!more <key> <off> <part>`: the device then holds off + len(part)
                    _, _, off, part = bodies[i].split(b" ", 3)
                    more = int(off) + len(part)
                self._send(bodies[i], k, part=i, attempt=attempt[k], more=more)
                n_flight += 1
                n_bytes += size
                if last:
                    cur.clear()
                else:
                    cur[2] = i + 1

        while out < len(jobs):
            if out in results:
                yield results.pop(out)
                out += 1
                continue
            if not self._ready:
                self._with_reconnect(lambda: self._handshake(self.timeout))
            try:
                send_some()
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
                    if r.job is not None and r.attempt == attempt[r.job] and r.job not in results:
                        attempt[r.job] += 1
                        if cur and cur[0] == r.job:
                            cur.clear()
                        if r.job not in todo:
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
            if req.attempt != attempt[req.job] or req.job in results:
                self.stats["stale"] += 1            # a part of a failed attempt: its text goes again
                continue
            try:
                kind, obj = self._parse(rest)
                if kind == "err":
                    if obj.status in (Status.OVERRUN, Status.BAD_CHECK, Status.BAD_PIECE):
                        self.stats["corrupted"] += obj.status == Status.BAD_CHECK
                        lost(req, f"the device refused the request as damaged ({obj})")
                        continue
                    if req.more is not None:
                        raise ProtocolError(f"{obj} to a piece of a text")
                    results[req.job] = obj
                    continue
                if req.more is not None:
                    if obj.kind != "more" or int(obj.fields["n"]) != req.more:
                        raise ProtocolError(f"a {obj.kind} reply to a piece ending at byte {req.more}")
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
