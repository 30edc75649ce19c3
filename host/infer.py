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

Robustness. The protocol has no request ids and no checksum, so the client relies on its
one guarantee, "exactly one reply line per request line, in order":
- every accepted reply is checked strictly against the grammar and the device's `!info`
  (class count and names, block count, all fields present once, logits complete);
  anything else is garbage and is skipped;
- after garbage, a `!ping` is sent as a fence: a `pong` arriving before the awaited reply
  (beyond the pongs still owed for earlier pings) proves that reply was lost, and the
  idempotent request is sent again at once instead of waiting for the timeout;
- after a timeout, a lost reply or a reconnect, the line is resynchronised before the
  next request: `!ping` until `ok pong`, then, if pongs may still be on their way, drain
  until quiet. Only pongs can then be in flight, and a pong is never taken for the
  answer to another request;
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
import os
import re
import shlex
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import click

from beexgen.host import protocol
from beexgen.host.protocol import DeviceError, ProtocolError, Reply, Status, wire_label
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
    info["line"] = int(f["line"]) if "line" in f else None
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
    if not (_INT.match(d) and _INT.match(b)) or int(b) != info["blocks"] or not 0 <= int(d) <= int(b):
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
class Client:
    """Request/reply over a Transport, with handshake, resync, retries and reconnects.

    Methods raise protocol.DeviceError for `err` replies, TransportError when the link
    fails (after `retries` retries and reconnects), ProtocolError when the device keeps
    answering with garbage. `stats` counts what the robustness machinery did."""

    def __init__(self, transport: Transport, *, timeout: float = 5.0, retries: int = 2,
                 reconnect_wait: float = 5.0, quiet: float = 0.03):
        self.transport = transport
        self.timeout = timeout
        self.retries = retries
        self.reconnect_wait = reconnect_wait
        self.quiet = quiet
        self.stats: Counter = Counter()
        self._dirty = True           # resync before the next request
        self._owed = 0               # pings sent whose pongs have not been seen
        self._info: dict | None = None

    # -- public API ---------------------------------------------------------------------
    def handshake(self, timeout: float | None = None) -> None:
        """Ping until the device answers (firmware may still be booting), then drain."""
        self._with_reconnect(lambda: self._resync(self.timeout if timeout is None else timeout))

    def ping(self) -> None:
        self._request(b"!ping", lambda r: r if r.kind == "pong" else None)

    def info(self, refresh: bool = False) -> dict:
        """The device's `!info` as a dict (ints for sizes, lists for labels and thr)."""
        if self._info is None or refresh:
            def twice() -> dict:
                a = self._request(b"!info", lambda r: r.line if r.kind == "info" else None)
                b = self._request(b"!info", lambda r: r.line if r.kind == "info" else None)
                if a != b:
                    raise _Garbage("two !info replies differ")
                return check_info(protocol.parse_reply(a))
            self._info = self._attempts(twice)
        return self._info

    def classify(self, text: str) -> Reply:
        """Classify a text. The model reads the whole line (the wide exit counts every
        id, the blocks see its head and tail), so a text longer than the device's line
        buffer cannot be cut without changing the answer: DeviceError LINE_TOO_LONG,
        before anything is sent (build the firmware with a longer line for such texts)."""
        info = self.info()
        req = protocol.classify_request(text)
        if info.get("line") and len(req) - 1 > info["line"]:
            raise DeviceError(Status.LINE_TOO_LONG, f"text of {len(req) - 1} bytes does not fit the "
                              f"device's {info['line']}-byte line (the whole text is the input)")
        return self._request(req, lambda r: check_classify(r, info) if r.kind == "classify" else None)

    def tokenize(self, text: str) -> list[int]:
        """The device's token ids for `text`, [CLS] included."""
        req = b"!tok " + protocol.classify_request(text)
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
    def _parse(self, line: str):
        """('reply', Reply) | ('err', DeviceError) | raises _Garbage."""
        if line.startswith("err"):
            return "err", check_err(line)
        try:
            return "reply", protocol.parse_reply(line)
        except (ProtocolError, DeviceError, ValueError, IndexError) as e:
            raise _Garbage(str(e)) from None

    def _ping(self) -> None:
        self.transport.write_line(b"!ping")
        self._owed += 1

    def _pong(self) -> None:
        self._owed = max(0, self._owed - 1)

    def _resync(self, timeout: float) -> None:
        """Ping until `ok pong` (re-pinging when a pong may have been garbled); if pongs of
        earlier pings may still be on their way, drain until the line is quiet. Afterwards
        nothing but garbage is in flight."""
        t = self.transport
        self.stats["resyncs"] += 1
        deadline = time.monotonic() + timeout
        interval, garbage, last_ping = 0.1, 0, time.monotonic()
        self._ping()
        while True:
            now = time.monotonic()
            if now >= deadline:
                hint = (f"; it sent {garbage} line(s) that are not replies (wrong baud rate, or not "
                        "beexgen firmware?)" if garbage else "")
                raise TransportTimeout(f"no answer from {t.spec} to !ping within {timeout:g} s{hint}")
            try:
                line = t.read_line(min(deadline, last_ping + interval) - now)
            except TransportTimeout:
                if time.monotonic() < deadline:    # the device may be booting: ask again
                    self._ping()
                    last_ping = time.monotonic()
                    interval = min(interval * 2, 1.0)
                continue
            if line == "ok pong":
                self._pong()
                if self._owed:                     # more pongs may follow: let them arrive
                    t.drain(self.quiet, limit=min(1.0, timeout))
                    self._owed = 0
                self._dirty = False
                return
            try:
                self._parse(line)                  # a late reply to an abandoned request
            except _Garbage:
                garbage += 1                       # perhaps our pong, garbled: ping again
                if garbage <= MAX_REPINGS:
                    self._ping()
                    last_ping = time.monotonic()
            except DeviceError:
                pass

    def _exchange(self, req: bytes, check):
        """Send `req` once; the checked reply, or raise DeviceError / _Lost / _Garbage.

        Pongs owed from earlier pings arrive before the reply (in order) and are skipped;
        a pong beyond those answers our fence, so the reply was lost."""
        t = self.transport
        t.write_line(req)
        old_pongs = self._owed
        is_ping = req == b"!ping"
        deadline = time.monotonic() + self.timeout
        fences, pongs = 0, 0
        while True:
            left = deadline - time.monotonic()
            try:
                line = t.read_line(max(left, 0.0))
            except TransportTimeout:
                raise _Lost(f"no reply from {t.spec} within {self.timeout:g} s") from None
            try:
                kind, obj = self._parse(line)
                if kind == "err":
                    self._owed = fences
                    raise obj
                if obj.kind == "pong":
                    self._pong()
                    if is_ping:
                        return check(obj)
                    pongs += 1
                    if pongs <= old_pongs:
                        continue                   # an earlier fence's pong
                    raise _Lost("reply lost in line noise")
                result = check(obj)
                if result is None:                 # an ok reply of another kind: stale, skip it
                    self.stats["stale"] += 1
                    continue
                self._owed = fences                # earlier pongs all came before this reply
                return result
            except _Garbage:                       # maybe our reply, maybe a fence's pong, garbled:
                self.stats["garbage"] += 1         # (another) fence tells which
                if fences < MAX_REPINGS:
                    self._ping()
                    fences += 1

    def _attempts(self, fn):
        """Run fn with resync-and-retry on lost replies / garbage, reconnecting when needed."""
        failures = 0
        while True:
            try:
                return self._with_reconnect(fn)
            except (_Lost, _Garbage, TransportTimeout) as e:
                self._dirty = True
                failures += 1
                self.stats["retries"] += 1
                if failures > self.retries:
                    if isinstance(e, _Garbage):
                        raise ProtocolError(f"{self.transport.spec}: no valid reply after "
                                            f"{failures} attempts: {e}") from None
                    raise TransportTimeout(f"{e} (after {failures} attempts)") from None

    def _with_reconnect(self, fn):
        reconnects = 0
        while True:
            try:
                return fn()
            except Disconnected:
                if not self.transport.can_reconnect or self.reconnect_wait <= 0 or reconnects > self.retries:
                    raise
                reconnects += 1
                self.stats["reconnects"] += 1
                self.transport.reconnect(self.reconnect_wait)
                self._dirty = True
                self._owed = 0

    def _request(self, req: bytes, check):
        def once():
            if self._dirty:
                self._resync(self.timeout)
            return self._exchange(req, check)
        return self._attempts(once)


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


def _parse_policy(spec: str) -> tuple[str, list[float] | None]:
    name, colon, rest = spec.partition(":")
    if not name or " " in name:
        raise click.BadParameter(f"{spec!r}: expected NAME or NAME:t1,t2,...", param_hint="--policy")
    if not colon:
        return name, None
    try:
        return name, [float(x) for x in rest.split(",")]
    except ValueError:
        raise click.BadParameter(f"{spec!r}: thresholds must be numbers, comma separated",
                                 param_hint="--policy") from None


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
@click.option("--timeout", "-t", default=5.0, show_default=True, type=click.FloatRange(min=0.01),
              help="Seconds to wait for each reply (and for the first answer at start).")
@click.option("--retries", default=2, show_default=True, type=click.IntRange(min=0),
              help="Times to resend a request whose reply timed out or was lost.")
@click.option("--reconnect-wait", default=5.0, show_default=True, type=click.FloatRange(min=0),
              help="Seconds to wait for a vanished serial port to come back (0: give up at once).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per input line (or for --info).")
@click.option("--policy", metavar="NAME[:t1,t2]", help="Switch the device's exit policy first (e.g. entropy:0.3).")
@click.option("--info", "show_info", is_flag=True, help="Print the device information and exit.")
@click.option("--format", "fmt", type=click.Choice(["auto", "text", "tsv", "csv"]), default="auto", show_default=True,
              help="Input format; auto: CSV for *.csv or with column options, TSV when every line has a TAB.")
@click.option("--text-column", metavar="NAME|N", help="CSV column holding the text (default: 'text').")
@click.option("--label-column", metavar="NAME|N", help="CSV column holding the gold label (default: 'label' if present).")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr (default: when stderr is a terminal).")
def main(file, port, emulator, baud, artifact, no_check, timeout, retries, reconnect_wait, as_json,
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
    client = Client(transport, timeout=timeout, retries=retries, reconnect_wait=reconnect_wait)
    try:
        client.handshake()
        info = client.info()
        if want_hash is not None and info["hash"] != want_hash:
            msg = (f"device model hash {info['hash'][:16]}... differs from artifact {artifact} "
                   f"({want_hash[:16]}...): flash/build the matching firmware, or pass --no-check")
            if not no_check:
                return _fail(msg, EXIT_HASH)
            click.echo(f"warning: {msg}", err=True)
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
    path = os.path.join(d, "meta.json")
    try:
        with open(path, encoding="utf-8") as f:
            h = json.load(f).get("hash")
    except OSError as e:
        raise click.UsageError(f"cannot read {path}: {e.strerror or e}") from None
    except (ValueError, AttributeError) as e:
        raise click.UsageError(f"{path} is not a JSON object: {e}") from None
    if not isinstance(h, str) or not h:
        raise click.UsageError(f"{path} has no \"hash\"")
    return h


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
        for item in items:
            try:
                r = client.classify(item.text)
            except DeviceError as e:
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
    noisy = {k: v for k, v in client.stats.items() if k != "resyncs" or v > 1}
    if noisy:
        click.echo("link: " + ", ".join(f"{k} {v}" for k, v in sorted(noisy.items())), err=True)
    if code != EXIT_OK:
        done = tally.lines
        return _fail(f"{failure} (after {done} of {len(items)} lines)", code)
    return EXIT_DEVICE if tally.errors else EXIT_OK


if __name__ == "__main__":
    main()
