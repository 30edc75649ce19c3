"""Research script, not part of the product: the trec6 ablations behind issue #2's note.

Trains one variant of the BEExformer on an existing run's split and tokenizer (default:
runs/bench/trec6, made by `beexgen bench`) and prints validation and test accuracy of
every exit. Variants that change the model are patched in here, so the product's code
stays as it is; the ones marked "not deployable" have no C counterpart.

    python scripts/trec6_ablations.py VARIANT [--run runs/bench/trec6] [--set key=value ...]

    python scripts/trec6_ablations.py default
    python scripts/trec6_ablations.py default --set lr=0.005
    python scripts/trec6_ablations.py default --set batch_size=32 --set steps=3000
    python scripts/trec6_ablations.py default --set model.n_heads=2
    python scripts/trec6_ablations.py distill --set distill_weight=0.9 --set distill_temp=6
    python scripts/trec6_ablations.py float-activations

--set takes TrainConfig fields (model.X for ModelConfig fields); values are JSON.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from beexgen.train import binarize as B
from beexgen.train import model as M
from beexgen.train import trainer as T
from beexgen.train.binarize import binarize


# --------------------------------------------------------------------------- variants

def learnable_scale():
    """alpha per output channel is its own parameter (init mean|W|), not mean|W| itself."""
    init = B.BinaryLinear.__init__

    def new_init(self, n_in, n_out, binary=True):
        init(self, n_in, n_out, binary)
        self.scale = nn.Parameter(self.weight.detach().abs().mean(dim=1).clone())
    B.BinaryLinear.__init__ = new_init
    B.BinaryLinear.alpha = lambda self: self.scale


def token_scale():
    """a learnt scalar per vocabulary entry multiplies its binary embedding."""
    init = M.BEExformer.__init__

    def new_init(self, cfg):
        init(self, cfg)
        self.tscale = nn.Parameter(torch.ones(cfg.vocab_size, 1))
    M.BEExformer.__init__ = new_init

    def embed(self, ids):
        n = ids.shape[1]
        return self.tscale[ids] * self.a_tok * binarize(self.tok[ids]) + self.a_pos * binarize(self.pos[:n])
    M.BEExformer.embed = embed


def float_embeddings():
    """not deployable: float token embeddings (3500 x 128 float32 = 1.8 MB)."""
    def embed(self, ids):
        return self.tok[ids] + self.a_pos * binarize(self.pos[: ids.shape[1]])
    M.BEExformer.embed = embed


class Act2(nn.Module):
    """two-term residual binarization s1 sign(x) + s2 sign(x - s1 sign(x)): 2x binary MACs."""
    def __init__(self):
        super().__init__()
        self.s1, self.s2 = nn.Parameter(torch.tensor(0.8)), nn.Parameter(torch.tensor(0.4))

    def forward(self, x):
        b1 = binarize(x)
        return self.s1 * b1 + self.s2 * binarize(x - self.s1 * b1)


def _block_activations(kind: str):
    """Replace the activation of every binary layer's input (LN outputs, attention output,
    feed-forward hidden); q and k keep sign. kind: float (GELU in the feed-forward, as the
    twin) or act2."""
    init = M.Block.__init__

    def new_init(self, cfg):
        init(self, cfg)
        if kind == "act2":
            self.acts = nn.ModuleDict({k: Act2() for k in ("ln1", "o", "ln2", "ln3", "hidden")})

    def A(self, name, x):
        if kind == "float":
            return F.gelu(x) if name == "hidden" else x
        return self.acts[name](x)

    def attention(self, x, key_mask):
        Bn, n, d = x.shape
        q, k, v = self.qkv(A(self, "ln1", self.ln1(x))).split(d, dim=-1)
        heads = lambda t: t.view(Bn, n, self.h, self.dh).transpose(1, 2)
        q, k, v = heads(self.act(q)), heads(self.act(k)), heads(v)
        scores = (q @ k.transpose(-1, -2)) * self.tau.view(1, -1, 1, 1)
        scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
        o = (scores.softmax(-1) @ v).transpose(1, 2).reshape(Bn, n, d)
        return x + self.drop(self.out(A(self, "o", o)))

    def forward(self, x, key_mask):
        x_att = self.attention(x, key_mask)
        g1, g2, g3, c = self.slfn(A(self, "ln2", self.ln2(x_att))).chunk(4, dim=-1)
        y = torch.sigmoid(g1) * x + torch.sigmoid(g2) * x_att + torch.sigmoid(g3) * self.drop(c)
        return y + self.drop(self.down(A(self, "hidden", self.up(A(self, "ln3", self.ln3(y))))))

    M.Block.__init__, M.Block.attention, M.Block.forward = new_init, attention, forward


def float_attention_scores():
    """not deployable: q.k in float (q, k not binarized), the rest binary."""
    def attention(self, x, key_mask):
        Bn, n, d = x.shape
        q, k, v = self.qkv(self.act(self.ln1(x))).split(d, dim=-1)
        heads = lambda t: t.view(Bn, n, self.h, self.dh).transpose(1, 2)
        q, k, v = heads(q), heads(k), heads(v)
        scores = ((q @ k.transpose(-1, -2)) * self.dh ** -0.5).masked_fill(~key_mask[:, None, None, :], float("-inf"))
        o = (scores.softmax(-1) @ v).transpose(1, 2).reshape(Bn, n, d)
        return x + self.drop(self.out(self.act(o)))
    M.Block.attention = attention


def progressive(p0: float, p1: float):
    """training activations (1 - lam) x + lam sign(x), lam rising 0 -> 1 between fractions
    p0 and p1 of the optimizer steps; evaluation always uses sign (deploy unchanged)."""
    state = {"step": 0, "total": 1, "lam": 0.0}
    step = torch.optim.AdamW.step

    def new_step(self, *a, **k):
        r = step(self, *a, **k)
        state["step"] += 1
        state["lam"] = min(1.0, max(0.0, (state["step"] / state["total"] - p0) / (p1 - p0)))
        return r
    torch.optim.AdamW.step = new_step
    sched_init = torch.optim.lr_scheduler.LambdaLR.__init__

    def new_sched_init(self, opt, fn, *a, **k):   # the trainer's schedule closes over `total`
        state["total"] = dict(zip(fn.__code__.co_freevars, (c.cell_contents for c in fn.__closure__)))["total"]
        sched_init(self, opt, fn, *a, **k)
    torch.optim.lr_scheduler.LambdaLR.__init__ = new_sched_init

    def act(self, x):
        if not self.training or state["lam"] >= 1.0:
            return binarize(x)
        return (1 - state["lam"]) * x + state["lam"] * binarize(x)

    def forward(self, x, key_mask):
        x_att = self.attention(x, key_mask)
        g1, g2, g3, c = self.slfn(self.act(self.ln2(x_att))).chunk(4, dim=-1)
        y = torch.sigmoid(g1) * x + torch.sigmoid(g2) * x_att + torch.sigmoid(g3) * self.drop(c)
        return y + self.drop(self.down(self.act(self.up(self.act(self.ln3(y))))))
    M.Block.act, M.Block.forward = act, forward


def distill(teacher: Path, weight: float, temp: float):
    """knowledge distillation of every exit towards the twin's final-exit logits
    (Hinton et al. 2015), mixed with the soft-routing loss."""
    t_run = T.load_run(teacher)
    soft, batches = T.soft_routing_loss, T.batches
    current: dict[str, torch.Tensor] = {}   # the teacher's logits of the batch being trained

    def loss(logits, y, weights, label_smoothing=0.0):
        lt = F.log_softmax(current["t"] / temp, dim=-1)
        kd = torch.stack([F.kl_div(F.log_softmax(logits[:, b] / temp, dim=-1), lt, log_target=True,
                                   reduction="batchmean") for b in range(logits.shape[1])])
        kd = temp * temp * (weights * kd).sum() / weights.sum()
        return (1 - weight) * soft(logits, y, weights, label_smoothing) + weight * kd

    def new_batches(ids, labels, bs, rng, wide=None):
        for x, lengths, y, sel, w in batches(ids, labels, bs, rng, wide):
            if rng is not None:   # training batches only
                with torch.no_grad():
                    current["t"] = t_run.model(x, lengths, w)[:, -1]
            yield x, lengths, y, sel, w
    T.batches, T.soft_routing_loss = new_batches, loss


# --------------------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variant", choices=["default", "learnable-scale", "token-scale", "float-embeddings",
                                        "float-attention", "float-activations", "act2", "progressive", "distill"])
    ap.add_argument("--run", default="runs/bench/trec6", help="run whose split and tokenizer to reuse")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--p0", type=float, default=0.2, help="progressive: start of the blend")
    ap.add_argument("--p1", type=float, default=0.6, help="progressive: end of the blend")
    ap.add_argument("--out", help="run directory [a temporary one]")
    a = ap.parse_args()
    src = Path(a.run)
    conf = json.loads((src / "config.json").read_text())["train"]
    over = {k: json.loads(v) for k, v in (s.split("=", 1) for s in a.set)}
    teacher = dict(distill_weight=over.pop("distill_weight", 0.5), distill_temp=over.pop("distill_temp", 2.0))
    for k, v in over.items():
        if k.startswith("model."):
            conf["model"][k[6:]] = v
        else:
            conf[k] = v
    {"learnable-scale": learnable_scale, "token-scale": token_scale, "float-embeddings": float_embeddings,
     "float-attention": float_attention_scores, "float-activations": lambda: _block_activations("float"),
     "act2": lambda: _block_activations("act2"), "progressive": lambda: progressive(a.p0, a.p1),
     "distill": lambda: distill(src / "twin", teacher["distill_weight"], teacher["distill_temp"]),
     "default": lambda: None}[a.variant]()

    torch.set_num_threads(1)
    out = Path(a.out or tempfile.mkdtemp(prefix=f"trec6-{a.variant}-"))
    out.mkdir(parents=True, exist_ok=True)
    for f in ("split.json", "tokenizer.json"):
        shutil.copyfile(src / f, out / f)
    conf["out"] = str(out)
    T.train(T.TrainConfig(**conf), progress=True)
    run = T.load_run(out)
    for part in ("val", "test"):
        ids, y, _ = run.part(part)
        acc = (T.predict_exits(run.model, ids, all_ids=run.all_part(part)).argmax(-1) == y[:, None]).mean(0)
        print(f"{a.variant} {json.dumps(over)} {part} accuracy by exit: {np.round(acc, 4).tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
