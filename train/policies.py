"""Calibration of the exit policies (ENTROPY, CONFIDENCE, BUDGET), and accuracy/compute curves.

All calibration looks at the validation split only, never the test split.

ENTROPY (the paper's rule): one threshold tau on the fractional entropy reduction.
    Candidates are the observed reductions (every distinct decision) plus 0 and 1.
    The choice maximises validation accuracy, subject to an optional compute ceiling
    (mean ops relative to full depth); among thresholds whose accuracy is within
    `tolerance` of that maximum, the cheapest is taken.

Every depth in this module comes from `exits.decide`, the rule the C firmware runs
(exit after block b < B when conf_b >= t_b; the last block always exits), applied to
float32 confidences with float32 thresholds. Returned thresholds are Python floats
holding float32 values exactly (`float(np.float32(t))`), so what was calibrated is
what the C compares against. `NEVER` (the float32 just above 1) disables an exit:
the softmax maximum computed in float32 never exceeds 1 (its largest term is
exp(0) = 1 and the sum is >= 1).

Sources: "LAMA" in this project's notes is Valade, "Accelerating Large Language Model
Inference with Self-Supervised Early Exits" (arXiv 2407.21082): exit heads whose
confidence threshold is set on a calibration set so that a desired accuracy level is
kept. EERO is Valade, Hebiri, Gay, "EERO: Early Exit with Reject Option for Efficient
Classification with limited budget" (UAI 2025, PMLR 286; arXiv 2402.03779): each head
is a classifier with a reject option; exit probabilities are calibrated with
exponential weights that account for each head's risk and cost so that a fixed budget
is met. Only the abstracts of both papers were available here, so the procedures
below are this project's precise versions of those ideas, described in full in each
function's docstring (the finite-sample bound of `fit_confidence` goes beyond
LAMA's average-accuracy criterion).

Compute: "compute fraction" is ops (flops + bmacs/64, beexgen/core/cost.py) summed over the
sentences relative to running every block on the same sentences, as in `beexgen eval`.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from beexgen.core import cost
from beexgen.core.artifact import Policy

from beexgen.core.policy import POLICY_OPTIONS, SUMMARY, CalibrationError  # noqa: F401  (re-exported)
from .exits import decide, n_thresholds

NEVER = float(np.nextafter(np.float32(1.0), np.float32(2.0)))  # 1.0000001: this exit is never taken


@dataclass(frozen=True)
class Split:
    """What a calibrator or a report reads of one split (validation to calibrate, test
    to measure): res, a deploy.DeployResult (every exit's logits, classes, confidences,
    entropies; res.exits their exit numbers), the labels, and the block input lengths
    (compute depends on them); n_ids: whole-line id counts (default lengths - 1)."""
    res: object
    labels: np.ndarray
    lengths: np.ndarray
    n_ids: np.ndarray | None = None

    @classmethod
    def of(cls, res, labels, lengths, n_ids=None) -> "Split":
        return cls(res, np.asarray(labels), np.asarray(lengths), None if n_ids is None else np.asarray(n_ids))


@dataclass
class PolicyFit:
    """A calibrated policy: its name, float32 thresholds and what its calibrator measured
    on the split (`calibration`, written into meta.json with the policy)."""
    name: str
    thresholds: list[float]
    calibration: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The policy as meta.json's exit_policy holds it."""
        return {"name": self.name, "thresholds": list(self.thresholds), "calibration": self.calibration}


def f32(x) -> float:
    """The float32 value of x, as a Python float (exactly representable)."""
    return float(np.float32(x))


def _policy(p) -> Policy:
    if isinstance(p, dict):
        p = p["name"]
    if isinstance(p, str):
        return Policy[p.upper()]
    return Policy(int(p))


# --------------------------------------------------------------------------- compute

def ops_table(cfg: dict, lengths, n_ids=None) -> np.ndarray:
    """ops (flops + bmacs/64) of each sentence at each exit: (N, E) float64, column k =
    exit first_exit + k. lengths: block input lengths; n_ids: whole-line id counts
    (default lengths - 1)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    n_ids = lengths - 1 if n_ids is None else np.asarray(n_ids, dtype=np.int64)
    pairs = np.stack([lengths, n_ids], axis=1)
    uniq, inv = np.unique(pairs, axis=0, return_inverse=True)
    exits = cost.exits(cfg)
    tab = np.array([[cost.ops(*cost.sentence_cost(cfg, int(n), e, int(k))) for e in exits]
                    for n, k in uniq], dtype=np.float64).reshape(len(uniq), len(exits))
    return tab[inv.reshape(-1)]


def compute_fraction(ops: np.ndarray, cols: np.ndarray) -> float:
    """Sum of ops at the exits taken (their tensor columns, DeployResult.column) / sum of
    ops at full depth."""
    rows = np.arange(len(cols))
    return float(ops[rows, np.asarray(cols)].sum() / ops[:, -1].sum())


def _accuracy(res, labels, depth) -> float:
    pred = res.at_exit(np.asarray(depth))[0]
    return float((pred == np.asarray(labels)).mean())


def point(res, labels, ops: np.ndarray, depth: np.ndarray) -> tuple[float, float, float]:
    """(compute fraction, accuracy, mean depth) of one assignment of exit numbers."""
    return compute_fraction(ops, res.column(depth)), _accuracy(res, labels, depth), float(np.mean(depth))


def evaluate_policy(res, labels, lengths, cfg, policy, thresholds=None, n_ids=None) -> dict:
    """Accuracy, mean depth, compute fraction and depth histogram of one policy.

    `policy` is a Policy, its name, or a policy dict (then `thresholds` defaults to
    the dict's)."""
    if thresholds is None:
        thresholds = policy["thresholds"] if isinstance(policy, dict) else []
    pol = _policy(policy)
    depth = res.depth(pol, thresholds)
    ops = ops_table(cfg, lengths, n_ids)
    comp, acc, mdepth = point(res, labels, ops, depth)
    hist = {e: int((depth == e).sum()) for e in res.exits}      # exit number -> sentences leaving there
    return {"policy": pol.name.lower(), "thresholds": [f32(t) for t in np.ravel(thresholds)],
            "accuracy": acc, "mean_depth": mdepth, "depth_frac": mdepth / cfg["n_blocks"], "ops_rel": comp,
            "first_exit": int(res.first_exit), "depth_hist": list(hist.values()), "exit_histogram": hist,
            "depth": depth}


# --------------------------------------------------------------------------- curves

def fixed_exit_points(res, labels, lengths, cfg) -> list[tuple[float, float, float]]:
    """(compute fraction, accuracy, depth) when every sentence leaves at exit e, for each
    exit e = first_exit .. n_blocks. The last entry is the full-depth point."""
    ops = ops_table(cfg, lengths)
    N = res.conf.shape[0]
    return [point(res, labels, ops, np.full(N, e, dtype=np.int64)) for e in res.exits]


def policy_curve(res, labels, lengths, cfg, policy, thresholds_grid) -> list[tuple[float, float, float]]:
    """(mean compute fraction, accuracy, mean depth) for each entry of thresholds_grid.

    An entry is a full threshold vector for the policy, or a scalar that is repeated
    for every threshold the policy takes (one for ENTROPY, B-1 for CONFIDENCE/BUDGET).
    Depths come from exits.decide with float32 thresholds."""
    pol = _policy(policy)
    ops = ops_table(cfg, lengths)
    n_thr = n_thresholds(pol, res.conf.shape[1])
    out = []
    for thr in thresholds_grid:
        thr = np.full(n_thr, thr, dtype=np.float32) if np.ndim(thr) == 0 else np.asarray(thr, np.float32)
        out.append(point(res, labels, ops, res.depth(pol, thr)))
    return out


def threshold_family(policy: dict, n_exits: int, n: int = 41) -> list:
    """A one-parameter family of thresholds through a calibrated policy, for its curve
    (each policy's own: the `family` of its CALIBRATORS entry)."""
    thr = np.asarray(policy.get("thresholds", []), dtype=np.float64)
    return CALIBRATORS[_policy(policy).name.lower()].family(thr, n_exits, n)


def _family_none(thr: np.ndarray, n_exits: int, n: int) -> list:
    return [[]]


def _family_entropy(thr: np.ndarray, n_exits: int, n: int) -> list:
    """tau on a grid over [-0.25, 1] plus the chosen tau."""
    return [[f32(t)] for t in np.unique(np.concatenate([np.linspace(-0.25, 1.0, n), thr]))]


def _family_patience(thr: np.ndarray, n_exits: int, n: int) -> list:
    """Every patience there is: 0 .. n_exits - 1."""
    return [[float(t)] for t in range(n_exits)]


def _family_per_exit(thr: np.ndarray, n_exits: int, n: int) -> list:
    """CONFIDENCE/BUDGET: t_k(a) = 1 - a (1 - t_k*) for a in [0, a_max] (a = 1 is the
    chosen point, a = 0 puts every threshold at 1, a_max brings the lowest threshold to
    0); disabled exits (t* > 1) stay disabled. Without any enabled exit, a shared
    threshold over [0, 1] is swept instead."""
    live = thr < 1.0
    if thr.size != n_exits - 1 or not live.any():
        return [[f32(t)] * (n_exits - 1) for t in np.concatenate([np.linspace(0, 1, n), [NEVER]])]
    a_max = 1.0 / max(1e-6, 1.0 - thr[live].min())
    fam = []
    for a in np.unique(np.concatenate([np.linspace(0, a_max, n), [1.0]])):
        t = np.where(live, np.clip(1.0 - a * (1.0 - thr), 0.0, 1.0), thr)
        fam.append([f32(x) for x in t])
    return fam


def overthinking_counts(res, labels) -> tuple[np.ndarray, np.ndarray]:
    """Per exit b (all B exits; the last is 0 by definition):
    (right at exit b but wrong at the last exit, wrong at exit b but right at the last)."""
    right = res.cls == np.asarray(labels)[:, None]
    last = right[:, -1:]
    return (right & ~last).sum(0), (~right & last).sum(0)


# --------------------------------------------------------------------------- LAMA-style

def clopper_pearson_upper(k, n, alpha: float) -> np.ndarray:
    """One-sided (1 - alpha) Clopper-Pearson upper bound on a binomial rate after k
    successes in n trials: the p with P(Bin(n, p) <= k) = alpha; 1 when k = n or n = 0."""
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        u = stats.beta.ppf(1.0 - alpha, k + 1.0, np.maximum(n - k, 1e-300))
    return np.where((n <= 0) | (k >= n), 1.0, u)


def min_samples(tolerance: float, alpha: float) -> int:
    """Least n for which zero events in n trials give an upper bound <= tolerance
    ((1 - tolerance)^n <= alpha)."""
    if tolerance <= 0:
        return 2**62
    if tolerance >= 1:
        return 1
    return int(math.ceil(math.log(alpha) / math.log1p(-tolerance)))


def default_conf_grid() -> np.ndarray:
    """Candidate confidence thresholds, descending, float32: steps of 5e-4 on [0, 1]
    plus 1 - 10^-x (x = 2.5 .. 7) to resolve saturated confidences."""
    g = np.concatenate([np.linspace(0.0, 1.0, 2001), 1.0 - np.logspace(-7, -2.5, 46), [1.0]])
    return np.unique(g.astype(np.float32))[::-1]


def fit_confidence(split: Split, cfg: dict, *, tolerance: float = 0.01, delta: float = 0.05,
                   criterion: str = "error", grid=None) -> PolicyFit:
    """LAMA-style confidence thresholds with a finite-sample (Clopper-Pearson) guarantee.

    Per early exit b = 1..B-1, in order, on the calibration split (validation, never
    test). The sentences reaching exit b are those not taken by exits 1..b-1 under the
    thresholds already chosen. A sentence i *leaving* at b "harms" when
        criterion="error":         exit b is wrong and the last exit is right
                                   (needs labels), or
        criterion="disagreement":  exit b's class differs from the last exit's
                                   (label-free, as LAMA's self-supervised heads; more
                                   conservative).
    The accuracy lost on the leavers, acc_last - acc_b over the same sentences, is
    P(b wrong, last right) - P(b right, last wrong) <= P(harm) <= P(disagree), so a
    bound on the harm rate bounds the accuracy loss.

    Thresholds t from a fine descending float32 grid (`default_conf_grid`) are tested
    in a fixed sequence (Learn-then-Test style fixed-sequence testing, so scanning
    many thresholds needs no multiplicity correction): for the set L_b(t) = {reaching b,
    conf_b >= t} with n sentences and k harms, the null "P(harm | leave at b) >
    tolerance" is rejected when the one-sided Clopper-Pearson upper bound
    U(k, n, delta_b) <= tolerance, with delta_b = delta / (B-1) (Bonferroni over the
    exits). The scan starts at the first (highest) threshold whose n reaches
    n_min = ceil(log delta_b / log(1 - tolerance)) (below that even k = 0 cannot pass;
    the start depends on confidences only, not on labels) and walks down while the
    null is rejected; t_b is the lowest threshold reached before the first failure,
    i.e. the most aggressive threshold satisfying the bound (equal to "the lowest
    passing threshold" whenever the harm rate grows as t falls). If none passes,
    t_b = NEVER (exit b disabled).

    Guarantee (assumption: calibration and test sentences are exchangeable, i.e. i.i.d.
    draws from one distribution; exits 1..b-1 held at their chosen thresholds): with
    probability >= 1 - delta over the calibration sample, simultaneously for every
    early exit b,
        P_test(harm | sentence leaves at b) <= tolerance,
    hence the accuracy of the sentences leaving at b is at least the last exit's
    accuracy on those same sentences minus `tolerance`; the same holds for all early
    leavers together (a mixture of the exits), and the whole policy's accuracy is at
    least the last exit's minus tolerance * P(early exit). Caveat: exit b's test is
    conditional on the earlier thresholds, which were themselves chosen on the same
    sample; the Bonferroni split is the only correction made for that.

    Returns the thresholds (one per early exit) and, in calibration, per exit its
    leavers' count n, harms k, the bound at the chosen threshold, n_min and where the
    scan started/stopped, and the realised policy on the split.
    """
    if criterion not in ("error", "disagreement"):
        raise ValueError("criterion is 'error' or 'disagreement'")
    res, labels = split.res, np.asarray(split.labels)
    conf = np.asarray(res.conf, dtype=np.float32)
    cls = np.asarray(res.cls)
    N, n_exits = conf.shape
    if n_exits < 2:
        return PolicyFit("confidence", [], {"note": "a single exit"})
    grid = default_conf_grid() if grid is None else np.unique(np.asarray(grid, np.float32))[::-1]
    if criterion == "error":
        harm = (cls != labels[:, None]) & (cls[:, -1] == labels)[:, None]
    else:
        harm = cls != cls[:, -1:]
    delta_b = delta / (n_exits - 1)
    n_min = min_samples(tolerance, delta_b)
    alive = np.ones(N, dtype=bool)
    thresholds, per_exit = [], []
    for k in range(n_exits - 1):                               # column k: exit res.exits[k]
        c, h = conf[alive, k], harm[alive, k]
        order = np.argsort(-c, kind="stable")
        neg_sorted = -c[order]                                  # ascending
        cum_h = np.concatenate([[0], np.cumsum(h[order])])
        n = np.searchsorted(neg_sorted, -grid, side="right")    # #{c >= t}, t descending
        harms = cum_h[n]
        U = clopper_pearson_upper(harms, n, delta_b)
        start = int(np.argmax(n >= n_min)) if (n >= n_min).any() else len(grid)
        j_ok, j_fail = -1, None
        for j in range(start, len(grid)):
            if U[j] > tolerance:
                j_fail = j
                break
            j_ok = j
        t = f32(grid[j_ok]) if j_ok >= 0 else NEVER
        thresholds.append(t)
        leave = alive & (conf[:, k] >= np.float32(t))
        nl, kl = int(leave.sum()), int(harm[leave, k].sum())
        per_exit.append({
            "exit": res.exits[k], "threshold": t, "reaching": int(alive.sum()), "leaving": nl, "harms": kl,
            "harm_rate": kl / nl if nl else 0.0,
            "bound": float(clopper_pearson_upper(kl, nl, delta_b)) if nl else None,
            "scan_start": f32(grid[start]) if start < len(grid) else None,
            "first_failure": f32(grid[j_fail]) if j_fail is not None else None,
        })
        alive &= ~leave
    col = res.column(res.depth(Policy.CONFIDENCE, thresholds))
    assert int((col < n_exits - 1).sum()) == N - int(alive.sum()), "bookkeeping differs from exits.decide"
    depth = res.exit_of(col)
    pred = cls[np.arange(N), col]
    early = col < n_exits - 1
    info = {
        "method": "per-exit fixed-sequence Clopper-Pearson test (LAMA-style calibrated confidence)",
        "criterion": criterion, "tolerance": float(tolerance), "delta": float(delta),
        "delta_per_exit": float(delta_b), "n_min": int(n_min), "split_size": int(N),
        "per_exit": per_exit,
        "accuracy": float((pred == labels).mean()),
        "accuracy_last": float((cls[:, -1] == labels).mean()),
        "early_leavers": int(early.sum()),
        "early_accuracy": float((pred[early] == labels[early]).mean()) if early.any() else None,
        "early_accuracy_last": float((cls[early, -1] == labels[early]).mean()) if early.any() else None,
        "mean_depth": float(depth.mean()),
    }
    return PolicyFit("confidence", thresholds, info)


# --------------------------------------------------------------------------- EERO-style

def _thresholds_for_rates(conf: np.ndarray, cum_target: np.ndarray) -> list[float]:
    """Sequential per-exit quantile thresholds: after column k, about cum_target[k] * N
    sentences in total have left; column k takes the most confident of those reaching it."""
    N, n_exits = conf.shape
    alive = np.ones(N, dtype=bool)
    left, thr = 0, []
    for k in range(n_exits - 1):
        want = int(round(cum_target[k] * N)) - left
        c = np.sort(conf[alive, k])[::-1]
        want = min(max(want, 0), c.size)
        if want == 0:
            t = np.float32(NEVER)
        else:
            t = c[want - 1]                                      # >= want leave (ties)
            up = np.nextafter(t, np.float32(2.0))
            if abs(int((c >= up).sum()) - want) < abs(int((c >= t).sum()) - want):
                t = up
        leave = alive & (conf[:, k] >= t)
        left += int(leave.sum())
        alive &= ~leave
        thr.append(f32(t))
    return thr


def fit_budget(split: Split, cfg: dict, *, budget: float, unit: str = "depth",
               risk_weights: Sequence[float] = (0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0),
               rel_tol: float = 0.02) -> PolicyFit:
    """EERO-style thresholds meeting a mean compute budget with the best accuracy.

    budget: the mean compute allowed, as a fraction of running every block:
      unit="depth"    mean exit depth / B;
      unit="compute"  ops (flops + bmacs/64, beexgen/core/cost.py, sentence length aware)
                      relative to full depth, as `beexgen eval` reports it.
    Every candidate is solved so that its realised compute on the calibration split is
    <= budget, as close to it as the data allow; the candidates within `rel_tol`
    (relative, 2 %) below the budget compete on calibration accuracy.

    How the budget is spread over the exits (two families, all candidates compared):
    1. exponential-weight exit-rate schedules (EERO's aggregation with exponential
       weights of each head's risk and cost): the fraction of sentences leaving at head
       b = 1..B is
           r_b(lam, mu) = exp(-lam * c_b - mu * R_b) / sum_j exp(-lam * c_j - mu * R_j),
       c_b = cost of leaving at b relative to full depth (b / B, or the mean ops ratio),
       R_b = 1 - calibration accuracy of head b (its empirical Bayes risk). mu = 0 is a
       pure cost schedule (geometric in b for unit="depth": r_b ~ rho^b). For each mu in
       `risk_weights`, lam is found by bisection (60 steps over [-1000, 1000]) as the
       smallest lam whose realised compute is <= budget (the schedule is stochastically
       decreasing in lam, so compute falls as lam grows). A schedule becomes thresholds
       sequentially: exit b's threshold is the float32 confidence that lets the
       round(N * (r_1 + ... + r_b)) - (already left) most confident of the sentences
       reaching b leave (the reject option: the others defer to deeper heads).
    2. one shared threshold t for every early exit, the largest float32 confidence value
       whose realised compute is <= budget (binary search; compute grows with t).

    Returns the thresholds (one per early exit); calibration holds the chosen scheme, its parameters, realised compute and accuracy on the split,
    and every candidate. Raises ValueError when the budget is below the cost of exit 1.
    """
    unit = {"ops": "compute", "flops": "compute"}.get(unit, unit)
    if unit not in ("depth", "compute"):
        raise ValueError("unit is 'depth' or 'compute'")
    res, labels, lengths = split.res, np.asarray(split.labels), split.lengths
    conf = np.asarray(res.conf, dtype=np.float32)
    N, n_exits = conf.shape                # one column per exit (exit 0 included with a wide exit)
    nb = cfg["n_blocks"]
    ops = ops_table(cfg, lengths)
    if unit == "depth":
        c = np.asarray(res.exits) / nb           # exit e runs e of the nb blocks
        realised = lambda d: float(d.mean()) / nb  # noqa: E731
    else:
        c = ops.sum(0) / ops[:, -1].sum()
        realised = lambda d: compute_fraction(ops, res.column(d))  # noqa: E731
    if budget < c[0] - 1e-12:
        raise CalibrationError(f"budget {budget} is below the cost of leaving at exit {res.exits[0]} ({c[0]:.4f} of full, unit {unit})")
    R = 1.0 - (np.asarray(res.cls) == labels[:, None]).mean(0)

    def run(thr):
        d = res.depth(Policy.BUDGET, thr)
        return realised(d), _accuracy(res, labels, d), float(d.mean())

    cands = []
    # 1. exponential-weight schedules
    for mu in risk_weights:
        def sched(lam, mu=mu):
            z = -lam * c - mu * R
            w = np.exp(z - z.max())
            return _thresholds_for_rates(conf, np.cumsum(w / w.sum())[:-1])
        lo, hi = -1000.0, 1000.0
        thr_hi = sched(hi)
        comp_hi = run(thr_hi)[0]
        if comp_hi > budget:
            best_thr = thr_hi  # infeasible for this family (ties): keep its cheapest point
        else:
            best_thr = thr_hi
            for _ in range(60):
                mid = 0.5 * (lo + hi)
                thr = sched(mid)
                if run(thr)[0] <= budget:
                    hi, best_thr = mid, thr
                else:
                    lo = mid
        comp, acc, md = run(best_thr)
        cands.append({"scheme": "exp-weights", "mu": float(mu), "lam": float(hi), "thresholds": best_thr,
                      "compute": comp, "accuracy": acc, "mean_depth": md})
    # 2. shared threshold
    vals = np.unique(np.concatenate([conf[:, :-1].ravel(), np.float32([0.0, NEVER])]))
    lo_i, hi_i = 0, len(vals) - 1  # compute(vals[hi_i] = NEVER) = 1 >= budget unless budget < 1
    if run([f32(vals[hi_i])] * (n_exits - 1))[0] <= budget:
        best_i = hi_i
    else:
        best_i = 0
        while lo_i <= hi_i:
            m = (lo_i + hi_i) // 2
            if run([f32(vals[m])] * (n_exits - 1))[0] <= budget:
                best_i, lo_i = m, m + 1
            else:
                hi_i = m - 1
    thr = [f32(vals[best_i])] * (n_exits - 1)
    comp, acc, md = run(thr)
    cands.append({"scheme": "shared", "thresholds": thr, "compute": comp, "accuracy": acc, "mean_depth": md})

    ok = [x for x in cands if budget * (1 - rel_tol) <= x["compute"] <= budget * (1 + 1e-12)]
    met = bool(ok)
    if not ok:
        under = [x for x in cands if x["compute"] <= budget] or cands
        ok = [min(under, key=lambda x: abs(x["compute"] - budget))]
        warnings.warn(f"no threshold set lands within {rel_tol:.0%} of budget {budget} on the calibration split "
                      f"(closest {ok[0]['compute']:.4f}): ties in the confidences?")
    best = max(ok, key=lambda x: (x["accuracy"], -x["compute"]))
    info = {"method": "EERO-style exit-rate schedules by exponential weights of cost and risk, "
                      "lam by bisection; plus a shared threshold; best calibration accuracy within the budget",
            "budget": float(budget), "unit": unit, "rel_tol": float(rel_tol), "budget_met": met,
            "scheme": best["scheme"], "mu": best.get("mu"), "lam": best.get("lam"),
            "compute": best["compute"], "accuracy": best["accuracy"], "mean_depth": best["mean_depth"],
            "head_cost": [float(x) for x in c], "head_risk": [float(x) for x in R],
            "candidates": [{k: v for k, v in x.items()} for x in cands], "split_size": int(N)}
    return PolicyFit("budget", list(best["thresholds"]), info)


# --------------------------------------------------------------------------- entropy

def sweep_entropy(cfg, res, labels, lengths, candidates=None):
    """[(tau, accuracy, ops_rel, mean_depth)] for each candidate threshold."""
    if candidates is None:
        h = res.entropy.astype(np.float64)
        h = np.concatenate([np.full((h.shape[0], 1), res.h_prior), h], axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = (h[:, :-1] - h[:, 1:]) / h[:, :-1]
        frac = np.clip(frac[np.isfinite(frac)], -1.0, 1.0)   # beyond +-1 nothing changes but the look
        qs = np.quantile(frac, np.linspace(0, 1, 101)) if frac.size else np.array([])
        candidates = np.unique(np.concatenate([[0.0, 1.0], qs, np.linspace(-0.5, 1.0, 31)]))
    rows = []
    table = ops_table(cfg, lengths)
    for tau in candidates:
        depth = res.depth(Policy.ENTROPY, [tau])
        pred = res.at_exit(depth)[0]
        rows.append((float(np.float32(tau)), float((pred == labels).mean()),
                     compute_fraction(table, res.column(depth)), float(depth.mean())))
    return rows


def fit_entropy(split: Split, cfg: dict, *, ceiling: float | None = None, tolerance: float = 0.005) -> PolicyFit:
    """ENTROPY: the threshold of sweep_entropy with the best validation accuracy under the
    compute ceiling; the cheapest within `tolerance` of it."""
    rows = sweep_entropy(cfg, split.res, np.asarray(split.labels), split.lengths)
    ok = [r for r in rows if ceiling is None or r[2] <= ceiling]
    if not ok:
        raise CalibrationError(f"no entropy threshold meets the compute ceiling {ceiling}: the cheapest "
                         f"reaches {min(r[2] for r in rows):.3f} of full depth ")
    best = max(r[1] for r in ok)
    tau, acc, rel, depth = min((r for r in ok if r[1] >= best - tolerance), key=lambda r: (r[2], -r[1]))
    return PolicyFit("entropy", [tau], {"split": "val", "accuracy": acc, "ops_rel": rel, "mean_depth": depth,
                                        "ceiling": ceiling, "tolerance": tolerance})


# --------------------------------------------------------------------------- patience

def fit_patience(split: Split, cfg: dict, *, tolerance: float = 0.005) -> PolicyFit:
    """PATIENCE (PABEE): the smallest patience t (the cheapest: fewer agreeing exits
    needed) whose validation accuracy is within `tolerance` of the last exit's; t runs
    over 0 .. n_exits - 1 (n_exits - 1: no early exit can be taken)."""
    res, labels, lengths = split.res, np.asarray(split.labels), split.lengths
    n_exits = res.conf.shape[1]
    table = ops_table(cfg, lengths)
    last = float((res.cls[:, -1] == labels).mean())
    rows = []
    for t in range(n_exits):
        depth = res.depth(Policy.PATIENCE, [float(t)])
        rows.append((float(t), _accuracy(res, labels, depth), compute_fraction(table, res.column(depth)),
                     float(depth.mean())))
    t, acc, rel, depth = next(r for r in rows if r[1] >= last - tolerance)
    return PolicyFit("patience", [t], {"split": "val", "accuracy": acc, "ops_rel": rel, "mean_depth": depth,
                                       "last_exit_accuracy": last, "tolerance": tolerance, "sweep": rows})


# --------------------------------------------------------------------------- registry

def _check_budget(o: dict) -> None:
    if o["budget"] is None or not 0 < o["budget"] <= 1:
        raise CalibrationError("--budget must be given as a fraction in (0, 1], e.g. --budget 0.5")


@dataclass(frozen=True)
class Calibrator:
    """One exit policy's entry: how `beexgen calibrate` / `export` fit it on the
    validation split, with the options of core/policy.py POLICY_OPTIONS (their defaults
    there), its threshold family for the report's curves, its one-line summary, and the
    check that refuses bad options before anything loads."""
    fit: Callable[..., PolicyFit]                     # (split, cfg, **options) -> PolicyFit
    family: Callable[[np.ndarray, int, int], list]    # (thresholds, n_exits, n) -> threshold vectors
    summary: str
    check: Callable[[dict], None] | None = None


CALIBRATORS: dict[str, Calibrator] = {
    "confidence": Calibrator(fit_confidence, _family_per_exit, SUMMARY["confidence"]),
    "entropy": Calibrator(fit_entropy, _family_entropy, SUMMARY["entropy"]),
    "budget": Calibrator(fit_budget, _family_per_exit, SUMMARY["budget"], _check_budget),
    "patience": Calibrator(fit_patience, _family_patience, SUMMARY["patience"]),
    "none": Calibrator(lambda split, cfg: PolicyFit("none", []), _family_none, SUMMARY["none"]),
}


def calibration_options(name: str, **given) -> dict:
    """The options policy `name` calibrates with: each given one (not None), else its
    default; refused (CalibrationError) when they cannot work, before anything loads."""
    c = CALIBRATORS[name]
    opts = {k: given[k] if given.get(k) is not None else d for k, d in POLICY_OPTIONS[name].items()}
    if c.check:
        c.check(opts)
    return opts


def fit(name: str, split: Split, cfg: dict, **given) -> PolicyFit:
    """Fit policy `name` on a split (the validation split), with calibration_options."""
    return CALIBRATORS[name].fit(split, cfg, **calibration_options(name, **given))


def calibrate(name: str, res, labels, lengths, cfg, **given) -> dict:
    """fit() on Split(res, labels, lengths), as meta.json's exit_policy dict."""
    return fit(name, Split.of(res, labels, lengths), cfg, **given).to_dict()
