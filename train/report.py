"""Exit-policy report: Pareto curves, exit-depth histograms, per-exit accuracy,
overthinking counts (PNG, matplotlib Agg) and a markdown summary.

    make_report(test, cfg, policies, out_dir, val=None, ...)   test, val: policies.Split
        -> out_dir / "report.md" (+ pareto.png, depth_hist.png, exit_accuracy.png,
           overthinking.png)
    exit_weights_effect(runs, out_dir=None) -> {"table", "accuracy", "labels", "png"}

`policies` maps a display name to a policy dict ({"name": "entropy" | "confidence" |
"budget" | "patience" | "none", "thresholds": [...], optional "calibration"}); thresholds are
normally calibrated on the validation split (train/policies.py) and
everything here is measured on the test split with exits.decide, the firmware's rule.
Compute is ops (flops + bmacs/64, beexgen/core/cost.py) relative to full depth.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from . import policies as P

FILES = ("pareto.png", "depth_hist.png", "exit_accuracy.png", "overthinking.png")


def _fig(w=6.4, h=4.4) -> Figure:
    fig = Figure(figsize=(w, h), dpi=110)
    FigureCanvasAgg(fig)  # Agg, without touching pyplot's global backend
    return fig


def _save(fig: Figure, out: Path, name: str, figures: dict | None) -> None:
    fig.tight_layout()
    fig.savefig(out / name)
    if figures is not None:
        figures[name] = fig


def _fmt_thr(thr) -> str:
    out = []
    for t in thr:
        out.append("off" if t > 1.0 else f"{t:.4g}")
    return ", ".join(out) or "-"


def _accuracy_axis(ax, values, floor: float, label: str = "accuracy (test)") -> None:
    """An accuracy axis that does not zoom: from the majority-class accuracy (drawn as a
    dashed line; a model below it has learned nothing) or the lowest value, rounded down
    to a tenth, up to 1. A 1-point difference then looks like one."""
    lo = min([floor, *[v for v in values if v is not None]])
    ax.set_ylim(max(0.0, np.floor(lo * 10 - 1e-9) / 10), 1.0)
    ax.axhline(floor, ls=":", lw=1, color="gray", label=f"majority class ({floor:.3f})")
    ax.set_ylabel(label)


def _pareto(ax, fixed, curves, chosen, exits, twin: float | None = None):
    for name, pts in curves.items():
        pts = sorted(pts)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "-", lw=1.2, alpha=0.8, label=f"{name} (sweep)")
    for e, (c, a, _) in zip(exits, fixed):                        # fixed: one point per exit number e
        full = e == exits[-1]
        ax.plot([c], [a], "D" if full else "s", color="crimson" if full else "black", ms=7 if full else 5,
                label="full depth" if full else ("fixed exit" if e == exits[0] else None), zorder=4)
        ax.annotate("full" if full else f"exit {e}", (c, a), textcoords="offset points", xytext=(4, -10), fontsize=7)
    for k, (name, (c, a, _)) in enumerate(chosen.items()):
        ax.plot([c], [a], "*", ms=15, mec="black", color=f"C{k}", label=f"{name} (chosen)", zorder=5)
    if twin is not None:
        ax.plot([1.0], [twin], "o", mfc="none", mec="crimson", ms=9, label="float32 twin, full depth", zorder=4)
    ax.set_xlim(0.0, 1.05)
    ax.set_xlabel("mean compute / full depth (ops = flops + bmacs/64)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")


def make_report(test: P.Split, cfg, policies: dict, out_dir, *, val: P.Split | None = None, title: str = "",
                twin_acc: list[float] | None = None, figures: dict | None = None) -> Path:
    """Write the policy comparison on the test split to out_dir; return report.md's path.

    (a) pareto.png: accuracy vs mean compute for each policy over its threshold family
        (policies.threshold_family: tau for entropy; thresholds scaled toward 1 / 0
        through the chosen point for per-exit policies), every fixed-exit point, the
        full-depth point, and each chosen operating point (star);
    (b) depth_hist.png: fraction of sentences leaving at each depth, per policy;
    (c) exit_accuracy.png: accuracy of each exit (test, and validation when given);
    (d) overthinking.png: per exit b < B, sentences right at b but wrong at the last
        exit, and wrong at b but right at the last.
    twin_acc: the full-precision twin's accuracy of each exit (test), drawn beside.
    figures: a dict to receive the four matplotlib Figures by file name (tests read them).
    Accuracy axes run from the majority-class accuracy (or lower) to 1; exits are
    numbered as everywhere else (0 is the wide exit).
    report.md: per-policy table (accuracy, mean depth, compute reduction vs full depth,
    thresholds; validation columns when `val` is given - compute there needs its
    lengths), fixed exits, overthinking counts, and for confidence policies the
    harm rate of each exit's leavers on test next to the calibrated tolerance.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    res_test, labels_test, lengths_test = test.res, np.asarray(test.labels), test.lengths
    res_val, labels_val, lengths_val = (val.res, val.labels, val.lengths) if val is not None else (None, None, None)
    N, n_exits = res_test.conf.shape        # one column per exit
    exits = np.asarray(res_test.exits)      # the exit number e of each column (= blocks run)
    e0 = int(exits[0])
    n_blocks = int(exits[-1])
    majority = float(np.bincount(labels_test).max() / max(1, N))
    label = f"{title}: " if title else ""
    fixed = P.fixed_exit_points(res_test, labels_test, lengths_test, cfg)
    full_c, full_a, _ = fixed[-1]
    evals, curves, chosen = {}, {}, {}
    for name, pol in policies.items():
        ev = P.evaluate_policy(res_test, labels_test, lengths_test, cfg, pol)
        evals[name] = ev
        chosen[name] = (ev["ops_rel"], ev["accuracy"], ev["mean_depth"])
        curves[name] = P.policy_curve(res_test, labels_test, lengths_test, cfg, pol["name"],
                                      P.threshold_family(pol, n_exits))
    val = {}
    if res_val is not None and labels_val is not None:
        lv = lengths_val if lengths_val is not None else np.ones(len(labels_val), dtype=np.int64)
        for name, pol in policies.items():
            ev = P.evaluate_policy(res_val, labels_val, lv, cfg, pol)
            if lengths_val is None:
                ev["ops_rel"] = None
            val[name] = ev

    # (a) Pareto
    fig = _fig(7.2, 5.0)
    ax = fig.add_subplot(111)
    _pareto(ax, fixed, curves, chosen, exits, twin_acc[-1] if twin_acc else None)
    _accuracy_axis(ax, [a for _, a, _ in fixed] + [a for pts in curves.values() for _, a, _ in pts], majority)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(f"{label}accuracy vs compute (test)")
    _save(fig, out, "pareto.png", figures)

    # (b) depth histograms
    fig = _fig()
    ax = fig.add_subplot(111)
    names = list(policies)
    w = 0.8 / max(1, len(names))
    for k, name in enumerate(names):
        h = np.asarray(evals[name]["depth_hist"], dtype=float) / N
        ax.bar(exits + (k - (len(names) - 1) / 2) * w, h, width=w, label=name)
    ax.set_xticks(exits)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("exit taken (= blocks run; 0: the wide exit, no block)" if e0 == 0 else "exit taken (= blocks run)")
    ax.set_ylabel("fraction of test sentences")
    ax.set_title(f"{label}where sentences leave, per policy")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, out, "depth_hist.png", figures)

    # (c) accuracy of each exit
    acc_t = (res_test.cls == labels_test[:, None]).mean(0)
    fig = _fig()
    ax = fig.add_subplot(111)
    x = exits
    ax.plot(x, acc_t, "o-", label="test")
    acc_v = None
    if res_val is not None and labels_val is not None:
        acc_v = (res_val.cls == np.asarray(labels_val)[:, None]).mean(0)
        ax.plot(x, acc_v, "s--", label="validation")
    if twin_acc is not None and len(twin_acc) == n_exits:
        ax.plot(x, twin_acc, "^-.", color="crimson", label="float32 twin (test)")
    ax.set_xticks(x)
    ax.set_xlabel("exit")
    _accuracy_axis(ax, [*acc_t, *(acc_v if acc_v is not None else []), *(twin_acc or [])], majority, "accuracy")
    ax.set_title(f"{label}accuracy of each exit")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, out, "exit_accuracy.png", figures)

    # (d) overthinking
    r_w, w_r = P.overthinking_counts(res_test, labels_test)
    fig = _fig()
    ax = fig.add_subplot(111)
    xe = exits[:-1]
    ax.bar(xe - 0.2, r_w[:-1], width=0.4, label="right here, wrong at the last exit (overthinking)")
    ax.bar(xe + 0.2, w_r[:-1], width=0.4, label="wrong here, right at the last exit")
    ax.set_xticks(xe if n_exits > 1 else [])
    ax.set_xlabel("exit")
    ax.set_ylabel("test sentences")
    ax.set_ylim(0, max(1, int(max([*r_w[:-1], *w_r[:-1], 0]) * 1.15) + 1))
    ax.set_title(f"{label}overthinking: earlier exits against the last")
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, out, "overthinking.png", figures)

    # report.md
    L = [f"# {title or 'Exit policies'}", "",
         f"Test sentences: {N}; exits: {n_exits}. Compute is ops (flops + bmacs/64, beexgen/core/cost.py) "
         "relative to running every block on the same sentences; depths follow exits.decide "
         "(the firmware's rule) with float32 thresholds.", "",
         "## Policies (test split)", ""]
    head = "| policy | rule | thresholds | accuracy | Δ acc vs full | mean depth | depth reduction | compute | compute reduction |"
    sep = "|---|---|---|---|---|---|---|---|---|"
    if val:
        head += " val accuracy | val mean depth | val compute |"
        sep += "---|---|---|"
    L += [head, sep]
    L.append(f"| full depth | none | - | {full_a:.4f} | +0.0000 | {n_blocks:.3f} | 0.0 % | 1.000 | 0.0 % |"
             + (" | | |" if val else ""))
    for name, pol in policies.items():
        ev = evals[name]
        row = (f"| {name} | {pol['name']} | {_fmt_thr(ev['thresholds'])} | {ev['accuracy']:.4f} | "
               f"{ev['accuracy'] - full_a:+.4f} | {ev['mean_depth']:.3f} | {(1 - ev['mean_depth'] / n_blocks) * 100:.1f} % | "
               f"{ev['ops_rel']:.3f} | {(1 - ev['ops_rel']) * 100:.1f} % |")
        if val:
            v = val[name]
            vc = "-" if v["ops_rel"] is None else f"{v['ops_rel']:.3f}"
            row += f" {v['accuracy']:.4f} | {v['mean_depth']:.3f} | {vc} |"
        L.append(row)
    L += ["", "Sentences leaving at each depth (test):", "",
          "| policy | " + " | ".join(str(b) for b in exits) + " |",
          "|---|" + "---|" * n_exits]
    for name in policies:
        L.append(f"| {name} | " + " | ".join(str(h) for h in evals[name]["depth_hist"]) + " |")

    L += ["", "## Fixed exits (test)", "",
          "| exit | accuracy | compute | right here & wrong at last | wrong here & right at last |",
          "|---|---|---|---|---|"]
    for k, (c, a, _) in enumerate(fixed):
        L.append(f"| {exits[k]} | {a:.4f} | {c:.3f} | {int(r_w[k])} | {int(w_r[k])} |")
    if acc_v is not None:
        L += ["", "Validation accuracy of each exit: " + ", ".join(f"{a:.4f}" for a in acc_v)]
    L += ["", f"Overthinking (right at an early exit, wrong at the last), summed over early exits: "
          f"{int(r_w[:-1].sum())}; the reverse: {int(w_r[:-1].sum())}. A sentence counts once per exit.", ""]

    cal = {n: p.get("calibration") or p.get("info") or {} for n, p in policies.items()}   # "info": older meta.json
    conf_pols = {n: p for n, p in policies.items() if p["name"] == "confidence" and "criterion" in cal[n]}
    if conf_pols:
        L += ["## Confidence policies: the calibrated bound, checked on test", ""]
        for name, pol in conf_pols.items():
            info = cal[name]
            tol, crit = info.get("tolerance"), info.get("criterion", "error")
            L += [f"**{name}**: criterion `{crit}`, tolerance {tol}, delta {info.get('delta')} "
                  f"(per exit {info.get('delta_per_exit'):.4g}), calibration sentences {info.get('split_size')}.", "",
                  "| exit | threshold | test leavers | test harm rate | within tolerance |", "|---|---|---|---|---|"]
            depth = evals[name]["depth"]
            cls = res_test.cls
            for k, e in enumerate(exits[:-1]):          # column k holds exit e
                m = depth == e
                if crit == "error":
                    harm = (cls[m, k] != labels_test[m]) & (cls[m, -1] == labels_test[m])
                else:
                    harm = cls[m, k] != cls[m, -1]
                rate = float(harm.mean()) if m.any() else 0.0
                L.append(f"| {e} | {_fmt_thr([pol['thresholds'][k]])} | {int(m.sum())} | {rate:.4f} | "
                         f"{'yes' if rate <= tol else 'no'} |")
            L.append("")
    bud = {n: p for n, p in policies.items() if p["name"] == "budget" and "scheme" in cal[n]}
    if bud:
        L += ["## Budget policies", ""]
        for name, pol in bud.items():
            i = cal[name]
            L.append(f"- **{name}**: budget {i['budget']} ({i['unit']}), calibration compute {i['compute']:.4f}, "
                     f"scheme `{i['scheme']}`" + (f" (mu {i['mu']}, lam {i['lam']:.4g})" if i.get("mu") is not None else "")
                     + f"; test: {evals[name]['mean_depth'] / n_blocks:.4f} of full depth, {evals[name]['ops_rel']:.4f} of full ops.")
        L.append("")
    L += ["## Figures", "",
          "![accuracy vs compute](pareto.png)", "",
          "![exit depth histogram](depth_hist.png)", "",
          "![accuracy of each exit](exit_accuracy.png)", "",
          "![overthinking](overthinking.png)", ""]
    path = out / "report.md"
    path.write_text("\n".join(L))
    return path


def exit_weights_effect(runs, out_dir=None, *, name: str = "exit_weights") -> dict:
    """Accuracy of each exit per soft-routing loss-weight setting.

    runs: [(label, DeployResult, labels)], e.g. one run per weight setting of the
    soft-routing loss. Returns {"labels", "accuracy" (R, B) array, "table" (markdown),
    "png" (path or None)}; with out_dir, writes out_dir/<name>.png and <name>.md."""
    labs = [r[0] for r in runs]
    acc = np.array([(res.cls == np.asarray(y)[:, None]).mean(0) for _, res, y in runs])
    n_exits = acc.shape[1] if acc.size else 0
    exits = runs[0][1].exits if runs else []
    lines = ["| weights | " + " | ".join(f"exit {b}" for b in exits) + " | mean |",
             "|---|" + "---|" * (n_exits + 1)]
    for lab, a in zip(labs, acc):
        lines.append(f"| {lab} | " + " | ".join(f"{x:.4f}" for x in a) + f" | {a.mean():.4f} |")
    table = "\n".join(lines) + "\n"
    png = None
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        fig = _fig()
        ax = fig.add_subplot(111)
        for lab, a in zip(labs, acc):
            ax.plot(exits, a, "o-", label=str(lab))
        ax.set_xticks(exits)
        ax.set_xlabel("exit")
        ax.set_ylabel("accuracy")
        ax.set_title("accuracy of each exit per soft-routing weight setting")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        png = out / f"{name}.png"
        fig.savefig(png)
        (out / f"{name}.md").write_text(table + f"\n![accuracy of each exit]({name}.png)\n")
    return {"labels": labs, "accuracy": acc, "table": table, "png": png}
