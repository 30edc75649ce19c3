"""The serial line protocol shared by the firmware, the host emulator and host/infer.py.

One request line in, exactly one reply line out, in order (docs/INTERNALS.md). A request
may carry an id (`#<id> ` in front), echoed in front of its reply; a host keeps at most
WINDOW requests unanswered, which the device's receive ring (ring_bytes) provably holds.
`Status` is the single source of the error codes: codegen renders `bx_status.h` from it
(firmware_templates/bx_status.h.j2), so the C and Python never disagree on a number.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum


# ---------------------------------------------------------------------- flow control
# (docs/INTERNALS.md, "Flow control"). Defined here once; codegen emits them into
# bx_board.h (link_defines) and host/infer.py pipelines by them.
ID_DIGITS = 9          # a request id is `#` + 1..ID_DIGITS decimal digits + one space
WINDOW = 4             # requests a host may keep unanswered: the receive ring holds them all
RX_SLACK = 32          # ring bytes beyond the window: one `#<id> !ping` fence and a stray line end


def frame_max(line_max: int) -> int:
    """Bytes of the longest request line on the wire: id prefix, BX_LINE_MAX bytes, CRLF."""
    return 1 + ID_DIGITS + 1 + line_max + 2


def ring_bytes(line_max: int, window: int = WINDOW) -> int:
    """The receive ring of a board: `window` longest lines plus RX_SLACK, rounded up to a
    power of two (the ring indexes with a mask)."""
    need = window * frame_max(line_max) + RX_SLACK
    return 1 << (need - 1).bit_length()


def link_defines(line_max: int, window: int = WINDOW) -> list[tuple[str, str, str]]:
    """(macro, value, comment) of the flow-control sizes for bx_board.h."""
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"window {window!r} must be an integer >= 1")
    return [("BX_ID_DIGITS", str(ID_DIGITS), "request id digits at most (`#<digits> ` prefix)"),
            ("BX_WINDOW", str(window), "requests in flight the receive ring provably holds"),
            ("BX_RX_RING", str(ring_bytes(line_max, window)),
             f"receive ring bytes >= BX_WINDOW * {frame_max(line_max)} + {RX_SLACK}, a power of two")]


class Status(IntEnum):
    """Reply status codes; `err <code> <NAME> [detail]` on the wire."""
    OK = 0
    BAD_UTF8 = 1          # the line is not valid UTF-8
    LINE_TOO_LONG = 2     # longer than BX_LINE_MAX bytes; the rest of the line was discarded
    EMPTY = 3             # nothing to classify (empty line, or only spaces)
    UNKNOWN_COMMAND = 4   # `!word` that is not a command
    BAD_ARGUMENT = 5      # a command's argument is malformed (policy name, thresholds)
    INTERNAL = 6          # should never happen; report it
    OVERRUN = 7           # received bytes were lost (receive buffer overflow); line discarded


DESCRIPTIONS = {
    Status.OK: "success",
    Status.BAD_UTF8: "the line is not valid UTF-8",
    Status.LINE_TOO_LONG: "line longer than the device's line buffer; rest of the line discarded",
    Status.EMPTY: "nothing to classify",
    Status.UNKNOWN_COMMAND: "unknown ! command",
    Status.BAD_ARGUMENT: "malformed command argument",
    Status.INTERNAL: "internal error",
    Status.OVERRUN: "receive buffer overflow: bytes of this line were lost; line discarded",
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


def _kv(parts: list[str], line: str) -> dict:
    out = {}
    for p in parts:
        k, sep, v = p.partition("=")
        if not sep:
            raise ProtocolError(f"malformed field {p!r} in reply {line!r}")
        out[k] = v
    return out


def parse_reply(line: str) -> Reply:
    """Parse one reply line. Raises DeviceError for `err` lines, ProtocolError for garbage."""
    line = line.rstrip("\r\n")
    parts = line.split(" ")
    if parts[0] == "err":
        if len(parts) < 3 or not parts[1].isdigit():
            raise ProtocolError(f"malformed error reply {line!r}")
        raise DeviceError(int(parts[1]), " ".join(parts[3:]), line)
    if parts[0] != "ok" or len(parts) < 2:
        raise ProtocolError(f"not a reply line: {line[:80]!r}")
    if parts[1] == "pong" and len(parts) == 2:
        return Reply("pong", {}, line)
    if parts[1] in ("info", "tok"):
        return Reply(parts[1], _kv(parts[2:], line), line)
    if parts[1].startswith("policy="):
        return Reply("policy", _kv(parts[1:], line), line)
    f = _kv(parts[1:], line)
    need = {"cls", "label", "conf", "exit", "tokens", "cost", "unit", "bmacs", "flops", "logits"}
    if not need <= f.keys():
        raise ProtocolError(f"classify reply lacks {sorted(need - f.keys())}: {line[:80]!r}")
    return Reply("classify", f, line)


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


def classify_request(text: str) -> bytes:
    """The request line for a text: `!c ` escapes a text that starts with `!`.
    Newlines inside the text would end the line early: they become spaces, which the
    tokenizer treats the same way (control characters normalise to spaces)."""
    t = text.replace("\r", " ").replace("\n", " ")
    if t.startswith("!"):
        t = "!c " + t
    return t.encode("utf-8", errors="surrogateescape") + b"\n"
