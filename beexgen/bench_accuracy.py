"""The bench's accuracy figures of issue 19: exit 0 alone, paired tests against the linear
baselines, the board's flash budget and the int8 bag-of-words LR's bytes.

Functions return dataclasses; beexgen/bench.py puts their fields into its records, the
README table and docs/bench.json (keys in ../shared/BENCH.md):
    datasets.<d>.seeds.<s>.exit0, datasets.<d>.seed_mean.exit0,
    datasets.<d>.mcnemar_p.{bow,tfidf}, datasets.<d>.board_flash_budget,
    datasets.<d>.bow_lr_int8_bytes, datasets.<d>.leaves_at_exit0
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class PairedTest:
    """Exact McNemar test of the shipped model (default policy) against one baseline on the
    same test sentences: only the discordant pairs count."""
    model_only: int        # sentences the model gets right and the baseline wrong
    baseline_only: int     # the other way round
    p: float               # two-sided exact binomial p-value of model_only among the discordant

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class AccuracyFigures:
    exit0: float | None                 # exit 0 alone on the test split (None without a wide exit)
    mcnemar: dict[str, PairedTest]      # baseline name ("bow", "tfidf") -> test
    board: str
    board_flash_budget: int             # bytes the model may use on `board` (codegen/fit.py)
    bow_lr_int8_bytes: int
    leaves_at_exit0: float              # fraction of test sentences the default policy sends out at exit 0


def mcnemar_exact(model_correct, baseline_correct) -> PairedTest:
    """Exact (binomial) McNemar test on paired correctness vectors (N,) bool."""
    from scipy.stats import binomtest

    a, b = np.asarray(model_correct, bool), np.asarray(baseline_correct, bool)
    m_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    n = m_only + b_only
    p = 1.0 if n == 0 else float(binomtest(m_only, n, 0.5).pvalue)
    return PairedTest(m_only, b_only, p)


def exit0_accuracy(res, y) -> float | None:
    """Test accuracy of exit 0 alone (the wide exit) of a deploy.DeployResult, None without one."""
    if res.first_exit != 0:
        return None
    return float((res.cls[:, 0] == np.asarray(y)).mean())


def board_flash_budget(art, board: str) -> int:
    """The flash budget `beexgen train --board` gives a model of this artifact's dimensions."""
    from beexgen.codegen import fit
    from beexgen.train.tokenizer import from_str, vocab_bytes

    budget, _ = fit.board_budget(dict(art.config), art.tokenizer_json, vocab_bytes(from_str(art.tokenizer_json)),
                                 board)
    return int(budget)


def figures(art, res_t, y_t, depth, baseline_pred: dict[str, np.ndarray], bow_int8_bytes: int,
            board: str) -> AccuracyFigures:
    """The figures of one data set's seed-0 model. depth: the exit each test sentence takes
    under the default policy; baseline_pred: each baseline's test predictions."""
    y_t = np.asarray(y_t)
    cls, _ = res_t.at_exit(depth)
    ok = cls == y_t
    tests = {k: mcnemar_exact(ok, np.asarray(p) == y_t) for k, p in baseline_pred.items()}
    return AccuracyFigures(exit0=exit0_accuracy(res_t, y_t), mcnemar=tests, board=board,
                           board_flash_budget=board_flash_budget(art, board), bow_lr_int8_bytes=int(bow_int8_bytes),
                           leaves_at_exit0=float((np.asarray(depth) == 0).mean()))


def json_keys(f: AccuracyFigures) -> dict:
    """The docs/bench.json keys of one data set (percentages as the rest of the file)."""
    return {"mcnemar_p": {k: round(t.p, 6) for k, t in f.mcnemar.items()},
            "mcnemar_discordant": {k: [t.model_only, t.baseline_only] for k, t in f.mcnemar.items()},
            "board_flash_budget": f.board_flash_budget, "bow_lr_int8_bytes": f.bow_lr_int8_bytes,
            "leaves_at_exit0": round(f.leaves_at_exit0, 4)}


def table_rows(results: list[dict]) -> list[tuple[str, callable]]:
    """(row name, record -> cell) of the README table's rows of this module."""
    def mean(r, k):
        return f"{100 * r['seed_mean'][k]:.1f}" if r["seed_mean"].get(k) is not None else "-"

    def mc(r):
        f = r["acc19"]
        return " / ".join(f"p = {t.p:.3g} ({t.model_only}:{t.baseline_only})" for t in f.mcnemar.values())

    def exit0_row(r):
        seeds = ", ".join("-" if v.get("exit0") is None else f"{100 * v['exit0']:.1f}" for v in r["seeds"].values())
        return f"{mean(r, 'exit0')} ({seeds})"

    def leaves(r):
        f = r["acc19"]
        return "all at exit 0 (the blocks did not help on validation)" if f.leaves_at_exit0 == 1.0 \
            else f"{100 * f.leaves_at_exit0:.0f} % at exit 0"

    return [("exit 0 alone: mean of 3 seeds (seeds 0, 1, 2)", exit0_row),
            ("exact McNemar, default policy vs BoW LR / vs TF-IDF LR, seed 0 (model right only : baseline right only)",
             mc),
            ("default policy leaves", leaves),
            ("flash budget of the model on the default board (board - firmware code - margin) / artifact",
             lambda r: f"{r['acc19'].board_flash_budget / 1024:.0f} KB / {r['size']['artifact']['total'] / 1024:.0f} KB"),
            ]


def default_train_budget(board: str) -> int:
    """The --size-budget `beexgen train --board board` sets for the default model dimensions
    (the bench trains through the trainer, not the CLI, so it asks here)."""
    from beexgen.codegen import fit
    from beexgen.train.config import ModelConfig, TrainConfig
    from beexgen.train.tokenizer import build_empty

    cfg = ModelConfig(vocab_size=TrainConfig.vocab_size, n_classes=2).to_dict()
    vocab = fit.placeholder_vocab(cfg["vocab_size"])
    budget, _ = fit.board_budget(cfg, build_empty(vocab).to_str(), sum(len(p) + 1 for p in vocab), board)
    return int(budget)


def json_default(o):
    """json.dumps default for the bench's records: dataclasses as dicts, numbers as floats."""
    import dataclasses
    return dataclasses.asdict(o) if dataclasses.is_dataclass(o) else float(o)
