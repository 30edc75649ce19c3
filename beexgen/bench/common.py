"""What every bench stage shares: the log line, the run layout, the line length of the
bench's builds, talking to a device over the protocol, and the (de)serialisation of the
stage dataclasses (docs/bench.json is their fields, nothing else)."""
from __future__ import annotations

import dataclasses
import re
import sys
import time
import types
import typing
from pathlib import Path

from beexgen.train.config import TWIN_DIR

SEEDS = (0, 1, 2)          # the shipped model and both baselines are reported as a 3-seed mean
BENCH_BOARD = "mps2-an386"  # the QEMU board of the M4 stage (instruction counts, profile)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(x: float) -> float:
    """A fraction as the percentage the bench reports (4 decimals, so that the README's
    one-decimal figures, rendered from this value, are those of the fraction itself):
    README and JSON both show this value, so they cannot disagree."""
    return round(100 * float(x), 4)


def wilson(acc: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval of an accuracy (a fraction) measured on n sentences."""
    if n == 0:
        return (0.0, 1.0)
    den = 1 + z * z / n
    mid = (acc + z * z / (2 * n)) / den
    half = z * (acc * (1 - acc) / n + z * z / (4 * n * n)) ** 0.5 / den
    return (float(mid - half), float(mid + half))


def wilson_pct(acc: float, n: int) -> list[float]:
    return [pct(v) for v in wilson(acc, n)]


def run_dirs(ds: str, out: Path) -> dict[str, Path]:
    """Runs of one data set: the shipped model (seed 0), its full-precision twin and the
    paper's architecture (--no-wide) on the same split and tokenizer, and seeds 1, 2
    (each seed its own split, tokenizer and model)."""
    base = out / ds
    return {"model": base, "twin": base / TWIN_DIR, "paper": base / "paper",
            **{f"seed{s}": base / f"seed{s}" for s in SEEDS[1:]}}


def strip_cost(line: str) -> str:
    """A reply line without its board-dependent cost= and unit= fields."""
    return re.sub(r" (cost|unit)=\S+", "", line)


def device_replies(port: str, texts: list[str], policy: tuple | None = None) -> list:
    """Classify texts through host/client.py's Client (ids, checks, the byte credit,
    retries, strict replies), pipelined at its defaults (cost= does not depend on it); a
    list of Reply (or DeviceError) in order."""
    from beexgen.host.client import Client
    from beexgen.host.transport import open_transport

    with Client(open_transport(port, timeout=30), timeout=60) as c:
        c.handshake(30)
        if policy:
            c.set_policy(*policy)
        return list(c.classify_many(texts))


def qemu_replies(elf: Path, board: str, texts: list[str]) -> list:
    from beexgen.codegen import emulate
    with emulate.start_qemu(elf, board, serial="tcp") as h:
        return device_replies(h.url, texts)


# --------------------------------------------------------------------------- JSON <-> dataclasses

def to_json(obj) -> dict:
    """A stage dataclass as JSON: its fields, less those marked metadata={"json": False}."""
    return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.metadata.get("json", True)}


def _plain(v):
    if dataclasses.is_dataclass(v):
        return to_json(v)
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def from_json(cls, data: dict):
    """The inverse of to_json: nested dataclasses (also inside dict[str, X]) rebuilt;
    fields missing from data (written by an older bench) take their defaults."""
    hints = typing.get_type_hints(cls)
    kw = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kw[f.name] = _typed(hints[f.name], data[f.name])
    return cls(**kw)


def _typed(tp, v):
    if v is None:
        return None
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return from_json(tp, v)
    if typing.get_origin(tp) is dict and args and dataclasses.is_dataclass(args[1]):
        return {k: from_json(args[1], x) for k, x in v.items()}
    if typing.get_origin(tp) in (typing.Union, types.UnionType):         # X | None
        inner = [a for a in args if a is not type(None)]
        return _typed(inner[0], v) if len(inner) == 1 else v
    return v


def stage_keys(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.metadata.get("json", True)]
