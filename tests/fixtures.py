"""Artifacts for tests that need a model but not a data set.

`tiny_artifact` exports a randomly initialised (seeded) BEExformer with a tokenizer
trained on a small built-in corpus. Random weights are as good as trained ones for
checking that two implementations compute the same thing; tests of *learning* use
the data sets fetched in set-up instead.
"""
from __future__ import annotations

from pathlib import Path

import torch

from beexgen.core import artifact
from beexgen.train import tokenizer as tok_mod
from beexgen.train.exits import prior_entropy
from beexgen.train.export import export
from beexgen.train.model import BEExformer, ModelConfig

CORPUS = [
    "the film is a charming and often affecting journey",
    "a gorgeous, witty, seductive movie.",
    "it's a bore: slow, predictable and far too long!",
    "What is the capital of France?",
    "How many people live in Tokyo?",
    "Who wrote 'Hamlet'?",
    "WINNER!! You have won a £1000 prize. Call 09061701461 now",
    "ok lor... i'll see u at 5pm :-)",
    "naïve café déjà vu — über cool 🎬 films",
    "the acting is wooden and the plot makes no sense at all",
    "an utterly delightful, heartfelt comedy",
    "Why does the sun rise in the east?",
]


def tiny_artifact(out: Path, *, d_model=32, n_heads=2, d_ff=48, n_blocks=3, seq_max=24,
                  n_classes=3, slfn=True, vocab_size=200, seed=0, wide=True, bigram_buckets=None,
                  policy: dict | None = None, wide_ids=None, word_buckets=None,
                  pair_buckets=None) -> artifact.Artifact:
    torch.manual_seed(seed)
    tok = tok_mod.train_tokenizer(CORPUS * 3, vocab_size=vocab_size, min_frequency=1)
    cfg = ModelConfig(vocab_size=tok.get_vocab_size(), n_classes=n_classes, d_model=d_model,
                      n_heads=n_heads, d_ff=d_ff, n_blocks=n_blocks, seq_max=seq_max, slfn=slfn,
                      wide=wide, bigram_buckets=bigram_buckets, wide_ids=wide_ids,
                      word_buckets=word_buckets, pair_buckets=pair_buckets)
    model = BEExformer(cfg)
    # random exit heads are nearly uniform: scale them so exits and ties are non-trivial
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.0 + 2.0 * torch.rand_like(p))
        if model.wide is not None:  # a trained bag of words is far from zero: draw one
            model.wide.table.normal_(0.0, 0.5)
            model.wide.bias.normal_(0.0, 0.5)
    classes = [f"class{i}" for i in range(n_classes)]
    return export(model, out, classes=classes, tokenizer_json=tok.to_str(),
                  policy=policy or {"name": "entropy", "thresholds": [0.25]},
                  h_prior=prior_entropy(list(range(n_classes)), n_classes))
