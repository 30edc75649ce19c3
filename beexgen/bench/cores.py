"""Bench stage: the run's default model on every Cortex-M core QEMU emulates (one board
per core). `python -m beexgen.bench --cores RUN` runs this stage alone over an existing run."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from beexgen.bench.common import device_replies, log, qemu_replies, strip_cost

# One QEMU board per Cortex-M core (codegen/boards/*.toml): the bench's cores table and
# tests/test_cores.py both run these.
CORE_BOARDS = {"cortex-m0": "microbit", "cortex-m3": "mps2-an385", "cortex-m4": "mps2-an386",
               "cortex-m7": "mps2-an500", "cortex-m33": "mps2-an505", "cortex-m55": "mps3-an547"}


@dataclass
class CoreResult:
    board: str = ""
    float_abi: str = ""
    flash_total: int = 0
    ram_total: int = 0
    dataset: str = ""
    fits: bool = False
    flash_bytes: int = 0
    ram_bytes: int = 0
    reason: str | None = None                     # why it does not fit
    stack_worst: int | None = None
    instructions_mean: int | None = None
    instructions_p95: int | None = None
    qemu_equals_host: list[int] | None = None     # [identical, total]
    seconds: float | None = None


def measure(run_dir: Path, work: Path, n: int | None = None,
            core_boards: dict[str, str] = CORE_BOARDS) -> dict[str, CoreResult]:
    """For each board of core_boards the firmware build (flash, RAM) and, when it fits,
    QEMU -icount instructions per sentence over the first n test sentences (all by
    default) and how many replies equal the host emulator's; when it does not fit, the
    build's reason. The "cores" key of docs/bench.json."""
    from beexgen.core import artifact
    from beexgen.codegen import boards, build as build_mod, firmware
    from beexgen.train.trainer import load_run

    run = load_run(run_dir)
    art = artifact.load(Path(run_dir) / "artifact")
    _, _, idx_t = run.part("test")
    texts = [run.texts[i] for i in idx_t]
    texts = texts[:n] if n else texts
    exe = build_mod.build_host(art, Path(work) / "host")
    host = device_replies(f"exec:{exe}", texts)
    out = {}
    for core, name in core_boards.items():
        b = boards.get_board(name)
        rec = CoreResult(board=name, float_abi="hard" if b.cpu.hard_float else "soft", flash_total=b.flash.length,
                         ram_total=b.ram.length, dataset=Path(run_dir).name)
        out[core] = rec
        try:
            fw = firmware.build_firmware(art, name, Path(work) / name)
        except firmware.FirmwareTooBig as e:
            rec.flash_bytes, rec.ram_bytes = e.build.flash_used, e.build.ram_used
            rec.reason = "; ".join(e.build.problems())
            log(f"cores: {core} ({name}) does not fit: {rec.reason}")
            continue
        t0 = time.time()
        qp = qemu_replies(fw.elf, name, texts)
        same = sum(not isinstance(a, Exception) and strip_cost(a.line) == strip_cost(h.line) for a, h in zip(qp, host))
        cost = np.array([p.cost for p in qp if not isinstance(p, Exception)], dtype=np.float64)
        rec.fits, rec.flash_bytes, rec.ram_bytes, rec.stack_worst = True, fw.flash_used, fw.ram_used, fw.stack.worst
        rec.instructions_mean = int(round(cost.mean()))
        rec.instructions_p95 = int(round(np.percentile(cost, 95)))
        rec.qemu_equals_host, rec.seconds = [int(same), len(texts)], round(time.time() - t0, 1)
        log(f"cores: {core} ({name}) {cost.mean() / 1e6:.2f} M instr/sentence, QEMU==host {same}/{len(texts)}")
    return out
