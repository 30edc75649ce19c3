"""Bench stage: accuracy of the shipped model and its peers (the paper's architecture,
the full-precision twin, two linear baselines), on the seed-0 test split with Wilson
intervals, by exit, and as a 3-seed mean. Accuracies are percentages (common.pct)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from beexgen.bench.common import SEEDS, pct, run_dirs, wilson_pct
from beexgen.bench.paired import board_flash_budget, exit0_accuracy, mcnemar_exact

TFIDF_C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


@dataclass
class BagOfWords:
    """Binary bag-of-words logistic regression (float32 and int8) on one split."""
    accuracy: float          # fraction
    accuracy_int8: float
    features: int
    bytes_fp32: int
    bytes_int8: int
    pred: np.ndarray         # its test predictions (the paired test)


@dataclass
class Accuracy:
    test_sentences: int = 0
    accuracy_default_policy: float = 0.0
    accuracy_full_depth: float = 0.0
    accuracy_paper_model: float = 0.0
    accuracy_paper_default_policy: float = 0.0
    accuracy_twin: float = 0.0
    accuracy_bow_lr: float = 0.0
    accuracy_tfidf_lr: float = 0.0
    wilson95: dict[str, list[float]] = field(default_factory=dict)   # "default_policy" -> [lo, hi]
    accuracy_by_exit: dict[str, float] = field(default_factory=dict)  # exit number e -> accuracy
    seed_mean: dict[str, float | None] = field(default_factory=dict)   # exit0: None without a wide exit
    seeds: dict[str, dict[str, float | None]] = field(default_factory=dict)
    # exact McNemar, default policy vs each baseline, seed 0: p and (model right only, baseline right only)
    mcnemar_p: dict[str, float] = field(default_factory=dict)
    mcnemar_discordant: dict[str, list[int]] = field(default_factory=dict)
    board_flash_budget: int | None = None      # bytes the model may use on the default board (codegen/fit.py)
    leaves_at_exit0: float | None = None       # fraction of test sentences the default policy ends at exit 0


def tfidf_lr(run) -> dict:
    """TF-IDF of word uni+bigrams (sublinear tf, min_df 2) + logistic regression with C
    tuned on the validation split: the stronger linear baseline."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    tr, va, te = (list(getattr(run.split, k)) for k in ("train", "val", "test"))
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, lowercase=True)
    xtr = vec.fit_transform([run.texts[i] for i in tr])
    xva, xte = (vec.transform([run.texts[i] for i in idx]) for idx in (va, te))
    best = None
    for c in TFIDF_C_GRID:
        clf = LogisticRegression(C=c, max_iter=3000).fit(xtr, run.labels[tr])
        v = float((clf.predict(xva) == run.labels[va]).mean())
        if best is None or v > best[0]:
            best = (v, c, clf)
    v, c, clf = best
    pred = clf.predict(xte)
    return {"accuracy": float((pred == run.labels[te]).mean()), "C": c, "val_accuracy": v,
            "features": len(vec.vocabulary_), "pred": pred}


def bag_of_words(run) -> BagOfWords:
    """Logistic regression on binary bag-of-words (sklearn), same split; float32 and int8."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    tr, te = list(run.split.train), list(run.split.test)
    vec = CountVectorizer(binary=True, min_df=2, ngram_range=(1, 1), lowercase=True)
    xtr = vec.fit_transform([run.texts[i] for i in tr])
    xte = vec.transform([run.texts[i] for i in te])
    ytr, yte = run.labels[tr], run.labels[te]
    clf = LogisticRegression(C=1.0, max_iter=2000).fit(xtr, ytr)
    acc = float((clf.predict(xte) == yte).mean())
    w, b = clf.coef_.astype(np.float32), clf.intercept_.astype(np.float32)
    scale = np.abs(w).max(axis=1, keepdims=True) / 127.0          # per-class symmetric int8
    wq = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
    scores = (xte @ (wq.astype(np.float32) * scale).T) + b
    pred = (scores[:, 0] > 0).astype(int) if scores.shape[1] == 1 else scores.argmax(1)
    acc8 = float((clf.classes_[np.asarray(pred).ravel()] == yte).mean())
    vocab_bytes = sum(len(t.encode()) + 1 for t in vec.vocabulary_)
    return BagOfWords(accuracy=acc, accuracy_int8=acc8, features=len(vec.vocabulary_),
                      bytes_fp32=4 * (w.size + b.size) + vocab_bytes,
                      bytes_int8=w.size + 4 * (b.size + scale.size) + vocab_bytes, pred=clf.predict(xte))


def _policy_depth(art, res):
    from beexgen.core import artifact
    return res.depth(artifact.Policy[art.policy["name"].upper()], art.policy["thresholds"])


def _policy_accuracy(art, res, y) -> float:
    return float((res.at_exit(_policy_depth(art, res))[0] == y).mean())


def seed_accuracy(run_dir: Path) -> dict[str, float]:
    """Test accuracy (fractions) of a run's artifact (default policy, full depth) and of
    both baselines on that run's split: one seed of the 3-seed means."""
    from beexgen.core import artifact
    from beexgen.train import deploy
    from beexgen.train.trainer import load_run

    run = load_run(run_dir)
    art = artifact.load(run_dir / "artifact")
    ids, y, _ = run.part("test")
    res = deploy.run(deploy.DeployModel(art), ids, run.all_part("test"))
    return {"default_policy": _policy_accuracy(art, res, y), "full_depth": float((res.cls[:, -1] == y).mean()),
            "exit0": exit0_accuracy(res, y), "bow": bag_of_words(run).accuracy, "tfidf": tfidf_lr(run)["accuracy"], "n": int(len(y))}


def by_exit(rep: dict) -> dict[str, float]:
    """Exit number e -> test accuracy there, from train/evaluate.py's report."""
    return {str(e): pct(a) for e, a in zip(rep["exits"], rep["exit_acc"])}


def measure(ds: str, out: Path, ctx, bow: BagOfWords) -> Accuracy:
    """The accuracy stage of one data set (ctx: common test-split state, run.DatasetContext)."""
    from beexgen.core import artifact
    from beexgen.train import deploy

    run_dir, y = out / ds, ctx.y_t
    n = len(y)
    acc = {"default_policy": _policy_accuracy(ctx.art, ctx.res_t, y),
           "full_depth": float((ctx.res_t.cls[:, -1] == y).mean())}
    paper = artifact.load(run_dir / "paper" / "artifact")
    rp = deploy.run(deploy.DeployModel(paper), ctx.ids_t, ctx.all_t)
    acc["paper_model"] = float((rp.cls[:, -1] == y).mean())
    acc["paper_default_policy"] = _policy_accuracy(paper, rp, y)
    acc["twin"] = ctx.twin_exit_acc[-1]
    acc["bow_lr"], acc["tfidf_lr"] = bow.accuracy, ctx.tfidf["accuracy"]
    seeds = {"0": {"default_policy": acc["default_policy"], "full_depth": acc["full_depth"],
                   "exit0": exit0_accuracy(ctx.res_t, y), "bow": acc["bow_lr"], "tfidf": acc["tfidf_lr"], "n": n}}
    for s in SEEDS[1:]:
        seeds[str(s)] = seed_accuracy(run_dirs(ds, out)[f"seed{s}"])
    mean = {k: (None if any(v[k] is None for v in seeds.values()) else pct(np.mean([v[k] for v in seeds.values()])))
            for k in ("default_policy", "full_depth", "exit0", "bow", "tfidf")}
    depth = _policy_depth(ctx.art, ctx.res_t)
    ok = ctx.res_t.at_exit(depth)[0] == y
    tests = {"bow": mcnemar_exact(ok, bow.pred == y), "tfidf": mcnemar_exact(ok, ctx.tfidf["pred"] == y)}
    from beexgen.codegen.boards import DEFAULT_BOARD
    return Accuracy(test_sentences=n, **{f"accuracy_{k}": pct(v) for k, v in acc.items()},
                    wilson95={k: wilson_pct(v, n) for k, v in acc.items()}, accuracy_by_exit=by_exit(ctx.report),
                    seed_mean=mean,
                    seeds={s: {k: (v if k == "n" or v is None else pct(v)) for k, v in d.items()}
                           for s, d in seeds.items()},
                    mcnemar_p={k: round(t.p, 6) for k, t in tests.items()},
                    mcnemar_discordant={k: [t.model_only, t.baseline_only] for k, t in tests.items()},
                    board_flash_budget=board_flash_budget(ctx.art, DEFAULT_BOARD),
                    leaves_at_exit0=round(float((np.asarray(depth) == 0).mean()), 4))
