"""The wide exit's pre-fit (train/wide_fit.py): feature sets and C chosen on validation,
the quantised head's accuracy as reported, the grid fitted on a sample of a large file,
progress of every step of `beexgen train`; LAMA's self-distillation loss."""
from __future__ import annotations

import numpy as np
import torch
from click.testing import CliRunner

from beexgen.cli import main
from beexgen.core import wide
from beexgen.train import tokenizer as tok_mod
from beexgen.train import wide_fit
from beexgen.train.trainer import self_distill_loss


def _problem(n: int, seed: int, n_classes: int = 3):
    """Texts whose class is said by a word or by a pair of words (the pair only in order)."""
    rng = np.random.default_rng(seed)
    filler = [f"w{i}" for i in range(200)]
    y = rng.integers(0, n_classes, n)
    texts = []
    for c in y:
        words = list(rng.choice(filler, 8))
        words.insert(int(rng.integers(0, 8)), f"cue{c}" if rng.random() < 0.5 else f"pre post{c}")
        texts.append(" ".join(words))
    return texts, y


def _cfg(tok, n_classes, **kw):
    return {"vocab_size": tok.get_vocab_size(), "n_classes": n_classes, "wide": True, "wide_ids": True,
            "bigram_buckets": 0, "word_buckets": 1024, "pair_buckets": 2048, **kw}


def test_select_reports_the_quantised_heads_accuracy_and_its_layout():
    texts, y = _problem(1500, 0)
    tok = tok_mod.train_tokenizer(texts[:1000], vocab_size=300, min_frequency=1)
    bags = [tok_mod.encode_all(tok, t) for t in texts]
    for n_classes, yy in ((3, y), (2, y % 2)):
        cfg = _cfg(tok, n_classes)
        rows = [wide.bag_rows(b, cfg) for b in bags]
        fit = wide_fit.select(cfg, rows[:1000], yy[:1000], rows[1000:], yy[1000:], progress=False)
        sub = {**cfg, **fit["config"]}
        assert fit["table"].shape == (sum(r for _, r in wide.layout(sub)), wide.columns(n_classes))
        # the reported validation accuracy is the int8 head's, on the chosen layout's own rows
        q, s = wide.quantize(fit["table"])
        stacked = q.astype(np.int32)
        z = np.stack([wide.table_sums(b, stacked, sub) for b in bags[1000:]]).astype(np.float32) * s + fit["bias"]
        pred = (z[:, 0] > 0) if n_classes == 2 else z.argmax(1)
        assert float((pred == yy[1000:]).mean()) == fit["val_acc"] > 0.9
        assert fit["C"] in wide_fit.C_GRID and {t[0]["pair_buckets"] for t in fit["tried"]} == {0, 2048}


def test_command_line_features_are_kept():
    texts, y = _problem(600, 1)
    tok = tok_mod.train_tokenizer(texts, vocab_size=300, min_frequency=1)
    cfg = _cfg(tok, 3, wide_ids=False)
    rows = [wide.bag_rows(tok_mod.encode_all(tok, t), cfg) for t in texts]
    fit = wide_fit.select(cfg, rows[:400], y[:400], rows[400:], y[400:], progress=False, choose=False, c=1.0)
    assert fit["config"] == {k: cfg[k] for k in wide_fit.FEATURE_SETTINGS} and fit["C"] == 1.0
    assert len(fit["tried"]) == 1


def test_grid_on_a_sample_of_a_large_file(monkeypatch):
    """Past FIT_SAMPLE texts the grid sees a sample; the choice is refitted on all of them."""
    monkeypatch.setattr(wide_fit, "FIT_SAMPLE", 300)
    texts, y = _problem(1400, 2)
    tok = tok_mod.train_tokenizer(texts, vocab_size=300, min_frequency=1)
    cfg = _cfg(tok, 3)
    rows = [wide.bag_rows(tok_mod.encode_all(tok, t), cfg) for t in texts]
    fit = wide_fit.select(cfg, rows[:1200], y[:1200], rows[1200:], y[1200:], progress=False)
    assert fit["val_acc"] > 0.9


def test_train_shows_progress_of_every_step(tmp_path):
    texts, y = _problem(400, 3)
    f = tmp_path / "d.csv"
    f.write_text("text,label\n" + "\n".join(f"{t},c{c}" for t, c in zip(texts, y)) + "\n")
    r = CliRunner().invoke(main, ["train", str(f), "--board", "none", "--out", str(tmp_path / "run"), "--epochs", "1",
                                  "--blocks", "1", "--d-model", "16", "--heads", "2", "--d-ff", "16",
                                  "--vocab-size", "200", "--seq-max", "16"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    for step in ("training the tokenizer", "tokenizing (ids and words)",
                 "wide exit 0: features and C on validation", "wide exit 0 fitted alone", "binarized epoch 1/1"):
        assert step in r.output, step


def test_self_distill_loss_pulls_early_exits_to_the_last():
    torch.manual_seed(0)
    logits = torch.randn(5, 3, 4, requires_grad=True)
    loss = self_distill_loss(logits)
    t = logits[:, -1].detach().softmax(-1)
    want = sum(torch.nn.functional.cross_entropy(logits[:, b], t) for b in range(2)) / 2
    assert torch.allclose(loss, want)
    loss.backward()
    assert logits.grad[:, -1].abs().sum() == 0 and logits.grad[:, 0].abs().sum() > 0
    assert self_distill_loss(torch.zeros(2, 1, 3)).item() == 0.0
