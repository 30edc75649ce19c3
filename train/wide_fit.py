"""Fitting the wide exit 0 alone: the warm start of joint training, and its feature choice.

The wide exit is a linear model over counts of its feature rows (ids, id bigrams, words,
word pairs: beexgen/core/wide.py), so on its own it is an L2-regularised (multinomial,
or binary for two classes: one column) logistic regression, a convex problem.
`select` solves it with scikit-learn's L-BFGS on a scipy.sparse matrix for each
candidate feature set (the tables of the budget's layout, or fewer: without the id bag,
without the word pairs) and each L2 strength of a grid, keeps the pair with the best
validation accuracy of the int8-quantised head (as the C runs it), and refits it on the
whole training split. Joint training then starts from it and keeps the chosen L2 penalty
on the wide table. Without the warm start, Adam over-fits the sparse table within two
epochs (measured: 75 % validation accuracy on rotten_tomatoes against 77 % for the same
features fitted as a regression).

Scale: the whole C grid is walked (warm-started, upwards) on the largest feature set
only; each smaller set is fitted at the chosen C and its two neighbours. The fits use
at most FIT_SAMPLE training texts (a seeded sample), and only the choice is refitted on
all of them, so a 200,000-text file costs one full fit; a progress bar counts the fits.

The penalty is l2 * sum(table^2) added to the mean cross-entropy, i.e. C = 1 / (2 l2 N)
in scikit-learn's terms.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from tqdm.auto import tqdm

from beexgen.core import wide as wide_rules

C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)     # inverse regularisation strengths tried
FIT_SAMPLE = 20_000     # training texts the grid is fitted on (all of them for the chosen fit)
MAX_ITER = 300          # L-BFGS iterations per fit
FEATURE_SETTINGS = ("wide_ids", "bigram_buckets", "word_buckets", "pair_buckets")   # ModelConfig fields


def l2_for(c: float, n: int) -> float:
    return 1.0 / (2.0 * c * n)


def sparse_counts(rows: list[np.ndarray], n_rows: int):
    """(N, n_rows) scipy.sparse CSR of feature counts: text i counts rows[i]."""
    import scipy.sparse as sp

    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    idx = np.concatenate(rows).astype(np.int64) if rows else np.zeros(0, np.int64)
    x = sp.csr_matrix((np.ones(idx.size, np.float32), idx, indptr), shape=(len(rows), n_rows))
    x.sum_duplicates()
    return x


def candidates(cfg: dict) -> list[dict]:
    """Feature sets tried, smallest first (a tie keeps the smaller): cfg's wide settings
    with the id bag and/or the word pairs dropped, where words remain."""
    full = {k: cfg.get(k) for k in FEATURE_SETTINGS}
    out = []
    if full["word_buckets"]:
        for ids in (False, True):
            for pairs in (False, True):
                c = dict(full, wide_ids=bool(full["wide_ids"]) and ids,
                         bigram_buckets=full["bigram_buckets"] if ids else 0,
                         pair_buckets=full["pair_buckets"] if pairs else 0)
                if c not in out:
                    out.append(c)
    if full not in out:
        out.append(full)
    return out


def _columns(cfg: dict, sub: dict) -> np.ndarray:
    """Indices of the full layout's rows that the sub-layout keeps, in its order."""
    starts, base = {}, 0
    for name, rows in wide_rules.layout(cfg):
        starts[name] = (base, rows)
        base += rows
    return np.concatenate([np.arange(starts[n][0], starts[n][0] + r) for n, r in wide_rules.layout(sub)])


def _quantised_predict(coef: np.ndarray, bias: np.ndarray, x, n_classes: int) -> np.ndarray:
    """Classes of the int8 head (wide.quantize, as exported): coef (C', F)."""
    q, scale = wide_rules.quantize(coef.T)
    z = np.asarray(x @ q.astype(np.float32)) * scale + bias.astype(np.float32)
    return (z[:, 0] > 0).astype(np.int64) if n_classes == 2 and z.shape[1] == 1 else z.argmax(1)


def _fit(x, y, c: float, n_classes: int, clf=None):
    """L-BFGS logistic regression at inverse strength c; clf: a previous fit to start from
    (the C grid is walked upwards, each fit warm-started from the last). Returns
    (coef (C', F), bias (C',), the fitted estimator)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    clf = clf if clf is not None else LogisticRegression(max_iter=MAX_ITER, tol=1e-5, warm_start=True)
    clf.set_params(C=c)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x, y)
    coef, bias = clf.coef_.astype(np.float32), clf.intercept_.astype(np.float32)
    if n_classes > 2 and len(clf.classes_) < n_classes:      # a class absent from the sample
        full_c = np.zeros((n_classes, coef.shape[1]), np.float32)
        full_b = np.full(n_classes, -1e3, np.float32)
        full_c[clf.classes_], full_b[clf.classes_] = coef, bias
        coef, bias = full_c, full_b
    return coef, bias, clf


def select(cfg: dict, tr_rows: list[np.ndarray], ytr, va_rows: list[np.ndarray], yva, *,
           c: float | None = None, seed: int = 0, progress: bool = True, choose: bool = True) -> dict:
    """Choose the feature set and C on validation; fit the choice on the whole training split.
    cfg: the model config (dict) whose layout the rows index. Returns {"config": the chosen
    wide settings, "table": (rows, C') float32 of the chosen layout, "bias": (C',),
    "C", "l2", "val_acc", "tried": [(settings, C, val_acc)]}. choose False: cfg's own features
    (set on the command line), only C is chosen."""
    n_classes = cfg["n_classes"]
    ytr, yva = np.asarray(ytr), np.asarray(yva)
    n_full = sum(r for _, r in wide_rules.layout(cfg))
    xtr, xva = sparse_counts(tr_rows, n_full), sparse_counts(va_rows, n_full)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.permutation(len(ytr))[:FIT_SAMPLE]) if len(ytr) > FIT_SAMPLE else np.arange(len(ytr))
    cands = candidates(cfg) if choose else [{k: cfg.get(k) for k in FEATURE_SETTINGS}]
    grid = [c] if c is not None else sorted(C_GRID)
    # the whole grid on the largest feature set (the last candidate), then each smaller
    # one at the chosen C and its two neighbours in the grid
    near = lambda g: grid[max(0, grid.index(g) - 1):grid.index(g) + 2]
    bar = tqdm(total=len(grid) + sum(min(3, len(grid)) for _ in cands[:-1]) + 1,
               desc="wide exit 0: features and C on validation", disable=not progress, leave=False)
    best, tried = None, []
    for k, cand in enumerate([cands[-1]] + cands[:-1]):
        sub = {**cfg, **cand}
        cols = _columns(cfg, sub)
        xs, xv = xtr[sample][:, cols], xva[:, cols]
        clf = None
        for cc in (grid if k == 0 else near(c_full)):
            coef, bias, clf = _fit(xs, ytr[sample], cc, n_classes, clf)
            acc = float((_quantised_predict(coef, bias, xv, n_classes) == yva).mean())
            tried.append((cand, cc, acc))
            # ties: the smaller table
            if best is None or acc > best[2] or (acc == best[2] and cols.size < best[3].size):
                best = (cand, cc, acc, cols, coef, bias)
            bar.update(1)
        if k == 0:
            c_full = best[1]
    cand, cc, acc, cols, coef, bias = best
    if len(sample) < len(ytr):      # the chosen fit on every training text
        bar.set_description(f"wide exit 0: the chosen fit on {len(ytr):,} texts")
        coef, bias, _ = _fit(xtr[:, cols], ytr, cc, n_classes)
        acc = float((_quantised_predict(coef, bias, xva[:, cols], n_classes) == yva).mean())
    bar.update(1)
    bar.close()
    return {"config": cand, "table": coef.T.copy(), "bias": bias, "C": float(cc), "l2": l2_for(cc, len(ytr)),
            "val_acc": acc, "tried": tried}


def load_into(wide, fit: dict) -> None:
    """Set a model.WideExit's table and bias to a fit of `select`."""
    with torch.no_grad():
        wide.table.copy_(torch.from_numpy(np.ascontiguousarray(fit["table"], dtype=np.float32)))
        wide.bias.copy_(torch.from_numpy(np.ascontiguousarray(fit["bias"], dtype=np.float32)))


def penalty(wide, l2: float) -> torch.Tensor:
    return l2 * (wide.table * wide.table).sum()
