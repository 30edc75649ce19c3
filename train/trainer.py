"""Training loop: data set -> tokenizer -> BEExformer (or its full-precision twin).

A run directory holds everything needed to reproduce and export the run:
    config.json      the training and model configuration
    split.json       the seeded, stratified train/val/test split
    tokenizer.json   the tokenizer, trained on the training split only
    checkpoint.pt    the best model by validation accuracy
    history.jsonl    one line per epoch: loss, validation accuracy of every exit
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from . import data as data_mod
from . import tokenizer as tok_mod
from .model import BEExformer, ModelConfig


@dataclass
class TrainConfig:
    dataset: str
    out: str
    seed: int = 0
    epochs: int | None = None                  # None: derived from `steps`
    steps: int = 1500                          # optimizer-step budget when epochs is None
    batch_size: int = 64
    lr: float = 2e-3
    warmup_frac: float = 0.05
    vocab_size: int = 3500
    min_frequency: int = 2                     # tokenizer: minimum count of a piece
    weight_decay: float = 0.0                  # AdamW on the non-binary parameters
    label_smoothing: float = 0.0
    token_dropout: float = 0.0                 # training: replace a token by [UNK] with this probability
    attn_dropout: float = 0.0                  # training: dropout on the attention weights
    grad_clip: float | None = None             # max global gradient norm
    exit_weights: list[float] | None = None   # soft-routing loss weights, one per exit
    full_precision: bool = False
    text_column: str | None = None
    label_column: str | None = None
    val_frac: float = 0.1
    test_frac: float = 0.1
    max_train: int | None = None               # subsample the training split (tests)
    model: dict = field(default_factory=dict)  # ModelConfig overrides


@dataclass
class Run:
    """A loaded run directory: model, tokenizer, data and split."""
    path: Path
    config: TrainConfig
    model: BEExformer
    tokenizer: object
    classes: list[str]
    texts: list[str]
    labels: np.ndarray
    split: object
    ids: list[list[int]]

    def part(self, name: str) -> tuple[list[list[int]], np.ndarray, list[int]]:
        idx = list(getattr(self.split, name))
        return [self.ids[i] for i in idx], self.labels[idx], idx


def soft_routing_loss(logits: torch.Tensor, y: torch.Tensor, weights: torch.Tensor,
                      label_smoothing: float = 0.0) -> torch.Tensor:
    """sum_b w_b * CE(exit_b, y) / sum_b w_b over the exits (B, E, C)."""
    per_exit = torch.stack([F.cross_entropy(logits[:, b], y, label_smoothing=label_smoothing)
                            for b in range(logits.shape[1])])
    return (weights * per_exit).sum() / weights.sum()


def batch_order(lengths: np.ndarray, bs: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Batches of indices. Training (rng given): shuffle, sort each window of 50
    batches by length (so a batch pads little), then shuffle the batches."""
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[s:s + bs] for s in range(0, len(order), bs)]
    order = rng.permutation(len(lengths))
    window = bs * 50
    out = []
    for s in range(0, len(order), window):
        chunk = order[s:s + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        out += [chunk[i:i + bs] for i in range(0, len(chunk), bs)]
    return [out[i] for i in rng.permutation(len(out))]


def batches(ids: list[list[int]], labels: np.ndarray, bs: int, rng: np.random.Generator | None):
    lengths = np.array([len(s) for s in ids])
    for sel in batch_order(lengths, bs, rng):
        n = max(len(ids[i]) for i in sel)
        x = torch.zeros((len(sel), n), dtype=torch.long)
        for r, i in enumerate(sel):
            x[r, : len(ids[i])] = torch.tensor(ids[i])
        lengths = torch.tensor([len(ids[i]) for i in sel])
        yield x, lengths, torch.from_numpy(labels[sel]).long(), sel


@torch.no_grad()
def predict_exits(model: BEExformer, ids: list[list[int]], bs: int = 256) -> np.ndarray:
    """Eval-mode logits of every exit, (N, E, C) float32."""
    model.eval()
    out = np.zeros((len(ids), model.cfg.n_blocks, model.cfg.n_classes), dtype=np.float32)
    for x, lengths, _, sel in batches(ids, np.zeros(len(ids), dtype=np.int64), bs, None):
        out[sel] = model(x, lengths).numpy()
    return out


def prepare_data(cfg: TrainConfig, run_dir: Path, progress: bool = True):
    ds = data_mod.load_dataset(cfg.dataset, text_column=cfg.text_column,
                               label_column=cfg.label_column, progress=progress)
    classes = data_mod.class_names(ds)
    labels = np.array([classes.index(l) for l in ds.labels], dtype=np.int64)
    split_path = run_dir / "split.json"
    if split_path.exists():
        split = data_mod.load_split(split_path, ds)
    else:
        split = data_mod.split_dataset(ds, cfg.seed, val_frac=cfg.val_frac, test_frac=cfg.test_frac)
        data_mod.save_split(split, split_path, ds)
    return ds, classes, labels, split


def param_groups(model: BEExformer, weight_decay: float) -> list[dict]:
    """Weight decay on matrices only (not on norms, biases, scales, temperatures)."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def train(cfg: TrainConfig, progress: bool = True) -> Path:
    run_dir = Path(cfg.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)

    ds, classes, labels, split = prepare_data(cfg, run_dir, progress)
    train_idx = list(split.train)
    if cfg.max_train:
        train_idx = sorted(rng.permutation(train_idx)[: cfg.max_train].tolist())
    tokp = run_dir / "tokenizer.json"
    if tokp.exists():
        tok = tok_mod.load_tokenizer(tokp)
    else:
        tok = tok_mod.train_tokenizer([ds.texts[i] for i in train_idx], vocab_size=cfg.vocab_size,
                                      min_frequency=cfg.min_frequency)
        tok_mod.save_tokenizer(tok, tokp)

    mcfg = ModelConfig(vocab_size=tok.get_vocab_size(), n_classes=len(classes),
                       binary=not cfg.full_precision, **cfg.model)
    # encode only what this run reads: --max-train may keep a small part of a big file
    ids = {i: tok_mod.encode_for_model(tok, ds.texts[i], mcfg.seq_max) for i in sorted({*train_idx, *split.val})}
    (run_dir / "config.json").write_text(json.dumps(
        {"train": asdict(cfg), "model": mcfg.to_dict(), "classes": classes}, indent=2) + "\n")

    model = BEExformer(mcfg)
    for block in model.blocks:
        block.attn_drop.p = cfg.attn_dropout
    tr_ids, tr_y = [ids[i] for i in train_idx], labels[train_idx]
    va_ids, va_y = [ids[i] for i in split.val], labels[list(split.val)]
    weights = torch.tensor(cfg.exit_weights or [1.0] * mcfg.n_blocks, dtype=torch.float32)
    if len(weights) != mcfg.n_blocks:
        raise ValueError(f"--exit-weights: {len(weights)} weights for {mcfg.n_blocks} exits")

    groups = param_groups(model, cfg.weight_decay) if mcfg.binary else model.parameters()
    opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=0.0 if mcfg.binary else 0.01)
    steps_per_epoch = math.ceil(len(tr_ids) / cfg.batch_size)
    epochs = cfg.epochs or max(1, math.ceil(cfg.steps / steps_per_epoch))
    total = steps_per_epoch * epochs
    warm = max(1, int(cfg.warmup_frac * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))

    best, hist_path = -1.0, run_dir / "history.jsonl"
    hist_path.write_text("")
    kind = "full-precision twin" if cfg.full_precision else "binarized"
    t0 = time.time()
    for epoch in range(1, epochs + 1):
        model.train()
        bar = tqdm(batches(tr_ids, tr_y, cfg.batch_size, rng), total=steps_per_epoch,
                   desc=f"{kind} epoch {epoch}/{epochs}", disable=not progress, leave=False)
        losses = []
        for x, lengths, y, _ in bar:
            if cfg.token_dropout > 0:  # word dropout: [CLS] (position 0) and padding stay
                hit = torch.rand(x.shape) < cfg.token_dropout
                hit[:, 0] = False
                x = torch.where(hit & (x != 0), torch.full_like(x, tok_mod.SPECIALS.index(tok_mod.UNK)), x)
            loss = soft_routing_loss(model(x, lengths), y, weights, cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            model.clip_()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
        va_logits = predict_exits(model, va_ids)
        acc = (va_logits.argmax(-1) == va_y[:, None]).mean(0)
        score = float(acc.mean())
        rec = {"epoch": epoch, "loss": float(np.mean(losses)), "val_acc": [round(float(a), 4) for a in acc],
               "seconds": round(time.time() - t0, 1)}
        with hist_path.open("a") as fh:
            fh.write(json.dumps(rec) + "\n")
        mark = ""
        if score > best:
            best, mark = score, " *"
            torch.save({"model_config": mcfg.to_dict(), "state_dict": model.state_dict(),
                        "classes": classes, "epoch": epoch, "val_acc": rec["val_acc"]},
                       run_dir / "checkpoint.pt")
        if progress:
            accs = " ".join(f"{a:.3f}" for a in acc)
            tqdm.write(f"{kind} epoch {epoch:2d}/{epochs}  loss {rec['loss']:.4f}  val acc by exit [{accs}]{mark}")
    return run_dir


def load_run(path: str | Path, progress: bool = False) -> Run:
    path = Path(path)
    ck = path / "checkpoint.pt"
    if not ck.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint.pt; is this a `beexgen train` run directory?")
    conf = json.loads((path / "config.json").read_text())
    cfg = TrainConfig(**conf["train"])
    state = torch.load(ck, map_location="cpu", weights_only=True)
    model = BEExformer(ModelConfig(**state["model_config"]))
    model.load_state_dict(state["state_dict"])
    model.eval()
    tok = tok_mod.load_tokenizer(path / "tokenizer.json")
    ds, classes, labels, split = prepare_data(cfg, path, progress)
    ids = [tok_mod.encode_for_model(tok, t, model.cfg.seq_max) for t in ds.texts]
    return Run(path, cfg, model, tok, classes, ds.texts, labels, split, ids)
