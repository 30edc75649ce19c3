"""BEExformer: a binarized transformer encoder with an exit after every block.

Shapes: B sentences, n tokens (<= seq_max), d = d_model, h heads of dh = d / h,
f = d_ff, C classes. Everything that feeds a matrix product is +-1 at inference
(binary=True); binary=False is the full-precision twin of the same architecture.

Embedding   x_i = a_tok * sign(E[t_i]) + a_pos * sign(P[i])            (n, d)
Block b (pre-norm):
  attention  u = sign(LN1(x)); [q k v] = BinLin_qkv(u)                   (n, 3d)
             s_ij = sign(q_i) . sign(k_j) per head, an integer in [-dh, dh]
             p_ij = softmax_j(tau_h * s_ij);  o_i = sum_j p_ij v_j      (n, d)
             x_att = x + BinLin_o(sign(o))
  SLFN       w = sign(LN2(x_att)); [g1 g2 g3 c] = BinLin_slfn(w)         (n, 4d)
             f1 = sigmoid(g1)  forget gate on the block input x (old context)
             f2 = sigmoid(g2)  forget gate on the attended state x_att (new context)
             s  = sigmoid(g3)  selective learning gate on the candidate c
             y  = f1 * x + f2 * x_att + s * c
             (the Selective Learn-Forget Network: two forget gates decide what of
             each context stream is retained, the selective gate what new content is
             learned; with slfn=False, y = x_att: the ablation.)
  feed-fwd   x_out = y + BinLin_down(sign(BinLin_up(sign(LN3(y)))))     (n, d)
  exit b     m = mean_i x_out_i;  logits_b = (W_b LNe_b(m) + c_b) + wide   (C,)
Wide exit 0 (wide=True, beexgen/core/wide.py): over every tokenizer id of the line t_i,
the hashed bigrams of consecutive ids, the hashed words and word pairs of the line,
wide = scale * (sum_i U[t_i] + sum_i G[bucket_i] + sum_j W[word_j] + sum_j P[pair_j])
+ bias with int8 U, G, W, P (fake-quantised in training, straight-through rounding; float
in the full-precision twin). Its logits are exit 0 and are added to every deep exit.
Exits are numbered by the blocks they follow: 0 (wide), 1 .. n_blocks.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from beexgen.core import wide as wide_rules

from .binarize import BinaryLinear, binarize


from .config import DEFAULT_BLOCKS, ModelConfig  # noqa: F401  (the settings live in config.py)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d, self.h, self.binary, self.use_slfn = cfg.d_model, cfg.n_heads, cfg.binary, cfg.slfn
        self.dh = d // cfg.n_heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = BinaryLinear(d, 3 * d, cfg.binary)
        # Attention temperature per head: binary scores are integers in [-dh, dh].
        self.tau = nn.Parameter(torch.full((cfg.n_heads,), self.dh ** -0.5))
        self.out = BinaryLinear(d, d, cfg.binary)
        self.ln2 = nn.LayerNorm(d)
        self.slfn = BinaryLinear(d, 4 * d, cfg.binary) if cfg.slfn else None
        if self.slfn is not None:
            with torch.no_grad():  # start close to a residual block: keep x_att, drop x
                self.slfn.bias[:d].fill_(-2.0)
                self.slfn.bias[d:2 * d].fill_(2.0)
        self.ln3 = nn.LayerNorm(d)
        self.up = BinaryLinear(d, cfg.d_ff, cfg.binary)
        self.down = BinaryLinear(cfg.d_ff, d, cfg.binary)
        self.drop = nn.Dropout(cfg.dropout)
        self.attn_drop = nn.Dropout(0.0)  # training only, on the attention weights: TrainConfig.attn_dropout

    def act(self, x):
        return binarize(x) if self.binary else x

    def attention(self, x, key_mask):
        B, n, d = x.shape
        q, k, v = self.qkv(self.act(self.ln1(x))).split(d, dim=-1)
        heads = lambda t: t.view(B, n, self.h, self.dh).transpose(1, 2)  # (B, h, n, dh)
        q, k, v = heads(self.act(q)), heads(self.act(k)), heads(v)
        scores = (q @ k.transpose(-1, -2)) * self.tau.view(1, -1, 1, 1)
        scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
        o = (self.attn_drop(scores.softmax(-1)) @ v).transpose(1, 2).reshape(B, n, d)
        return x + self.drop(self.out(self.act(o)))

    def forward(self, x, key_mask):
        x_att = self.attention(x, key_mask)
        if self.slfn is not None:
            g1, g2, g3, c = self.slfn(self.act(self.ln2(x_att))).chunk(4, dim=-1)
            y = torch.sigmoid(g1) * x + torch.sigmoid(g2) * x_att + torch.sigmoid(g3) * self.drop(c)
        else:
            y = x_att
        hdn = self.up(self.act(self.ln3(y)))
        hdn = binarize(hdn) if self.binary else F.gelu(hdn)
        return y + self.drop(self.down(hdn))


class ExitHead(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln = nn.LayerNorm(cfg.d_model)
        self.fc = nn.Linear(cfg.d_model, cfg.n_classes)

    def forward(self, x, lengths):
        m = x.sum(dim=1) / lengths[:, None].to(x.dtype)  # padded rows are zero
        return self.fc(self.ln(m))


class RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, g):
        return g


class WideExit(nn.Module):
    """Exit 0: a linear head over the bag of ids, hashed id bigrams, hashed words and hashed
    word pairs (beexgen/core/wide.py).

    Input: a flat LongTensor of rows of the stacked table [U; G; W; P] (wide.bag_rows) with
    bag offsets, as nn.EmbeddingBag takes them. Table (rows, C'), one int8 scale per column;
    C' = 1 for two classes, whose logits are (0, z)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.quantize = cfg.binary
        self.n_classes = cfg.n_classes
        rows = sum(r for _, r in wide_rules.layout(cfg.to_dict()))
        cols = wide_rules.columns(cfg.n_classes)
        self.table = nn.Parameter(torch.zeros(rows, cols))
        self.bias = nn.Parameter(torch.zeros(cols))

    def weight(self) -> torch.Tensor:
        if not self.quantize:
            return self.table
        scale = (self.table.detach().abs().amax(dim=0) / wide_rules.INT8_MAX).clamp_min(1e-8)
        return RoundSTE.apply(self.table / scale) * scale

    def forward(self, feats: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        z = F.embedding_bag(feats, self.weight(), offsets, mode="sum") + self.bias
        if z.shape[-1] != self.n_classes:           # two classes, one column: logits (0, z)
            z = torch.cat([torch.zeros_like(z), z], dim=-1)
        return z


class BEExformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        init = 0.5 if cfg.binary else 0.02
        self.tok = nn.Parameter(torch.empty(cfg.vocab_size, d).uniform_(-init, init))
        self.pos = nn.Parameter(torch.empty(cfg.seq_max, d).uniform_(-init, init))
        self.a_tok = nn.Parameter(torch.ones(d))
        self.a_pos = nn.Parameter(torch.full((d,), 0.5))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_blocks))
        self.exits = nn.ModuleList(ExitHead(cfg) for _ in range(cfg.n_blocks))
        self.wide = WideExit(cfg) if cfg.wide else None
        self.drop = nn.Dropout(cfg.dropout)

    def embed(self, ids):
        n = ids.shape[1]
        if self.cfg.binary:
            return self.a_tok * binarize(self.tok[ids]) + self.a_pos * binarize(self.pos[:n])
        return self.tok[ids] + self.pos[:n]

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor, wide=None, n_blocks: int | None = None):
        """ids (B, n) padded with 0, lengths (B,), wide = (feats, offsets) of the wide exit
        (required when cfg.wide) -> logits of every exit (B, n_exits, C): exit 0 first."""
        n = ids.shape[1]
        valid = torch.arange(n, device=lengths.device)[None, :] < lengths[:, None]  # (B, n)
        x = self.drop(self.embed(ids)) * valid[..., None]
        outs, w = [], 0.0
        if self.wide is not None:
            if wide is None:
                raise ValueError("this model has a wide exit: pass its features (trainer.wide_batch)")
            w = self.wide(*wide)
            outs.append(w)
        for block, head in list(zip(self.blocks, self.exits))[: n_blocks or len(self.blocks)]:
            x = block(x, valid) * valid[..., None]
            outs.append(head(x, lengths) + w)
        return torch.stack(outs, dim=1)

    @torch.no_grad()
    def clip_(self):
        if self.cfg.binary:
            self.tok.clamp_(-1.0, 1.0)
            self.pos.clamp_(-1.0, 1.0)
            for m in self.modules():
                if isinstance(m, BinaryLinear):
                    m.clip_()
