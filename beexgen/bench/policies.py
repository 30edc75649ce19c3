"""Bench stage: every exit policy calibrated on validation (each with its default
options) and measured on test, beside the artifact's own (default) policy; writes the
run's exit-policy report (train/report.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from beexgen.bench.common import pct, wilson_pct


@dataclass
class PolicyResult:
    accuracy: float = 0.0                 # percentage on test
    wilson95: list[float] = field(default_factory=list)
    compute_saved: float = 0.0            # 1 - mean compute / full-depth compute
    thresholds: list[float] = field(default_factory=list)


@dataclass
class DefaultPolicy:
    name: str = ""
    thresholds: list[float] = field(default_factory=list)


@dataclass
class Policies:
    default_policy: DefaultPolicy = field(default_factory=DefaultPolicy)
    compute_saved_default_policy: float = 0.0
    exit_histogram: dict[str, int] = field(default_factory=dict)       # exit number e -> sentences
    policies: dict[str, PolicyResult] = field(default_factory=dict)    # each calibrated policy


def measure(ds: str, out: Path, ctx, budget: float = 0.3, names=None) -> Policies:
    """names: the policies to calibrate (default every registered one but none)."""
    from beexgen.train import policies, report

    cfg = ctx.art.config
    names = [n for n in policies.CALIBRATORS if n != "none"] if names is None else names
    pols = {"default": ctx.art.policy,
            **{name: policies.calibrate(name, ctx.res_v, ctx.y_v, ctx.len_v, cfg, budget=budget, unit="compute")
               for name in names}}
    ev = {name: policies.evaluate_policy(ctx.res_t, ctx.y_t, ctx.len_t, cfg, p["name"], p["thresholds"],
                                         n_ids=ctx.nid_t) for name, p in pols.items()}
    report.make_report(policies.Split.of(ctx.res_t, ctx.y_t, ctx.len_t), cfg,
                       {k: v for k, v in pols.items() if k != "default"}, out / ds / "report",
                       val=policies.Split.of(ctx.res_v, ctx.y_v, ctx.len_v), title=f"{ds} (beexgen bench)",
                       twin_acc=ctx.twin_exit_acc)
    d = ev["default"]
    n = len(ctx.y_t)
    return Policies(
        default_policy=DefaultPolicy(d["policy"], d["thresholds"]),
        compute_saved_default_policy=round(1 - d["ops_rel"], 4),
        exit_histogram={str(e): int(h) for e, h in d["exit_histogram"].items()},
        policies={name: PolicyResult(pct(r["accuracy"]), wilson_pct(r["accuracy"], n), round(1 - r["ops_rel"], 4),
                                     r["thresholds"]) for name, r in ev.items() if name != "default"})
