"""beexgen.core.protocol: the one strict parser of the reply grammar, and the one handshake.

Good lines are the real host emulator's replies (built from tiny_artifact); bad lines are
those replies cut, glued, with a field repeated, dropped, added or of the wrong type. A
parser that accepts any of them would let the host count a garbled answer as an answer.
The handshake runs over the emulator's real pty, through codegen/emulate.py's pyserial
adapter, after garbage was left in the device's line buffer.
"""
from __future__ import annotations

import re
import time

import pytest
import serial

from beexgen.codegen import build, emulate
from beexgen.core import protocol
from beexgen.core.protocol import DeviceError, ProtocolError, Status
from beexgen.host.client import Client
from beexgen.host.transport import open_transport

from fixtures import CORPUS, tiny_artifact


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    d = tmp_path_factory.mktemp("protocol")
    art = tiny_artifact(d / "art")
    exe = build.build_host(art, d / "build")
    with Client(open_transport(f"exec:{exe}", timeout=5)) as c:
        c.handshake()
        info_line = c._run([(b"!info", lambda r: r.line)], window=1)[0]
        lines = {"info": info_line,
                 "classify": [c.classify(t).line for t in CORPUS[:4]],
                 "tok": c._run([(b"!tok the film", lambda r: r.line)], window=1)[0],
                 "policy": c.set_policy("entropy", [0.5]).line}
    return {"exe": exe, "art": art, "lines": lines, "info": protocol.parse_info(info_line)}


def test_real_replies_parse(dev):
    L, info = dev["lines"], dev["info"]
    assert info["hash"] == dev["art"].hash and info["labels"] == list(dev["art"].classes)
    assert info["blocks"] == 3 and info["window"] == protocol.WINDOW and info["line"] == 512
    for line in L["classify"]:
        r = protocol.parse_reply(line, info)
        assert r.kind == "classify" and 0 <= r.cls < 3 and len(r.logits) == 3 and r.n_blocks == 3
    assert protocol.parse_reply(L["tok"]).ids[0] == 2                   # [CLS] first
    r = protocol.parse_reply(L["policy"])
    assert r.kind == "policy" and protocol.parse_numbers(r.fields["thr"]) == [0.5]
    assert protocol.parse_reply("ok pong").kind == "pong"


def test_every_cut_of_a_classify_reply_is_refused(dev):
    """With the device's !info, no proper prefix of a classify reply parses."""
    for line in dev["lines"]["classify"]:
        for k in range(len(line)):
            with pytest.raises(ProtocolError):
                protocol.parse_reply(line[:k], dev["info"])


def mutations(line: str) -> list[str]:
    f = line.split(" ")
    return [
        line + " " + line,                                    # two replies glued
        line + " " + f[1],                                    # a field repeated
        " ".join(f[:1] + f[2:]),                              # a field dropped
        line + " extra=1",                                    # a field nobody sends
        line + " junk",                                       # a word without =
        line.replace(" ", "  ", 1),                           # an empty word
    ]


@pytest.mark.parametrize("kind", ["classify", "tok", "policy", "info"])
def test_glued_repeated_dropped_and_added_fields_are_refused(dev, kind):
    line = dev["lines"][kind] if kind != "classify" else dev["lines"]["classify"][0]
    for bad in mutations(line):
        with pytest.raises(ProtocolError):
            protocol.parse_reply(bad, dev["info"])


def sub(line: str, key: str, value: str) -> str:
    out, n = re.subn(rf"(?<= ){key}=[^ ]*", f"{key}={value}", line)
    assert n == 1, (line, key)
    return out


@pytest.mark.parametrize("key, value, with_info", [
    ("cls", "x", False), ("cls", "-1", False), ("cls", "3", True), ("conf", "1.5", False),
    ("exit", "4/3", False), ("exit", "2/4", True), ("exit", "2", False),
    ("tokens", "", False), ("cost", "1e3", False), ("logits", "3f80000", False),
    ("logits", "3f800000", True), ("label", "nope", True), ("unit", "instr", True), ("label", "", False),
])
def test_fields_of_the_wrong_type_or_model_are_refused(dev, key, value, with_info):
    bad = sub(dev["lines"]["classify"][0], key, value)
    with pytest.raises(ProtocolError):
        protocol.parse_reply(bad, dev["info"] if with_info else None)


@pytest.mark.parametrize("conf", ["nan", "inf", "-inf"])
def test_nan_from_the_device_is_a_device_error(dev, conf):
    """A well-formed reply whose model output is not finite (weights of 3e38) is the
    device's error (beexgen-infer exit code 3), not a transport error to retry (issue 25)."""
    bad = sub(dev["lines"]["classify"][0], "conf", conf)
    with pytest.raises(DeviceError, match="non-finite"):
        protocol.parse_reply(bad, dev["info"])


@pytest.mark.parametrize("key, value", [
    ("classes", "x"), ("hash", "abc"), ("labels", "a,b"), ("window", "0"), ("first", "2"), ("unit", ""),
    ("thr", "1,x"),
])
def test_malformed_info_is_refused(dev, key, value):
    with pytest.raises(ProtocolError):
        protocol.parse_info(sub(dev["lines"]["info"], key, value))


def test_tok_and_policy_and_pong_grammar(dev):
    tok = dev["lines"]["tok"]
    n = int(re.search(r"n=(\d+)", tok).group(1))
    for bad in (sub(tok, "n", str(n + 1)), sub(tok, "ids", "1,,2"), "ok pong now", "ok", "pong", "",
                sub(dev["lines"]["policy"], "thr", "zz"), sub(dev["lines"]["policy"], "policy", "")):
        with pytest.raises(ProtocolError):
            protocol.parse_reply(bad)


@pytest.mark.parametrize("line, code, name", [
    ("err 3 EMPTY", 3, "EMPTY"), ("err 5 BAD_ARGUMENT bad threshold", 5, "BAD_ARGUMENT"),
    ("err 99 FROM_NEWER_FIRMWARE", 99, None),
])
def test_err_lines(line, code, name):
    with pytest.raises(DeviceError) as e:
        protocol.parse_reply(line)
    assert int(e.value.status) == code and (name is None or e.value.status.name == name)
    assert protocol.parse_err(line).line == line


@pytest.mark.parametrize("line", ["err 3 BAD_UTF8", "err 0 OK", "err x EMPTY", "err 3", "err 3 empty"])
def test_malformed_err_lines_are_refused(line):
    with pytest.raises(ProtocolError):
        protocol.parse_reply(line)


def test_every_status_has_a_description():
    assert set(protocol.DESCRIPTIONS) == set(Status)


def test_the_raw_handshake_over_a_real_pty(dev):
    """Half a line left in the device's buffer, then codegen/emulate.py's handshake on a
    pyserial port, each reply 0.25 s late (so several pings are out when the first pong
    comes): the next request's reply is the next line read, since the handshake read
    the pong of every ping it sent."""
    from test_redteam import Relay             # emulator <-pty-> relay <-pty-> a path pyserial opens
    relay = Relay(dev["exe"], delay=0.25)
    ser = serial.serial_for_url(relay.path, timeout=5)
    sent = []
    write = ser.write
    ser.write = lambda b: (sent.append(b), write(b))[1]
    try:
        write(b"half a line without its end")
        emulate.handshake(ser, timeout=10)
        assert sum(b.endswith(b" !ping\n") for b in sent) >= 2, sent     # the late replies made it ping again
        for t in CORPUS[:3]:
            ser.write(b"#77 " + protocol.classify_request(t))
            rid, rest = protocol.split_id(ser.readline().decode().rstrip("\r\n"))
            assert rid == 77 and protocol.parse_reply(rest, dev["info"]).kind == "classify", rest
        ser.timeout = 0.3
        assert ser.read(100) == b""            # nothing left over
    finally:
        ser.close()
        relay.close()


def test_the_handshake_says_what_came_instead():
    """A device that answers pings without ids (old firmware) or with noise: NoAnswer says so.
    The link here is two functions: lines in, the same reply line out."""
    for reply, hint in (("ok pong", "predates request ids"), ("\x00\xffgarbage", "not replies")):
        sent = []

        def read_line(timeout: float, reply=reply) -> str:
            time.sleep(min(timeout, 0.05))
            return reply
        with pytest.raises(protocol.NoAnswer, match=hint):
            protocol.handshake(sent.append, read_line, iter(range(1, 100)).__next__, 0.5)
        assert sent[0] == b"\n" and sent[1] == protocol.request_line(1, b"!ping") and len(sent) <= 1 + protocol.MAX_HANDSHAKE_PINGS
