"""Bench stage helpers of the accuracy stage (issue 19): exit 0 alone, the exact McNemar
test of the shipped model against each linear baseline on the same test sentences, and
the flash budget the default board gives the model (codegen/fit.py), the one the bench's
trainings get as `beexgen train --board` would give it."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PairedTest:
    """Exact McNemar test of the shipped model (default policy) against one baseline on the
    same test sentences: only the discordant pairs count."""
    model_only: int        # sentences the model gets right and the baseline wrong
    baseline_only: int     # the other way round
    p: float               # two-sided exact binomial p-value of model_only among the discordant


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
