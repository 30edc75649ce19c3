"""The serial line protocol shared by the firmware, the host emulator and beexgen.host.

One request line in, exactly one reply line out, in order (docs/INTERNALS.md). A request
may carry an id (`#<id> ` in front), echoed in front of its reply; a host keeps at most
WINDOW requests unanswered, which the device's receive ring (ring_bytes) provably holds.
`Status` is the single source of the error codes: codegen renders `bx_status.h` from it
(firmware_templates/bx_status.h.j2), so the C and Python never disagree on a number.
`parse_reply` is the one parser of reply lines, strict; `handshake` the one handshake
(the host's Client and codegen/emulate.py's raw serial port both run it). Pure Python:
codegen and a host-only install use it; nothing here imports beexgen.host.
"""
from __future__ import annotations

import re
import struct
import time
from dataclasses import dataclass, field
from enum import IntEnum


# ---------------------------------------------------------------------- flow control
# (docs/INTERNALS.md, "Flow control"). Defined here once; codegen emits them into
# bx_board.h (link_defines) and host/client.py pipelines by them.
ID_DIGITS = 9          # a request id is `#` + 1..ID_DIGITS decimal digits, then the check or a space
CHECK_DIGITS = 8       # the request check: `:` + 8 lowercase hex digits of crc32 (request_check)
CRC_POLY = 0xEDB88320  # CRC-32 (ISO-HDLC, zlib.crc32), reflected polynomial; emitted as BX_CRC_POLY
WINDOW = 64            # requests a host may keep unanswered at most (a count cap beside the byte credit)
LINE_MAX = 512         # bytes of a command line (`!policy ...`; BX_LINE_MAX); texts have no limit
RX_RING = 4096         # receive ring bytes (BX_RX_RING, a power of two): the host's byte credit
RX_SLACK = 32          # ring bytes beyond the credit: one `#<id>:<check> !ping` fence and a stray line end
PIECE = 1024           # text bytes per request line at most: longer texts go in `!more` pieces


def request_overhead() -> int:
    """Bytes a request line adds to its body on the wire: `#<id>:<check> ` and LF."""
    return 1 + ID_DIGITS + 1 + CHECK_DIGITS + 1 + 1


def credit_bytes(ring: int) -> int:
    """The host's byte credit for a device whose receive ring holds `ring` bytes."""
    return ring - RX_SLACK


def piece_bytes(ring: int) -> int:
    """Text bytes per request line for a device with a `ring`-byte receive ring: PIECE, or
    less on a small ring, so that at least two pieces fit the credit."""
    room = credit_bytes(ring) // 2 - request_overhead() - len(b"!more 999999999 999999999999 ")
    return max(1, min(PIECE, room))


def ring_for(line_max: int) -> int:
    """The receive ring of a build: RX_RING, or less on a board that sets a shorter command
    line for its small RAM (the power of two >= 8 line_max: 1024 bytes for 128)."""
    return min(RX_RING, 1 << (8 * line_max - 1).bit_length())


def link_defines(line_max: int, window: int = WINDOW, ring: int | None = None) -> list[tuple[str, str, str]]:
    """(macro, value, comment) of the flow-control sizes for bx_board.h."""
    ring = ring_for(line_max) if ring is None else ring
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"window {window!r} must be an integer >= 1")
    if ring < 2 * RX_SLACK or ring & (ring - 1):
        raise ValueError(f"receive ring {ring!r} must be a power of two >= {2 * RX_SLACK}")
    return [("BX_ID_DIGITS", str(ID_DIGITS), "request id digits at most (`#<digits> ` prefix)"),
            ("BX_CHECK_DIGITS", str(CHECK_DIGITS), "hex digits of a request check (`#<id>:<crc32> `)"),
            ("BX_CRC_POLY", f"0x{CRC_POLY:08X}u", "CRC-32 (zlib), reflected polynomial"),
            ("BX_WINDOW", str(window), "requests in flight a host may keep at most (beside the byte credit)"),
            ("BX_RX_RING", str(ring), f"receive ring bytes: the host's credit is BX_RX_RING - {RX_SLACK}")]


def crc32(data: bytes, crc: int = 0) -> int:
    """CRC-32 with CRC_POLY, the one the firmware computes bit by bit (bx_crc32_byte),
    written out here so its definition is this file; equal to zlib.crc32."""
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (CRC_POLY if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def request_check(rid: int, body: bytes) -> int:
    """The check of request `#<rid>:<check> <body>`: CRC-32 of the id's digits, one space
    and the body (the line without `#`, the check field and the line end), so a damaged
    id is caught as well as a damaged text."""
    import zlib
    return zlib.crc32(b"%d %s" % (rid, body))


def request_line(rid: int, body: bytes) -> bytes:
    """`#<rid>:<check> <body>` (no line end): the request line a host sends."""
    return b"#%d:%08x %s" % (rid, request_check(rid, body), body)


def text_requests(text: bytes, piece: int, key: int) -> list[bytes]:
    """Request bodies for one text: itself (`!c ` in front when it starts with `!`), or,
    past `piece` bytes, `!more <key> <offset> <part>` lines and a last `!end <key> <offset>
    <part>` (docs/INTERNALS.md, "Long texts in pieces"); `key` ties the pieces together."""
    if len(text) <= piece:
        return [(b"!c " + text) if text.startswith(b"!") else text]
    out = []
    for off in range(0, len(text), piece):
        last = off + piece >= len(text)
        out.append(b"!%s %d %d %s" % (b"end" if last else b"more", key, off, text[off:off + piece]))
    return out


class Status(IntEnum):
    """Reply status codes; `err <code> <NAME> [detail]` on the wire."""
    OK = 0
    BAD_UTF8 = 1          # the line is not valid UTF-8
    LINE_TOO_LONG = 2     # a command line longer than BX_LINE_MAX bytes; rest discarded
    EMPTY = 3             # nothing to classify (empty line, or only spaces)
    UNKNOWN_COMMAND = 4   # `!word` that is not a command
    BAD_ARGUMENT = 5      # a command's argument is malformed (policy name, thresholds)
    INTERNAL = 6          # should never happen; report it
    OVERRUN = 7           # received bytes were lost (receive buffer overflow); line discarded
    BAD_CHECK = 8         # the request's check (crc32) does not match what arrived; not executed
    BAD_PIECE = 9         # a `!more` / `!end` piece that does not continue the text in pieces


DESCRIPTIONS = {
    Status.OK: "success",
    Status.BAD_UTF8: "the line is not valid UTF-8",
    Status.LINE_TOO_LONG: "command line longer than the device's command buffer; rest of the line discarded",
    Status.EMPTY: "nothing to classify",
    Status.UNKNOWN_COMMAND: "unknown ! command",
    Status.BAD_ARGUMENT: "malformed command argument",
    Status.INTERNAL: "internal error",
    Status.OVERRUN: "receive buffer overflow: bytes of this line were lost; line discarded",
    Status.BAD_CHECK: "the request's check does not match its bytes (damaged on the link); not executed",
    Status.BAD_PIECE: "a piece of a long text out of order (a piece before it was lost); text discarded",
}


class DeviceError(Exception):
    """The device answered with an `err` reply."""

    def __init__(self, status: Status | int, detail: str = "", line: str = ""):
        self.status = Status(status) if int(status) in Status._value2member_map_ else status
        self.detail = detail
        self.line = line
        name = self.status.name if isinstance(self.status, Status) else str(status)
        super().__init__(f"device error {int(status)} {name}" + (f": {detail}" if detail else ""))


class ProtocolError(Exception):
    """A reply line that does not parse (garbage on the line, wrong firmware)."""


def hex_to_float(h: str) -> float:
    return struct.unpack("<f", struct.pack("<I", int(h, 16)))[0]


def float_to_hex(x: float) -> str:
    return f"{struct.unpack('<I', struct.pack('<f', x))[0]:08x}"


@dataclass
class Reply:
    """A parsed `ok ...` reply: `kind` is "classify", "pong", "info", "tok" or "policy"."""
    kind: str
    fields: dict = field(default_factory=dict)
    line: str = ""

    # classify replies -------------------------------------------------------------
    @property
    def cls(self) -> int: return int(self.fields["cls"])
    @property
    def label(self) -> str: return self.fields["label"]
    @property
    def confidence(self) -> float: return float(self.fields["conf"])
    @property
    def exit_depth(self) -> int: return int(self.fields["exit"].split("/")[0])
    @property
    def n_blocks(self) -> int: return int(self.fields["exit"].split("/")[1])
    @property
    def tokens(self) -> int: return int(self.fields["tokens"])
    @property
    def cost(self) -> int: return int(self.fields["cost"])
    @property
    def unit(self) -> str: return self.fields["unit"]
    @property
    def bmacs(self) -> int: return int(self.fields["bmacs"])
    @property
    def flops(self) -> int: return int(self.fields["flops"])
    @property
    def logits_hex(self) -> list[str]: return self.fields["logits"].split(",")
    @property
    def logits(self) -> list[float]: return [hex_to_float(h) for h in self.logits_hex]
    # tok replies ---------------------------------------------------------------------
    @property
    def ids(self) -> list[int]:
        s = self.fields.get("ids", "")
        return [int(x) for x in s.split(",")] if s else []


# ---------------------------------------------------------------------- the reply grammar
# Every reply the device sends, field by field (firmware_templates/bx_protocol.c writes
# them in this order). parse_reply checks a line against it strictly: each field present
# exactly once, every value of its type, lists complete; a truncated, glued or garbled
# line raises ProtocolError. The host's retry logic and every test rely on that.
INFO_KEYS = ("format", "hash", "board", "classes", "blocks", "d", "heads", "seq", "vocab",
             "labels", "policy", "thr", "unit")
INFO_OPTIONAL = ("line", "window", "first", "ring")   # newer firmware; defaults None, 1, 1, None
INFO_INTS = ("classes", "blocks", "d", "heads", "seq", "vocab")
CLASSIFY_KEYS = ("cls", "label", "conf", "exit", "tokens", "cost", "unit", "bmacs", "flops", "logits")
CLASSIFY_INTS = ("cls", "tokens", "cost", "bmacs", "flops")
TOK_KEYS = ("n", "ids")
POLICY_KEYS = ("policy", "thr")
SELFTEST_KEYS = ("mismatches",)   # `ok selftest mismatches=<n>` (-1: no golden sentences)

_INT = re.compile(r"\d+\Z")
_FLOAT = re.compile(r"-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\Z")
_HEX32 = re.compile(r"[0-9a-fA-F]{8}\Z")
_HASH = re.compile(r"[0-9a-f]{64}\Z")
_ERR_NAME = re.compile(r"[A-Z][A-Z0-9_]*\Z")
# `#<id> ` or `#<id>:<check> ` in front of a request and its reply (the reply echoes both)
ID_PREFIX = re.compile(r"#(\d{1,%d})(?::([0-9a-f]{%d}))? " % (ID_DIGITS, CHECK_DIGITS))
ID_MOD = 10 ** ID_DIGITS


def split_id(line: str) -> tuple[int | None, str]:
    """(request id, rest of the line) of a reply line; (None, line) when it has no id."""
    rid, _, rest = split_prefix(line)
    return rid, rest


def split_prefix(line: str) -> tuple[int | None, int | None, str]:
    """(request id, echoed check or None, rest) of a reply line; (None, None, line) without id."""
    m = ID_PREFIX.match(line)
    if not m:
        return None, None, line
    return int(m.group(1)), (int(m.group(2), 16) if m.group(2) else None), line[m.end():]


def _bad(msg: str, line: str):
    raise ProtocolError(f"{msg}: {line[:80]!r}")


def _kv(parts: list[str], keys: tuple, optional: tuple, line: str) -> dict:
    """The `key=value` fields of a reply: exactly `keys` (plus any of `optional`), each once."""
    out = {}
    for p in parts:
        k, sep, v = p.partition("=")
        if not sep:
            _bad(f"malformed field {p[:40]!r}", line)
        if k in out:
            _bad(f"repeated field {k!r}", line)
        if k not in keys and k not in optional:
            _bad(f"unexpected field {k!r}", line)
        out[k] = v
    missing = [k for k in keys if k not in out]
    if missing:
        _bad(f"reply lacks {missing}", line)
    return out


def parse_numbers(s: str) -> list[float]:
    """A threshold list: hex32 float bit patterns (what the firmware sends) or decimals."""
    if s == "":
        return []
    parts = s.split(",")
    if all(_HEX32.match(p) for p in parts):
        return [hex_to_float(p) for p in parts]
    if not all(_FLOAT.match(p) for p in parts):
        raise ProtocolError(f"bad number list {s[:60]!r}")
    return [float(p) for p in parts]


def parse_err(line: str) -> DeviceError:
    """The DeviceError of a well-formed `err <code> <NAME> [detail]` line; ProtocolError
    for anything else (a known code must carry its own name)."""
    parts = line.rstrip("\r\n").split(" ")
    if len(parts) < 3 or parts[0] != "err" or not _INT.match(parts[1]) or not _ERR_NAME.match(parts[2]):
        _bad("malformed error reply", line)
    code = int(parts[1])
    if code in Status._value2member_map_ and (code == Status.OK or Status(code).name != parts[2]):
        _bad(f"error code {code} with name {parts[2]!r}", line)
    return DeviceError(code, " ".join(parts[3:]), line)


def _info(f: dict, line: str) -> dict:
    for k in INFO_INTS + tuple(k for k in ("line", "window", "ring") if k in f):
        if not _INT.match(f[k]):
            _bad(f"info {k}={f[k][:20]!r} is not an integer", line)
    if not _HASH.match(f["hash"]):
        _bad(f"info hash {f['hash'][:20]!r} is not a sha256 hex digest", line)
    labels = f["labels"].split(",")
    if len(labels) != int(f["classes"]) or not all(labels):
        _bad(f"info labels do not match classes={f['classes']}", line)
    if not f["unit"] or not f["board"] or not f["policy"]:
        _bad("info has an empty field", line)
    if "window" in f and int(f["window"]) < 1:
        _bad(f"info window={f['window']} is not a positive integer", line)
    if f.get("first", "1") not in ("0", "1"):
        _bad(f"info first={f['first'][:10]!r} is not 0 or 1", line)
    info = dict(f)
    info.update({k: int(f[k]) for k in INFO_INTS})
    info["line"] = int(f["line"]) if "line" in f else None
    info["window"] = int(f.get("window", "1"))
    info["ring"] = int(f["ring"]) if "ring" in f else None     # receive ring: the byte credit
    info["first"] = int(f.get("first", "1"))        # the first exit: 0 when the model has a wide exit
    info["labels"] = labels
    info["thr"] = parse_numbers(f["thr"])
    return info


def _classify(f: dict, line: str, info: dict | None) -> None:
    for k in CLASSIFY_INTS:
        if not _INT.match(f[k]):
            _bad(f"{k}={f[k][:20]!r} is not an integer", line)
    d, _, b = f["exit"].partition("/")
    if not (_INT.match(d) and _INT.match(b)) or int(d) > int(b):
        _bad(f"exit={f['exit'][:20]!r} is not <depth>/<blocks>", line)
    logits = f["logits"].split(",")
    if not all(_HEX32.match(h) for h in logits):
        _bad("logits are not hex32 values", line)
    if f["conf"] in ("nan", "inf", "-inf"):
        # well-formed, but the model computed a NaN or an infinity (non-finite logits give a
        # non-finite softmax): the device's fault, not the link's; retrying cannot help
        raise DeviceError(Status.INTERNAL, f"non-finite result (conf={f['conf']}, logits={f['logits'][:80]})",
                          line)
    if not _FLOAT.match(f["conf"]) or not 0.0 <= float(f["conf"]) <= 1.0:
        _bad(f"conf={f['conf'][:20]!r} is not a number in [0, 1]", line)
    if not f["label"] or not f["unit"]:
        _bad("classify reply has an empty field", line)
    if info is None:
        return
    if int(b) != info["blocks"] or int(d) < info["first"]:
        _bad(f"exit={f['exit']} with {info['blocks']} blocks, first exit {info['first']}", line)
    cls = int(f["cls"])
    if cls >= info["classes"] or f["label"] != info["labels"][cls]:
        _bad(f"cls={cls} label={f['label'][:20]!r} does not match the device's labels", line)
    if len(logits) != info["classes"]:
        _bad(f"{len(logits)} logits, the device has {info['classes']} classes", line)
    if f["unit"] != info["unit"]:
        _bad(f"unit={f['unit'][:20]!r}, the device said {info['unit']!r}", line)


def parse_reply(line: str, info: dict | None = None) -> Reply:
    """Parse one reply line (without its `#<id> ` prefix) strictly against the grammar.

    Raises DeviceError for a well-formed `err` line, ProtocolError for anything that is not
    exactly a reply (truncated, glued, a field repeated or missing, a value of the wrong
    type). `info` (parse_info of the device's `!info`) also checks a classify reply
    against the model: block count, first exit, class names and count, cost unit."""
    line = line.rstrip("\r\n")
    parts = line.split(" ")
    if parts[0] == "err":
        raise parse_err(line)
    if parts[0] != "ok" or len(parts) < 2:
        _bad("not a reply line", line)
    if parts[1] == "pong":
        if len(parts) != 2:
            _bad("malformed pong", line)
        return Reply("pong", {}, line)
    if parts[1] == "more":
        f = _kv(parts[2:], ("n",), (), line)
        if not _INT.match(f["n"]):
            _bad(f"more n={f['n'][:20]!r} is not an integer", line)
        return Reply("more", f, line)
    if parts[1] == "info":
        f = _kv(parts[2:], INFO_KEYS, INFO_OPTIONAL, line)
        _info(f, line)
        return Reply("info", f, line)
    if parts[1] == "tok":
        f = _kv(parts[2:], TOK_KEYS, (), line)
        ids = f["ids"].split(",") if f["ids"] else []
        if not _INT.match(f["n"]) or len(ids) != int(f["n"]) or not all(_INT.match(p) for p in ids):
            _bad(f"tok reply n={f['n'][:10]} does not match its ids", line)
        return Reply("tok", f, line)
    if parts[1] == "selftest":
        f = _kv(parts[2:], SELFTEST_KEYS, (), line)
        if not re.fullmatch(r"-?\d+", f["mismatches"]):
            _bad("malformed selftest reply", line)
        return Reply("selftest", f, line)
    if parts[1].startswith("policy="):
        f = _kv(parts[1:], POLICY_KEYS, (), line)
        if not f["policy"]:
            _bad("empty policy name", line)
        parse_numbers(f["thr"])
        return Reply("policy", f, line)
    f = _kv(parts[1:], CLASSIFY_KEYS, (), line)
    _classify(f, line, info)
    return Reply("classify", f, line)


def parse_info(line: str | Reply) -> dict:
    """The device's `!info` reply as a dict: ints for sizes, lists for labels and thr,
    line (None when the firmware does not say), window (1) and first (1) filled in."""
    r = line if isinstance(line, Reply) else parse_reply(line)
    if r.kind != "info":
        raise ProtocolError(f"not an info reply: {r.line[:80]!r}")
    return _info(r.fields, r.line)


# ---------------------------------------------------------------------- the handshake
PING = b"!ping"
SELFTEST = b"!selftest"   # the library self-test (firmware_templates/bx_selftest.c)
MAX_HANDSHAKE_PINGS = 8     # unanswered pings while waiting for a booting device


class NoAnswer(TimeoutError):
    """The device did not answer `!ping` during the handshake."""


def handshake(write_line, read_line, new_id, timeout: float, spec: str = "the device") -> list[int]:
    """Bring a freshly opened link to a known state; one implementation for every host
    (beexgen.host.client.Client, codegen/emulate.py's raw serial handshake, the tests).

    write_line(bytes) sends one line; read_line(seconds) returns the next line or None when
    none came in time; new_id() gives the next request id. First a line end goes out: it
    ends any partial line another program left in the device's buffer (its reply has no id
    and is ignored). Then `#<id> !ping`, again with a backoff while the firmware may still be
    booting (at most MAX_HANDSHAKE_PINGS unanswered; each with its check), until a pong carrying one of our ids
    comes back. Replies come in order, so the pings before the answered one were lost.
    Returns the ids of the later pings, whose pongs follow next, in this order.
    Raises NoAnswer, with a hint from what arrived instead, after `timeout` seconds."""
    write_line(b"\n")
    deadline = time.monotonic() + timeout
    pending: list[int] = []
    interval, garbage, idless_pong = 0.1, 0, False

    def ping() -> None:
        rid = new_id()
        pending.append(rid)
        write_line(request_line(rid, PING))
    ping()
    last_ping = time.monotonic()
    while True:
        now = time.monotonic()
        if now >= deadline:
            hint = ("; it answers `ok pong` without the request id: its firmware predates "
                    "request ids, rebuild it with this beexgen" if idless_pong else
                    f"; it sent {garbage} line(s) that are not replies (wrong baud rate, or not "
                    "beexgen firmware?)" if garbage else "")
            raise NoAnswer(f"no answer from {spec} to !ping within {timeout:g} s{hint}")
        line = read_line(max(0.0, min(deadline, last_ping + interval) - now))
        if line is None:
            if len(pending) < MAX_HANDSHAKE_PINGS:      # perhaps still booting: ask again
                ping()
                last_ping = time.monotonic()
                interval = min(interval * 2, 1.0)
            continue
        rid, rest = split_id(line)
        if rid not in pending:
            idless_pong |= line == "ok pong"
            garbage += not line.startswith(("ok", "err", "#"))   # replies to the line end are expected
            continue
        del pending[:pending.index(rid) + 1]
        if rest == "ok pong":
            return pending


def wire_label(label: str) -> str:
    """A class label as the device sends it: reply fields are separated by spaces and
    lists by commas, so whitespace/control characters become `_`, `,` becomes `;` and
    `=` becomes `:`. Codegen stores labels in this form."""
    out = []
    for ch in label:
        if ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append("_")
        elif ch == ",":
            out.append(";")
        elif ch == "=":
            out.append(":")
        else:
            out.append(ch)
    return "".join(out) or "_"


def text_bytes(text: str) -> bytes:
    """A text as the device receives it: UTF-8, line ends inside it turned into spaces
    (the tokenizer normalises control characters to spaces anyway)."""
    return text.replace("\r", " ").replace("\n", " ").encode("utf-8", errors="surrogateescape")


def classify_request(text: str) -> bytes:
    """The request line for a text: `!c ` escapes a text that starts with `!`.
    Newlines inside the text would end the line early: they become spaces, which the
    tokenizer treats the same way (control characters normalise to spaces)."""
    t = text.replace("\r", " ").replace("\n", " ")
    if t.startswith("!"):
        t = "!c " + t
    return t.encode("utf-8", errors="surrogateescape") + b"\n"
