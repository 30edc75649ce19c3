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
import dataclasses
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from beexgen.core import cost
from beexgen.core import wide as wide_rules

from . import data as data_mod
from . import tokenizer as tok_mod
from . import wide_fit
from .config import TWIN_DIR, ModelConfig, TrainConfig
from .model import BEExformer


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
    ids: list[list[int]]          # block input ids ([CLS] + head/tail), one list per text
    all_ids: list[list[int]]      # every tokenizer id of each text (the wide exit's bag)

    def part(self, name: str) -> tuple[list[list[int]], np.ndarray, list[int]]:
        idx = list(getattr(self.split, name))
        return [self.ids[i] for i in idx], self.labels[idx], idx

    def all_part(self, name: str) -> list[list[int]]:
        return [self.all_ids[i] for i in getattr(self.split, name)]


def soft_routing_loss(logits: torch.Tensor, y: torch.Tensor, weights: torch.Tensor,
                      label_smoothing: float = 0.0, wide: bool = False, alone: float = 0.0) -> torch.Tensor:
    """sum_e w_e * CE(exit_e, y) / sum_e w_e over the exits (B, E, C).

    With a wide exit (column 0) and alone > 0, each deep exit also pays alone * w_e *
    CE(head_e, y) for its head without the wide logits (head_e = exit_e - exit_0): the
    wide exit alone already fits the training split, so without this term a deep head
    only learns a residual of a nearly-zero training loss and adds nothing on held-out
    data; with it, the head must classify on its own and the sum acts as a fusion."""
    per_exit = torch.stack([F.cross_entropy(logits[:, b], y, label_smoothing=label_smoothing)
                            for b in range(logits.shape[1])])
    loss = (weights * per_exit).sum()
    if wide and alone > 0 and logits.shape[1] > 1:
        heads = logits[:, 1:] - logits[:, :1]
        own = torch.stack([F.cross_entropy(heads[:, b], y, label_smoothing=label_smoothing)
                           for b in range(heads.shape[1])])
        loss = loss + alone * (weights[1:] * own).sum()
    return loss / weights.sum()


def self_distill_loss(logits: torch.Tensor) -> torch.Tensor:
    """LAMA's self-supervised exits (arXiv 2407.21082): the mean over the early exits (B, E, C)
    of the cross-entropy against the last exit's own predicted distribution (no gradient
    into the last exit through its targets): needs no labels."""
    if logits.shape[1] < 2:
        return logits.new_zeros(())
    target = logits[:, -1].detach().softmax(-1)
    return torch.stack([F.cross_entropy(logits[:, b], target) for b in range(logits.shape[1] - 1)]).mean()


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


def wide_rows(cfg: ModelConfig, ids: list[list[int]], all_ids: list[list[int]] | None) -> list[np.ndarray] | None:
    """Per text, the rows of the wide table it sums (beexgen/core/wide.py); None without a wide exit.
    all_ids None: the texts were not cut, their bag is ids[1:] (after [CLS])."""
    if not cfg.wide:
        return None
    bags = all_ids if all_ids is not None else [s[1:] for s in ids]
    c = cfg.to_dict()
    return [wide_rules.bag_rows(b, c) for b in bags]


def wide_batch(rows: list[np.ndarray] | None, sel) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(flat feature rows, bag offsets) of the texts `sel`, for WideExit."""
    if rows is None:
        return None
    parts = [rows[i] for i in sel]
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])[:-1]])
    flat = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    return torch.from_numpy(flat.astype(np.int64)), torch.from_numpy(offsets.astype(np.int64))


def batches(ids: list[list[int]], labels: np.ndarray, bs: int, rng: np.random.Generator | None,
            wide: list[np.ndarray] | None = None):
    """(ids, lengths, labels, selection, wide features) per batch."""
    lengths = np.array([len(s) for s in ids])
    for sel in batch_order(lengths, bs, rng):
        n = max(len(ids[i]) for i in sel)
        x = torch.zeros((len(sel), n), dtype=torch.long)
        for r, i in enumerate(sel):
            x[r, : len(ids[i])] = torch.tensor(ids[i])
        lengths = torch.tensor([len(ids[i]) for i in sel])
        yield x, lengths, torch.from_numpy(labels[sel]).long(), sel, wide_batch(wide, sel)


@torch.no_grad()
def predict_exits(model: BEExformer, ids: list[list[int]], bs: int = 256,
                  all_ids: list[list[int]] | None = None) -> np.ndarray:
    """Eval-mode logits of every exit, (N, E, C) float32 (exit 0 first with a wide exit)."""
    model.eval()
    out = np.zeros((len(ids), model.cfg.n_exits, model.cfg.n_classes), dtype=np.float32)
    rows = wide_rows(model.cfg, ids, all_ids)
    dev = next(model.parameters()).device
    for x, lengths, _, sel, w in batches(ids, np.zeros(len(ids), dtype=np.int64), bs, None, rows):
        out[sel] = model(*to_device(dev, x, lengths, w)).cpu().numpy()
    return out


def to_device(dev: torch.device, x, lengths, w):
    """A batch's model inputs on `dev` (the wide features w may be None)."""
    if dev.type == "cpu":
        return x, lengths, w
    return x.to(dev), lengths.to(dev), (None if w is None else tuple(t.to(dev) for t in w))


def pick_device(name: str) -> torch.device:
    """--device: auto is cuda, then mps, then the CPU. Training only: the export and its
    deploy mirror (train/deploy.py) run on the CPU, so the artifact is the same kind of
    object whatever trained it, and C == PyTorch is checked on the CPU."""
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise data_mod.DataError("--device cuda: this torch has no CUDA device (torch.cuda.is_available() is False)")
    if name == "mps" and not has_mps:
        raise data_mod.DataError("--device mps: no Apple GPU here (torch.backends.mps.is_available() is False)")
    return torch.device(name)


def _check_wire_labels(dataset: str, classes: list[str]) -> None:
    """Refuse, before training, class names that the serial line cannot tell apart (the
    export would refuse them after training: beexgen/core/validate.py)."""
    from beexgen.core.protocol import wire_label

    seen: dict[str, str] = {}
    for c in classes:
        w = wire_label(c)
        if w in seen:
            raise data_mod.DataError(f"{dataset}: labels {seen[w]!r} and {c!r} are both sent over the serial "
                                     f"line as {w!r}: rename one in the data file")
        seen[w] = c


def run_data_file(spec: str | None, run_dir: Path) -> str | None:
    """Where a run reads a local data file: its copy in RUN/data/ (made on first use, when
    training), so the run works from any directory and after being moved or copied. An
    offline set's name, a `datasets` name or None stays as it is."""
    if not spec or spec in data_mod.OFFLINE:
        return spec
    copy = run_dir / "data" / Path(spec).name
    if copy.is_file():
        return str(copy)
    if Path(spec).is_file():
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(spec, copy)
        return str(copy)
    return spec


def prepare_data(cfg: TrainConfig, run_dir: Path, progress: bool = True):
    cfg = dataclasses.replace(cfg, dataset=run_data_file(cfg.dataset, run_dir),
                              test_file=run_data_file(cfg.test_file, run_dir))
    ds = data_mod.load_dataset(cfg.dataset, text_column=cfg.text_column,
                               label_column=cfg.label_column, progress=progress)
    n_own = None
    if cfg.test_file:       # the test split is a file of its own, appended after DATASET's examples
        test = data_mod.load_dataset(cfg.test_file, text_column=cfg.text_column,
                                     label_column=cfg.label_column, progress=progress)
        n_own = len(ds.texts)
        ds = data_mod.with_test_set(ds, test)
    classes = data_mod.class_names(ds)
    _check_wire_labels(cfg.dataset, classes)
    labels = np.array([classes.index(l) for l in ds.labels], dtype=np.int64)
    split_path = run_dir / "split.json"
    if split_path.exists():
        split = data_mod.load_split(split_path, ds)
    else:
        split = data_mod.split_dataset(ds, cfg.seed, val_frac=cfg.val_frac, test_frac=cfg.test_frac,
                                       fixed_test_from=n_own)
        data_mod.save_split(split, split_path, ds)
    return ds, classes, labels, split


def param_groups(model: BEExformer, weight_decay: float, lr: float, wide_lr: float) -> list[dict]:
    """Weight decay on matrices only (not on norms, biases, scales, temperatures); the
    wide exit in a group of its own (its L2 is in the loss, its learning rate lr * wide_lr)."""
    wide = set(model.wide.parameters()) if model.wide is not None else set()
    deep = [p for p in model.parameters() if p not in wide]
    groups = [{"params": [p for p in deep if p.ndim >= 2], "weight_decay": weight_decay},
              {"params": [p for p in deep if p.ndim < 2], "weight_decay": 0.0}]
    if wide:
        groups.append({"params": list(model.wide.parameters()), "weight_decay": 0.0, "lr": lr * wide_lr})
    return groups


def size_budget(cfg: TrainConfig) -> int:
    """Bytes the artifact may use: --size-budget, set from --board by the CLI (codegen/fit.py)."""
    return cfg.size_budget if cfg.size_budget is not None else cost.ARTIFACT_BUDGET


def model_config(cfg: TrainConfig, tok, n_classes: int) -> ModelConfig:
    """The model's configuration: cfg.model overrides, the vocabulary and classes from the
    data, and (unless given) the word and pair buckets that fill the artifact up to the
    size budget (beexgen/core/cost.py budget_word_buckets)."""
    over = dict(cfg.model)
    mcfg = ModelConfig(vocab_size=tok.get_vocab_size(), n_classes=n_classes, binary=not cfg.full_precision,
                       **{**over, "word_buckets": over.get("word_buckets", 0),
                          "pair_buckets": over.get("pair_buckets", 0)})
    if mcfg.wide and over.get("word_buckets") is None and over.get("pair_buckets") is None:
        mcfg.word_buckets, mcfg.pair_buckets = cost.budget_word_buckets(
            mcfg.to_dict(), tok_mod.vocab_bytes(tok), size_budget(cfg))
    return mcfg


def prepare(cfg: TrainConfig, progress: bool = True, rng: np.random.Generator | None = None):
    """The run directory's data half: split.json and tokenizer.json (made once, reused
    after), so that other runs (the twin, ablations) can share them before training.
    Returns (data set, classes, labels, split, training indices, tokenizer)."""
    run_dir = Path(cfg.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    rng = rng if rng is not None else np.random.default_rng(cfg.seed)
    ds, classes, labels, split = prepare_data(cfg, run_dir, progress)
    train_idx = list(split.train)
    if cfg.max_train:
        train_idx = sorted(rng.permutation(train_idx)[: cfg.max_train].tolist())
    tokp = run_dir / "tokenizer.json"
    if tokp.exists():
        tok = tok_mod.load_tokenizer(tokp)
    else:
        if progress:
            tqdm.write(f"training the tokenizer on {len(train_idx):,} texts (vocabulary {cfg.vocab_size:,})")
        tok = tok_mod.train_tokenizer([ds.texts[i] for i in train_idx], vocab_size=cfg.vocab_size,
                                      min_frequency=cfg.min_frequency)
        tok_mod.save_tokenizer(tok, tokp)
    return ds, classes, labels, split, train_idx, tok


SHARED_DATA = ("split.json", "tokenizer.json")   # what sibling runs share to see the same data and ids


def share_data(src: str | Path, dst: str | Path) -> None:
    """Give run directory dst the split and tokenizer of src (made by `prepare` or `train`),
    so the two runs train and test on the same sentences with the same ids."""
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    for f in SHARED_DATA:
        shutil.copyfile(Path(src) / f, dst / f)


def twin_config(cfg: TrainConfig) -> TrainConfig:
    """The full-precision twin of a run: same settings, binarization off, in RUN/twin."""
    return dataclasses.replace(cfg, out=str(Path(cfg.out) / TWIN_DIR), full_precision=True)


def train_twin(cfg: TrainConfig, progress: bool = True) -> Path:
    """Train the full-precision twin of the (already prepared or trained) run cfg.out."""
    twin = twin_config(cfg)
    share_data(cfg.out, twin.out)
    return train(twin, progress)


def train(cfg: TrainConfig, progress: bool = True, on_epoch=None) -> Path:
    """on_epoch(epoch, record): called after each epoch's validation with the history
    record (val_acc by exit); it may raise to stop training (e.g. `beexgen tune` pruning)."""
    run_dir = Path(cfg.out)
    torch.set_num_threads(max(1, cfg.threads))
    torch.manual_seed(cfg.seed)
    dev = pick_device(cfg.device)
    rng = np.random.default_rng(cfg.seed)
    ds, classes, labels, split, train_idx, tok = prepare(cfg, progress, rng)

    mcfg = model_config(cfg, tok, len(classes))
    # encode only what this run reads: --max-train may keep a small part of a big file
    todo = sorted({*train_idx, *split.val})
    all_ids = {i: tok_mod.encode_all(tok, ds.texts[i])
               for i in tqdm(todo, desc="tokenizing (ids and words)", unit="text",
                             disable=not progress, leave=False, mininterval=1.0)}
    ids = {i: tok_mod.model_ids(a, mcfg.seq_max) for i, a in all_ids.items()}
    report_lengths(list(all_ids.values()), mcfg.seq_max, progress)

    tr_ids, tr_y = [ids[i] for i in train_idx], labels[train_idx]
    va_ids, va_y = [ids[i] for i in split.val], labels[list(split.val)]
    tr_all = [all_ids[i] for i in train_idx]
    va_all = [all_ids[i] for i in split.val]
    fit = None
    if mcfg.wide and cfg.wide_prefit:       # the wide exit's features and C, on validation
        full = mcfg.to_dict()
        if progress:
            tqdm.write("fitting the wide exit 0 alone: " + ", ".join(f"{n} {r:,}" for n, r in wide_rules.layout(full))
                       + f" rows x {wide_rules.columns(mcfg.n_classes)} columns; features and C on validation")
        fit = wide_fit.select(full, wide_rows(mcfg, tr_ids, tr_all), tr_y, wide_rows(mcfg, va_ids, va_all), va_y,
                              c=None if cfg.wide_l2 is None else 1.0 / (2.0 * cfg.wide_l2 * len(tr_y)),
                              seed=cfg.seed, progress=progress,
                              choose=not any(cfg.model.get(k) is not None for k in wide_fit.FEATURE_SETTINGS))
        mcfg = ModelConfig(**{**full, **fit["config"]})
        if progress:
            tqdm.write(f"wide exit 0 fitted alone: {', '.join(f'{n} {r:,}' for n, r in wide_rules.layout(mcfg.to_dict()))}"
                       f" rows, C = {fit['C']:.3g}, validation accuracy {fit['val_acc']:.4f}")
    (run_dir / "config.json").write_text(json.dumps(
        {"train": asdict(cfg), "model": mcfg.to_dict(), "classes": classes}, indent=2) + "\n")

    model = BEExformer(mcfg)
    for block in model.blocks:
        block.attn_drop.p = cfg.attn_dropout
    targets = distiller = t_emb = None
    if cfg.distill > 0 or cfg.transfer > 0:
        tr_ids, tr_all, tr_y, targets, t_emb = teacher_data(cfg, run_dir, ds, tok, mcfg, labels, train_idx,
                                                            list(split.val), len(classes), tr_ids, tr_all, progress)
        if cfg.distill > 0:
            from .teacher import Distiller
            distiller = Distiller(model, t_emb.shape[1])
    tr_wide = wide_rows(mcfg, tr_ids, tr_all)
    weights = torch.tensor(cfg.exit_weights or [1.0] * mcfg.n_exits, dtype=torch.float32)
    if len(weights) != mcfg.n_exits:
        raise ValueError(f"--exit-weights: {len(weights)} weights for {mcfg.n_exits} exits")

    wide_l2 = 0.0
    if model.wide is not None:
        if fit is not None:
            wide_fit.load_into(model.wide, fit)
            wide_l2 = fit["l2"]
        else:
            wide_l2 = cfg.wide_l2 or 0.0
    model.to(dev)
    if distiller is not None:
        distiller.to(dev)
    weights = weights.to(dev)
    if progress and dev.type != "cpu":
        tqdm.write(f"training on {dev} (the export and its deploy mirror run on the CPU)")
    wd = cfg.weight_decay if mcfg.binary else 0.01
    opt = torch.optim.AdamW(param_groups(model, wd, cfg.lr, cfg.wide_lr)
                            + ([{"params": list(distiller.parameters()), "weight_decay": 0.0}] if distiller else []),
                            lr=cfg.lr)
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
        bar = tqdm(batches(tr_ids, tr_y, cfg.batch_size, rng, tr_wide), total=steps_per_epoch,
                   desc=f"{kind} epoch {epoch}/{epochs}", disable=not progress, leave=False)
        losses, rep_losses = [], []
        for x, lengths, y, sel, w in bar:
            if cfg.token_dropout > 0:  # word dropout: [CLS] (position 0) and padding stay
                hit = torch.rand(x.shape) < cfg.token_dropout
                hit[:, 0] = False
                x = torch.where(hit & (x != 0), torch.full_like(x, tok_mod.SPECIALS.index(tok_mod.UNK)), x)
            if targets is not None:  # transfer set: soft targets (cross_entropy takes probabilities)
                y = torch.from_numpy(targets[sel])
            x, lengths, w = to_device(dev, x, lengths, w)
            y = y.to(dev)
            out = model(x, lengths, w)
            loss = soft_routing_loss(out, y, weights, cfg.label_smoothing,
                                     wide=model.wide is not None, alone=cfg.deep_alone)
            if cfg.self_distill > 0:
                loss = loss + cfg.self_distill * self_distill_loss(out)
            if distiller is not None:
                rep = distiller.loss(torch.from_numpy(t_emb[sel]).to(dev))
                rep_losses.append(rep.item())
                loss = loss + cfg.distill * rep
            if wide_l2:
                loss = loss + wide_fit.penalty(model.wide, wide_l2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            model.clip_()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
        va_logits = predict_exits(model, va_ids, all_ids=va_all)
        acc = (va_logits.argmax(-1) == va_y[:, None]).mean(0)
        score = float(acc.mean())
        rec = {"epoch": epoch, "loss": float(np.mean(losses)), "val_acc": [round(float(a), 4) for a in acc],
               "seconds": round(time.time() - t0, 1)}
        if rep_losses:
            rec["distill_loss"] = float(np.mean(rep_losses))
        with hist_path.open("a") as fh:
            fh.write(json.dumps(rec) + "\n")
        mark = ""
        if score > best:
            best, mark = score, " *"
            torch.save({"model_config": mcfg.to_dict(),
                        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                        "classes": classes, "epoch": epoch, "val_acc": rec["val_acc"]},
                       run_dir / "checkpoint.pt")
        if progress:
            accs = " ".join(f"{a:.3f}" for a in acc)
            left = (time.time() - t0) / epoch * (epochs - epoch)
            tqdm.write(f"{kind} epoch {epoch:2d}/{epochs}  loss {rec['loss']:.4f}  val acc by exit [{accs}]{mark}"
                       f"  {time.time() - t0:.0f} s, about {left / 60:.1f} min left")
        if on_epoch is not None:
            on_epoch(epoch, rec)
    return run_dir


def teacher_data(cfg: TrainConfig, run_dir: Path, ds, tok, mcfg: ModelConfig, labels, train_idx, val_idx,
                 n_classes: int, tr_ids, tr_all, progress: bool):
    """The training rows with a teacher (train/teacher.py): the training texts, then the
    transfer set's augmented texts; their hard labels (the argmax of the targets), soft
    targets (None without a transfer set) and teacher embeddings."""
    from . import teacher
    bag = lambda texts: [wide_rules.bag_rows(tok_mod.encode_all(tok, s), mcfg.to_dict()) for s in texts]
    t = teacher.prepare(cfg, run_dir, ds.texts, labels, train_idx, val_idx, n_classes, progress,
                        bag=bag, n_rows=sum(r for _, r in wide_rules.layout(mcfg.to_dict())))
    tr_y = labels[train_idx]
    targets = None
    if cfg.transfer > 0:
        aug_all = [tok_mod.encode_all(tok, s) for s in t["texts"]]
        tr_ids = tr_ids + [tok_mod.model_ids(a, mcfg.seq_max) for a in aug_all]
        tr_all = tr_all + aug_all
        n = len(train_idx)
        targets = t["soft"].astype(np.float32).copy()
        targets[:n] = cfg.transfer_hard * np.eye(n_classes, dtype=np.float32)[tr_y] + (1 - cfg.transfer_hard) * targets[:n]
        tr_y = targets.argmax(-1)
    return tr_ids, tr_all, tr_y, targets, t["emb"].astype(np.float32)


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
    all_ids = [tok_mod.encode_all(tok, t)
               for t in tqdm(ds.texts, desc="tokenizing", unit="text", disable=not progress or len(ds.texts) < 20000)]
    ids = [tok_mod.model_ids(a, model.cfg.seq_max) for a in all_ids]
    return Run(path, cfg, model, tok, classes, ds.texts, labels, split, ids, all_ids)


def length_report(all_ids: list[list[int]], seq_max: int) -> dict:
    """How many texts the blocks see cut (more than seq_max - 1 ids; the wide exit sees all)."""
    n = np.array([len(a) for a in all_ids], dtype=np.int64)
    over = n > seq_max - 1
    return {"texts": int(n.size), "over_seq_max": int(over.sum()), "seq_max": int(seq_max),
            "mean_ids": float(n.mean()) if n.size else 0.0, "max_ids": int(n.max()) if n.size else 0,
            "p95_ids": float(np.percentile(n, 95)) if n.size else 0.0,
            "mean_ids_over": float(n[over].mean()) if over.any() else 0.0}


def report_lengths(all_ids, seq_max: int, progress: bool) -> dict:
    rep = length_report(all_ids, seq_max)
    if progress:
        msg = (f"texts: {rep['texts']:,}, ids per text mean {rep['mean_ids']:.1f}, p95 {rep['p95_ids']:.0f}, "
               f"max {rep['max_ids']}; {rep['over_seq_max']:,} exceed seq_max - 1 = {seq_max - 1}")
        if rep["over_seq_max"]:
            msg += (f" (mean {rep['mean_ids_over']:.0f} ids: the blocks see their first {(seq_max - 1) // 2} "
                    f"and last {seq_max - 1 - (seq_max - 1) // 2}, the wide exit all of them)")
        tqdm.write(msg)
    return rep
