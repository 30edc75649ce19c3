"""Bench stage: host speed. The host emulator (every x86 kernel path this machine has,
portable C up to the fastest) against PyTorch eager batch 1 on the same model and
sentences, full depth, microseconds per sentence.

SPEED_PASSES passes over the test sentences, PyTorch and each host build taking turns
(so a noisy neighbour slows both alike); each figure is the median of its per-pass
means. The host's time is its own cost= (ns inside classify, tokenizer included).
Replies must not change between paths."""
from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, field

from beexgen.bench.common import device_replies, log, strip_cost

SPEED_PASSES = 3


@dataclass
class HostSpeed:
    host_us_per_sentence: float = 0.0       # default build, full depth
    pytorch_us_per_sentence: float = 0.0
    host_speedup: float = 0.0
    host_speedup_by_isa: dict[str, float] = field(default_factory=dict)   # x86 path -> PyTorch / host


def torch_batch1_us(model, ids: list[list[int]], all_ids: list[list[int]], repeat: int = 1) -> float:
    """PyTorch eager, batch 1, every exit (the wide exit's bag included), microseconds per sentence."""
    import torch

    from beexgen.train.trainer import wide_batch, wide_rows

    model.eval()
    rows = wide_rows(model.cfg, ids, all_ids)
    xs = [(torch.tensor([s]), torch.tensor([len(s)]), wide_batch(rows, [i])) for i, s in enumerate(ids)]
    with torch.no_grad():
        for x, n, w in xs[:20]:
            model(x, n, w)
        t0 = time.perf_counter()
        for _ in range(repeat):
            for x, n, w in xs:
                model(x, n, w)
        return (time.perf_counter() - t0) / (repeat * len(xs)) * 1e6


def measure(ctx, host) -> HostSpeed:
    import torch

    passes: dict[str, list[float]] = {"torch": [], **{n: [] for n in host.exes}}
    torch.set_num_threads(1)
    for _ in range(SPEED_PASSES):
        passes["torch"].append(torch_batch1_us(ctx.run.model, ctx.ids_t, ctx.all_t))
        for name, path in host.exes.items():
            reps = device_replies(f"exec:{path}", host.texts, policy=("none", []))
            if any(isinstance(p, Exception) or strip_cost(p.line) != strip_cost(q.line) for p, q in zip(reps, host.full)):
                raise RuntimeError(f"the host emulator's {name} path answers differently from the default build")
            passes[name].append(statistics.mean(r.cost for r in reps) / 1e3)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    med = {k: statistics.median(v) for k, v in passes.items()}
    torch_us, host_us = med["torch"], med[list(host.exes)[-1]]
    log(f"host {host_us:.0f} us full depth vs PyTorch {torch_us:.0f} us")
    return HostSpeed(host_us_per_sentence=round(host_us, 2), pytorch_us_per_sentence=round(torch_us, 2),
                     host_speedup=round(torch_us / host_us, 2),
                     host_speedup_by_isa={n: round(torch_us / med[n], 2) for n in host.exes})
