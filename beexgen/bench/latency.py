"""Bench stage: worst-case latency on the Cortex-M4 (codegen/latency.py). Every profiled
test sentence run through every block (unicorn), the default policy's tail (p95 is the
M4 stage's; the max here) over the QEMU run of the whole test split, the per-stage
profile of a full-depth pass, and the build's worst-case bound for seq_max tokens,
checked against the forward pass of the longest measured sentence."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from beexgen.bench.common import BENCH_BOARD
from beexgen.bench.m4 import PROFILE_N


@dataclass
class Latency:
    # None: not measured (a bench.json written before this stage existed)
    m4_full_depth_mean: int | None = None                # instructions, every block run, the profile's sentences
    m4_full_depth_per_token_per_block: float | None = None   # forward part / tokens / blocks
    m4_instructions_max: int | None = None               # default policy, QEMU cost=, whole test split
    m4_worst_case_bound: int | None = None               # `beexgen build`'s bound for seq_max tokens at full depth
    m4_worst_case_bound_holds: bool | None = None        # the bound >= the longest sentence's forward pass
    m4_full_depth_profile: dict[str, int] | None = None  # stage -> mean instructions of a full-depth pass


def measure(ctx, bdir: Path, elf: Path, default_costs: list[float]) -> Latency:
    from beexgen.codegen import latency

    fig = latency.measure(ctx.art, ctx.texts[:PROFILE_N], board=BENCH_BOARD, elf=elf,
                          default_costs=default_costs, work_dir=bdir / "latency")
    keys = latency.json_keys(fig)
    return Latency(**{k: keys[k] for k in Latency.__dataclass_fields__})
