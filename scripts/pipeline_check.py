"""Issue 14's "done when" check for pipelining, on both QEMU boards (not in the suite:
about a minute).

    python scripts/pipeline_check.py [N]        (default N = 1000)

For a tiny artifact (tests/fixtures.py), builds the host emulator and the firmware for
mps2-an386 and netduinoplus2, then on each board:
  1. N classify lines through `Client.classify_many` at the device's documented window
     (the requests in flight the receive ring provably holds): N replies, in order, no
     retry, every answer identical to the host emulator's (cost aside);
  2. N lines written in one go, far beyond the window: N replies, in order, each one the
     emulator's answer to its own line or `err 7 OVERRUN` (none merged, none missing).
Prints the counts; exits 1 on any mismatch.
"""
from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import serial  # noqa: E402
import torch  # noqa: E402

from beexgen.codegen import build, firmware  # noqa: E402
from beexgen.codegen.emulate import handshake, start_qemu  # noqa: E402
from beexgen.core import protocol  # noqa: E402
from beexgen.host.client import Client  # noqa: E402
from beexgen.host.transport import open_transport  # noqa: E402
from fixtures import CORPUS, tiny_artifact  # noqa: E402

torch.set_num_threads(1)


def answer(r) -> tuple:
    return (r.cls, r.label, r.fields["conf"], r.exit_depth, r.tokens, r.bmacs, r.flops, r.logits_hex)


def texts(n: int) -> list[str]:
    rng = random.Random(0)
    words = " ".join(CORPUS).split()
    return [" ".join(rng.choice(words) for _ in range(rng.randint(1, 30))) for _ in range(n)]


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    d = Path(tempfile.mkdtemp(prefix="bx_pipeline_"))
    art = tiny_artifact(d / "art")
    exe = build.build_host(art, d / "host")
    ts = texts(n)
    with Client(open_transport(f"exec:{exe}", timeout=5), window=1) as c:
        c.handshake()
        ref = [answer(c.classify(t)) for t in ts]
    failed = 0
    for board in ("mps2-an386", "netduinoplus2"):
        elf = firmware.build_firmware(art, board, d / board).elf
        with start_qemu(elf, board, log=d / f"{board}.log") as q:
            with Client(open_transport(q.url, timeout=10), timeout=10) as c:
                c.handshake()
                t0 = time.monotonic()
                got = list(c.classify_many(ts))
                dt = time.monotonic() - t0
                w = c.device_window()
                same = sum(not isinstance(g, Exception) and answer(g) == r for g, r in zip(got, ref))
                print(f"{board}: {n} lines at window {w}: {len(got)} replies in order, {same} identical to "
                      f"the host emulator, retries {c.stats['retries']}, {dt:.1f} s")
                failed += same != n or c.stats["retries"] != 0
            ser = serial.serial_for_url(q.url, timeout=5)
            try:
                handshake(ser, timeout=15)
                ser.write(b"".join(b"#%d " % i + protocol.classify_request(t) for i, t in enumerate(ts)))
                lines, buf = [], b""
                ser.timeout = 0.05
                quiet = time.monotonic() + 5
                while len(lines) < n and time.monotonic() < quiet:
                    chunk = ser.read(65536)
                    if chunk:
                        quiet = time.monotonic() + 5
                        buf += chunk
                        *new, buf = buf.split(b"\n")
                        lines += [x.decode() for x in new]
            finally:
                ser.close()
            ok = err = bad = 0
            for i, line in enumerate(lines):
                if line.startswith(f"#{i} ok "):
                    good = answer(protocol.parse_reply(line[len(f"#{i} "):])) == ref[i]
                    ok += good
                    bad += not good
                elif line in (f"#{i} err 7 OVERRUN", "err 7 OVERRUN"):
                    err += 1
                else:
                    bad += 1
            print(f"{board}: {n} lines in one write (beyond the window): {len(lines)} replies, {ok} right, "
                  f"{err} err OVERRUN, {bad} wrong or out of order")
            failed += len(lines) != n or bad != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
