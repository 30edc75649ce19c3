"""Exit-policy calibration (train/policies.py) and the report
(train/report.py) on synthetic per-exit logits whose right answer is known."""
import json

import numpy as np
import pytest
import torch

from beexgen.core.artifact import Policy
from beexgen.train import policies as P, report
from beexgen.train.deploy import DeployResult
from beexgen.train.exits import decide, exit_stats

CFG = dict(d_model=64, n_heads=2, d_ff=128, n_blocks=3, seq_max=64, n_classes=4, slfn=True)


def S(res, y, lengths=None) -> P.Split:
    """A split of synthetic exits (lengths only matter for compute: 10 by default)."""
    return P.Split.of(res, y, np.full(len(y), 10) if lengths is None else lengths)


def synth(n, seed, *, C=4, cuts=(0.9, 0.8), lo=0.3):
    """B = len(cuts) + 1 exits. Early exit b has confidence ~ U(lo, 1): its class is the
    label when conf >= cuts[b] and a uniformly random class below (right 1/C of the time).
    The last exit is always right (conf 0.99). Logits are built so that the float32
    softmax maximum is the drawn confidence (to rounding)."""
    rng = np.random.default_rng(seed)
    B = len(cuts) + 1
    y = rng.integers(0, C, n)
    logits = np.zeros((n, B, C), np.float32)
    for b in range(B):
        if b == B - 1:
            p, pred = np.full(n, 0.99), y
        else:
            p = rng.uniform(lo, 1.0, n)
            pred = np.where(p >= cuts[b], y, rng.integers(0, C, n))
        lg = np.repeat(np.log((1 - p) / (C - 1))[:, None], C, 1)
        lg[np.arange(n), pred] = np.log(p)
        logits[:, b] = lg
    cls, conf, ent = exit_stats(torch.from_numpy(logits))
    return DeployResult(logits, cls, conf, ent), y, rng.integers(4, CFG["seq_max"] + 1, n)


@pytest.fixture(scope="module")
def cal():
    return synth(20000, 0)


@pytest.fixture(scope="module")
def conf_policy(cal):
    res, y, _ = cal
    return P.fit_confidence(S(res, y), CFG, tolerance=0.01, delta=0.05).to_dict()


def test_confidence_threshold_finds_the_accuracy_cliff(cal, conf_policy):
    res, y, _ = cal
    t = conf_policy["thresholds"]
    assert len(t) == 2
    # exit 1 is exact above 0.9, exit 2 above 0.8: the bound allows only a sliver below
    assert 0.895 <= t[0] <= 0.9 and 0.795 <= t[1] <= 0.8
    for ex in conf_policy["calibration"]["per_exit"]:
        assert ex["bound"] <= 0.01
    json.dumps(conf_policy)  # storable in the artifact's meta.json


def test_confidence_bound_holds_on_a_fresh_sample(conf_policy):
    res, y, _ = synth(20000, 1)
    depth = decide(Policy.CONFIDENCE, conf_policy["thresholds"], res.conf, res.entropy)
    for b in range(2):
        m = depth == b + 1
        assert m.sum() > 1000
        harm = (res.cls[m, b] != y[m]) & (res.cls[m, -1] == y[m])
        assert harm.mean() <= 0.01
    early = depth < 3
    acc_early = (res.cls[np.arange(len(y)), depth - 1] == y)[early].mean()
    assert acc_early >= (res.cls[early, -1] == y[early]).mean() - 0.01


def test_thresholds_are_float32(cal, conf_policy):
    res, y, L = cal
    bud = P.fit_budget(S(res, y, L), CFG, budget=0.6).to_dict()
    for t in conf_policy["thresholds"] + bud["thresholds"]:
        assert isinstance(t, float) and t == float(np.float32(t))
    json.dumps(bud)


def test_lower_tolerance_never_lowers_thresholds(cal):
    res, y, _ = cal
    prev = None
    for tol in (0.05, 0.02, 0.01, 0.005, 0.002):
        t = np.array(P.fit_confidence(S(res, y), CFG, tolerance=tol).thresholds)
        if prev is not None:
            assert (t >= prev).all(), (tol, t, prev)
        prev = t
    # the label-free criterion bounds more than the error criterion: never more aggressive
    d = np.array(P.fit_confidence(S(res, y), CFG, tolerance=0.01, criterion="disagreement").thresholds)
    e = np.array(P.fit_confidence(S(res, y), CFG, tolerance=0.01).thresholds)
    assert (d >= e).all()


def test_useless_exit_is_disabled():
    res, y, _ = synth(5000, 2, cuts=(1.01, 0.8))  # exit 1 is random everywhere
    t = P.fit_confidence(S(res, y), CFG).thresholds
    assert t[0] == P.NEVER > 1.0 and 0.79 <= t[1] <= 0.8
    assert (decide(Policy.CONFIDENCE, t, res.conf, res.entropy) != 1).all()


@pytest.mark.parametrize("unit", ["depth", "compute"])
def test_budget_is_met_within_two_percent(unit):
    res, y, L = synth(4000, 3)
    ops = P.ops_table(CFG, L)
    for budget in (0.4, 0.6, 0.8):
        pol = P.fit_budget(S(res, y, L), CFG, budget=budget, unit=unit)
        depth = decide(Policy.BUDGET, pol.thresholds, res.conf, res.entropy)
        got = depth.mean() / 3 if unit == "depth" else P.compute_fraction(ops, res.column(depth))
        assert budget * 0.98 <= got <= budget + 1e-9, (budget, got)
        assert pol.calibration["budget_met"] and abs(pol.calibration["compute"] - got) < 1e-12
        # a budget-matched policy beats leaving at a fixed mix of exits: better than exit 1 alone
        assert pol.calibration["accuracy"] > (res.cls[:, 0] == y).mean()
    with pytest.raises(ValueError):
        P.fit_budget(S(res, y, L), CFG, budget=0.2, unit=unit)


def test_entropy_calibration_picks_the_known_best_tau():
    # half "A": entropy 1 -> .5 -> .45 -> .1 (reductions .5, .1, .78): exit 3 is right and
    #   the last exit overthinks (wrong), exit 2 is wrong; exits at 3 iff 0.1 < tau <= 0.5.
    # half "B": entropy 1 -> .9 -> .3 -> .1 (reductions .1, .67, .67): right from exit 2 on;
    #   exits at 2 iff tau > 0.1. So every tau in (0.1, 0.5] is right on all sentences.
    n = 400
    ent = np.array([[1.0, 0.5, 0.45, 0.1]] * (n // 2) + [[1.0, 0.9, 0.3, 0.1]] * (n // 2), np.float32)
    y = np.zeros(n, dtype=np.int64)
    cls = np.zeros((n, 4), dtype=np.int64)
    cls[: n // 2, 1] = 1
    cls[: n // 2, 3] = 1
    cls[n // 2:, 0] = 1
    res = DeployResult(np.zeros((n, 4, 2), np.float32), cls, np.full((n, 4), 0.6, np.float32), ent)
    cfg = dict(CFG, n_blocks=4)
    pol = P.fit_entropy(S(res, y, np.full(n, 10)), cfg)
    tau = pol.thresholds[0]
    assert 0.1 <= tau <= 0.5 and pol.calibration["accuracy"] == 1.0
    assert tau == float(np.float32(tau))
    depth = decide(Policy.ENTROPY, [tau], res.conf, res.entropy)
    assert (depth[: n // 2] == 3).all() and (depth[n // 2:] == 2).all()


def test_curves_and_fixed_points(cal):
    res, y, L = cal
    fixed = P.fixed_exit_points(res, y, L, CFG)
    assert len(fixed) == 3 and fixed[-1][0] == pytest.approx(1.0) and fixed[-1][1] == 1.0
    assert [f[2] for f in fixed] == [1, 2, 3]
    assert fixed[0][0] < fixed[1][0] < fixed[2][0]
    curve = P.policy_curve(res, y, L, CFG, "confidence", [0.0, 0.5, [0.9, 0.8], P.NEVER])
    assert curve[0][2] == 1.0 and curve[-1] == pytest.approx(fixed[-1])
    assert curve[0][0] <= curve[1][0] <= curve[2][0] <= curve[3][0]
    ent = P.policy_curve(res, y, L, CFG, Policy.ENTROPY, [0.1, 0.3])
    assert len(ent) == 2 and all(2 <= p[2] <= 3 for p in ent)


def test_report_writes_figures_and_table(tmp_path, cal, conf_policy):
    res_v, y_v, L_v = cal
    res, y, L = synth(3000, 4)
    pols = {
        "entropy": P.fit_entropy(S(res_v, y_v, L_v), CFG).to_dict(),
        "confidence": conf_policy,
        "budget-0.6": P.fit_budget(S(res_v, y_v, L_v), CFG, budget=0.6).to_dict(),
        "patience": P.calibrate("patience", res_v, y_v, L_v, CFG),
        "none": {"name": "none", "thresholds": []},
    }
    assert {p["name"] for p in pols.values()} == set(P.CALIBRATORS)   # every policy there is
    figs = {}
    twin = [0.7, 0.8, 0.9]
    md = report.make_report(S(res, y, L), CFG, pols, tmp_path / "rep", val=S(res_v, y_v, L_v),
                            title="synthetic", twin_acc=twin, figures=figs)
    assert md == tmp_path / "rep" / "report.md"
    # every plot has a title; accuracy axes run from the majority class (or lower) to 1,
    # never zoomed onto the data; the twin is drawn beside the model
    majority = np.bincount(y).max() / len(y)
    for f in report.FILES:
        ax = figs[f].axes[0]
        assert ax.get_title().startswith("synthetic: "), f
    for f in ("pareto.png", "exit_accuracy.png"):
        lo, hi = figs[f].axes[0].get_ylim()
        assert hi == 1.0 and lo <= majority and lo == round(lo, 1), (f, lo, hi)
        labels = [l.get_label() for l in figs[f].axes[0].get_lines()]
        assert any("twin" in l for l in labels) and any("majority class" in l for l in labels), labels
    acc_line = [l for l in figs["exit_accuracy.png"].axes[0].get_lines() if "twin" in l.get_label()][0]
    assert list(acc_line.get_ydata()) == twin
    # exits are numbered as the firmware numbers them (from 1 here: no wide exit)
    assert list(figs["exit_accuracy.png"].axes[0].get_xticks()) == [1, 2, 3]
    for f in report.FILES:
        p = tmp_path / "rep" / f
        assert p.stat().st_size > 1000 and p.read_bytes()[:4] == b"\x89PNG"
        assert f"({f})" in md.read_text()
    text = md.read_text()
    for name in pols:
        assert f"| {name} |" in text
    assert "right here & wrong at last" in text and "within tolerance" in text

    eff = report.exit_weights_effect([("w=uniform", res, y), ("w=deep", res_v, y_v)], tmp_path / "w")
    assert eff["accuracy"].shape == (2, 3) and "| w=deep |" in eff["table"]
    assert eff["png"].stat().st_size > 1000


def test_report_numbers_exits_from_zero_with_a_wide_exit(tmp_path):
    """With a wide exit, exit numbers (= blocks run) start at 0: the report's tables and
    axes count leavers at the exit they took, and depth is relative to the blocks."""
    import dataclasses
    res, y, L = synth(2000, 7)
    wide = dataclasses.replace(res, first_exit=0)
    cfg = dict(CFG, wide=True, n_blocks=2, bigram_buckets=256)
    res_v, y_v, L_v = synth(3000, 8)
    pol = P.fit_confidence(S(dataclasses.replace(res_v, first_exit=0), y_v, L_v), cfg, tolerance=0.02,
                           delta=0.1).to_dict()
    figs = {}
    md = report.make_report(S(wide, y, L), cfg, {"confidence": pol}, tmp_path / "rep", title="wide", figures=figs)
    ev = P.evaluate_policy(wide, y, L, cfg, pol)
    text = md.read_text()
    assert "| policy | 0 | 1 | 2 |" in text
    for b in range(2):   # the confidence table's leavers at exit b are those that took exit b
        assert f"| {b} | " in text.split("the calibrated bound")[1]
        leavers = int((ev["depth"] == b).sum())
        assert any(line.startswith(f"| {b} |") and f"| {leavers} |" in line
                   for line in text.split("the calibrated bound")[1].splitlines()), (b, leavers)
    assert list(figs["depth_hist.png"].axes[0].get_xticks()) == [0, 1, 2]


def test_patience_calibration_takes_the_smallest_patience_within_tolerance():
    res, y, L = synth(3000, 11)
    pol = P.calibrate("patience", res, y, L, CFG, tolerance=0.02)
    sweep = pol["calibration"]["sweep"]
    last = float((res.cls[:, -1] == y).mean())
    t = pol["thresholds"][0]
    assert [r[0] for r in sweep] == [0.0, 1.0, 2.0]
    assert sweep[int(t)][1] >= last - 0.02 and all(r[1] < last - 0.02 for r in sweep[:int(t)])
    assert P.evaluate_policy(res, y, L, CFG, pol)["accuracy"] == sweep[int(t)][1]


def test_a_wide_exit_model_names_its_exits_alike_in_meta_report_and_bench_json(trained, tmp_path):
    """One notion of exit, the exit number e (0 = the wide exit, then 1 .. n_blocks): the
    calibration in meta.json, the eval report, the policy report and the bench's JSON of a
    wide-exit model (the test session's trec6 run) all use it."""
    import json
    from types import SimpleNamespace

    from beexgen.bench import accuracy as bench_acc, policies as bench_pol
    from beexgen.bench.record import DatasetBench
    from beexgen.core import artifact
    from beexgen.train import deploy, evaluate
    from beexgen.train.trainer import load_run

    run_dir = trained("trec6")
    meta = json.loads((run_dir / "artifact" / "meta.json").read_text())
    cfg = meta["config"]
    assert cfg["wide"] and meta["exit_policy"]["name"] == "confidence"
    exits = list(range(0, cfg["n_blocks"] + 1))
    assert [x["exit"] for x in meta["exit_policy"]["calibration"]["per_exit"]] == exits[:-1]

    art, run = artifact.load(run_dir / "artifact"), load_run(run_dir)
    ids_t, y_t, _ = run.part("test")
    ids_v, y_v, _ = run.part("val")
    dm = deploy.DeployModel(art)
    res_t, res_v = deploy.run(dm, ids_t, run.all_part("test")), deploy.run(dm, ids_v, run.all_part("val"))
    assert res_t.exits == exits
    rep = evaluate.evaluate(art, ids_t, y_t, res=res_t, all_ids=run.all_part("test"))
    assert rep["exits"] == exits
    assert "| exit | 0 (wide) | " + " | ".join(map(str, exits[1:])) + " |" in evaluate.format_report(rep)

    ctx = SimpleNamespace(art=art, res_t=res_t, y_t=y_t, len_t=np.array([len(s) for s in ids_t]),
                          nid_t=np.array([len(a) for a in run.all_part("test")]), res_v=res_v, y_v=y_v,
                          len_v=np.array([len(s) for s in ids_v]), twin_exit_acc=None, report=rep)
    d = DatasetBench()
    d.policies = bench_pol.measure("trec6", tmp_path, ctx, names=["confidence"])   # the others: test_e2e, the bench
    d.accuracy.accuracy_by_exit = bench_acc.by_exit(rep)
    doc = d.to_json()
    assert list(doc["exit_histogram"]) == list(doc["accuracy_by_exit"]) == [str(e) for e in exits]
    assert list(doc["exit_histogram"].values()) == rep["depth_hist"]
    text = (tmp_path / "trec6" / "report" / "report.md").read_text()
    table = text.split("the calibrated bound")[1].split("\n\n")[2].splitlines()[2:]
    assert [int(line.split("|")[1]) for line in table] == exits[:-1], table
