"""Bench stage: the Cortex-M4 (BENCH_BOARD under QEMU -icount). Instructions per
sentence (mean, p95, by exit), a per-stage profile (unicorn, codegen/m4bench.py) over
the first PROFILE_N test sentences with its own mean cost= over those same sentences
(the stages sum to it), and the int8 peer's estimate for this model."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from beexgen.bench.common import BENCH_BOARD, log, qemu_replies

PROFILE_N = 100            # test sentences profiled stage by stage on the M4 (0.5 s each)
CYCLES_PER_INSTR = (1.0, 1.4)   # stated assumption for the cycle estimate (see CYCLE_NOTE)
CYCLE_NOTE = ("cycles ~ instructions x 1.0-1.4 on a Cortex-M4 at 100 MHz with flash wait "
              "states hidden by the ART accelerator (an assumption: QEMU has no timing model)")


@dataclass
class M4:
    m4_sentences: int = 0
    m4_instructions_mean: int = 0
    m4_instructions_p95: int = 0
    m4_by_exit: dict[str, int] = field(default_factory=dict)       # exit number e -> mean instructions
    m4_profile: dict[str, int] = field(default_factory=dict)       # stage -> mean instructions
    m4_profile_sentences: int = 0
    m4_profile_cost_mean: int | None = None                        # mean cost= over the profile's sentences
    int8_peer_instructions_estimate: int = 0
    int8_peer_flash_bytes: int = 0
    replies: list = field(default_factory=list, metadata={"json": False})   # QEMU's, for the parity stage
    elf: Path | None = field(default=None, metadata={"json": False})        # the firmware measured

    def ms_at_100mhz(self) -> tuple[float, float]:
        """The cycle estimate's range (CYCLES_PER_INSTR), milliseconds per sentence at 100 MHz."""
        return tuple(self.m4_instructions_mean * c / 1e5 for c in CYCLES_PER_INSTR)


def measure(ctx, bdir: Path, qemu_n: int | None = None) -> M4:
    from beexgen.codegen import firmware, m4bench

    texts = ctx.texts
    qb = firmware.build_firmware(ctx.art, BENCH_BOARD, bdir / BENCH_BOARD)
    n = len(texts) if not qemu_n else min(qemu_n, len(texts))
    qp = qemu_replies(qb.elf, BENCH_BOARD, texts[:n])
    cost = np.array([p.cost for p in qp], dtype=np.float64)
    exits = np.array([p.exit_depth for p in qp])
    prof = m4bench.profile(qb.elf, texts[:PROFILE_N], board=BENCH_BOARD, work_dir=bdir / "profile")
    int8 = m4bench.int8_estimate(ctx.art, tokens=float(np.mean(ctx.len_t)), blocks=ctx.art.config["n_blocks"])
    log(f"M4 {cost.mean() / 1e6:.2f} M instr/sentence mean")
    return M4(m4_sentences=n, m4_instructions_mean=int(round(cost.mean())),
              m4_instructions_p95=int(round(np.percentile(cost, 95))),
              m4_by_exit={str(e): int(round(cost[exits == e].mean())) for e in sorted(set(exits.tolist()))},
              m4_profile={k: int(round(v)) for k, v in prof["stages"].items()},
              m4_profile_sentences=int(prof["sentences"]), m4_profile_cost_mean=int(round(prof["cost_mean"])),
              int8_peer_instructions_estimate=int(round(int8["instr_per_sentence"])),
              int8_peer_flash_bytes=int(int8["flash_bytes"]), replies=qp, elf=qb.elf)
