"""Bench stage: exactness. The host emulator (one build per x86 kernel path) against the
PyTorch deploy mirror (class, exit, logit bits), and the QEMU firmware against the host
emulator (whole replies, cost= and unit= aside)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from beexgen.bench.common import device_replies, strip_cost


@dataclass
class Parity:
    c_equals_pytorch: list[int] = field(default_factory=list)    # [identical, total] sentences
    qemu_equals_host: list[int] = field(default_factory=list)
    max_text_bytes: int = 0              # the longest test text (bytes), streamed whole by the device
    texts_over_seq_max: int = 0          # test texts cut to head + tail


@dataclass
class HostRun:
    """The host builds and their replies to the test texts (not written: the stages read it)."""
    exes: dict[str, Path]                # x86 kernel path -> emulator, portable first, default last
    texts: list[str]
    parsed: list                         # replies under the artifact's default policy
    full: list                           # replies at full depth (policy none)


def host_run(ctx, bdir: Path) -> HostRun:
    from beexgen.codegen import build as build_mod

    # the default line settings: the device streams texts of any length (docs/INTERNALS.md)
    exes = {name: build_mod.build_host(ctx.art, bdir / ("host-" + name), isa=name)
            for name in build_mod.host_isa_levels()}
    exe = list(exes.values())[-1]
    parsed = device_replies(f"exec:{exe}", ctx.texts)
    full = device_replies(f"exec:{exe}", ctx.texts, policy=("none", []))
    if any(isinstance(p, Exception) for p in parsed + full):
        raise RuntimeError(f"the host emulator refused test sentences: "
                           f"{[str(p) for p in parsed if isinstance(p, Exception)][:3]}")
    return HostRun(exes, ctx.texts, parsed, full)


def measure(ctx, host: HostRun, qemu: list) -> Parity:
    from beexgen.core import artifact

    art, res = ctx.art, ctx.res_t
    exit_ref = res.depth(artifact.Policy[art.policy["name"].upper()], art.policy["thresholds"])
    cls_ref, logit_ref = res.at_exit(exit_ref)
    same = sum(p.cls == c and p.exit_depth == e and np.array_equal(np.array(p.logits, np.float32), lg)
               for p, c, e, lg in zip(host.parsed, cls_ref, exit_ref, logit_ref))
    q_same = sum(not isinstance(a, Exception) and strip_cost(a.line) == strip_cost(b.line)
                 for a, b in zip(qemu, host.parsed))
    return Parity(c_equals_pytorch=[int(same), len(host.parsed)], qemu_equals_host=[int(q_same), len(qemu)],
                  max_text_bytes=max(len(t.encode()) for t in host.texts), texts_over_seq_max=int(ctx.report["over_seq_max"]))
