"""Bench stage: the binary linear kernel on the model's shapes (portable and DSP paths),
whole calls on the M4 (counted in unicorn), and CMSIS-DSP's q7 peer on the same shapes
and board (codegen/m4bench.py). Every field is keyed by shape "n_inxn_out"."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from beexgen.bench.common import log


def _shapes():
    return field(default_factory=dict)


@dataclass
class Kernel:
    binary_instr: dict[str, int] = _shapes()                   # bx_binlinear as the default firmware runs it
    binary_instr_per_32_macs: dict[str, float] = _shapes()
    dsp_instr: dict[str, int] = _shapes()
    dsp_instr_per_32_macs: dict[str, float] = _shapes()
    portable_instr_per_32_macs: dict[str, float] = _shapes()
    reference_instr_per_32_macs: dict[str, float] = _shapes()
    cmsis_dsp_q7_instr: dict[str, int] = _shapes()
    cmsis_dsp_q7_instr_per_mac: dict[str, float] = _shapes()
    q7_over_binary: dict[str, float] = _shapes()


def measure(work: Path) -> Kernel:
    from beexgen.codegen import m4bench

    k = m4bench.kernel_figures(work_dir=work / "binary")
    q = m4bench.q7_figures(binary=k, work_dir=work / "q7")
    both = {**k, **q}
    log("kernel: " + ", ".join(f"{s} {v:.2f}" for s, v in k["binary_instr_per_32_macs"].items())
        + " instructions per 32 binary MACs; q7 / binary " + ", ".join(f"{v:.1f}x" for v in q["q7_over_binary"].values()))
    return Kernel(**{f.name: both[f.name] for f in fields(Kernel)})
