"""Deploy-mode forward: the model run from the artifact alone, as the C computes it.

Binary products are exact integers (a +-1 float32 matmul whose sums stay far below
2^24 is exact). Every float step is the C's step, in the C's order (train/fmath.py),
so the generated C must reproduce these logits bit for bit. The trained module's
eval() predictions equal these except at near-ties, where a float rounding
difference in the training graph flips the sign of an activation sitting at zero.

Compute accounting lives in beexgen/core/cost.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from beexgen.core import cost
from beexgen.core import wide as wide_rules
from beexgen.core.artifact import Artifact, unpack_signs
from beexgen.core.policy import column_of_exit, exit_of_column

from . import fmath
from .exits import Policy, decide, exit_stats

F32 = torch.float32


def _sign(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x < 0, torch.tensor(-1.0, dtype=F32), torch.tensor(1.0, dtype=F32))


class DeployModel:
    def __init__(self, art: Artifact):
        self.art = art
        c = art.config
        self.d, self.h, self.f = c["d_model"], c["n_heads"], c["d_ff"]
        self.n_blocks, self.seq_max, self.slfn = c["n_blocks"], c["seq_max"], c["slfn"]
        self.n_classes = c["n_classes"]
        self.wide = bool(c.get("wide", False))
        self.first_exit = cost.first_exit(c)          # exit numbers: first_exit .. n_blocks
        self.n_exits = self.n_blocks + int(self.wide)
        self.dh = self.d // self.h
        t = {k: torch.from_numpy(np.array(v)) for k, v in art.tensors.items()}
        self.t = t
        self.tok = torch.from_numpy(unpack_signs(art.tensors["embed.tok.bits"], self.d))
        self.pos = torch.from_numpy(unpack_signs(art.tensors["embed.pos.bits"], self.d))
        self.w = {}
        if self.wide:
            self.wide_table = wide_rules.stack_tables(art.tensors, c)
        for k, v in art.tensors.items():
            if k.endswith(".bits") and k.startswith("blocks."):
                cols = self.f if k.endswith("down.bits") else self.d
                self.w[k[:-5]] = torch.from_numpy(unpack_signs(v, cols))

    # --- kernels (each mirrors one C kernel) ------------------------------------
    def binlin(self, name: str, xb: torch.Tensor) -> torch.Tensor:
        """xb (..., in) +-1 -> alpha * (xb . W^T) + b  (..., out)."""
        dot = xb @ self.w[name].t()
        return dot * self.t[name + ".alpha"] + self.t[name + ".bias"]

    def ln(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return fmath.layer_norm(x, self.t[name + ".weight"], self.t[name + ".bias"])

    def attention(self, b: int, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        p = f"blocks.{b}."
        d, dh = self.d, self.dh
        qkv = self.binlin(p + "qkv", _sign(self.ln(p + "ln1", x)))
        q, k, v = _sign(qkv[..., :d]), _sign(qkv[..., d:2 * d]), qkv[..., 2 * d:]
        tau = self.t[p + "tau"]
        outs = []
        vj = valid[:, None, :]  # (N, 1, n) over keys j
        for hh in range(self.h):
            sl = slice(hh * dh, (hh + 1) * dh)
            s = q[..., sl] @ k[..., sl].transpose(-1, -2)  # (N, n, n) exact integers
            e = fmath.softmax_weights(s, vj, tau[hh], dh)   # by table: the C's bx_attend
            z = fmath.seq_sum(e)
            acc = torch.zeros(q.shape[:-1] + (dh,), dtype=F32)
            vh = torch.where(valid[..., None], v[..., sl], torch.tensor(0.0, dtype=F32))
            for j in range(x.shape[1]):
                acc = acc + e[:, :, j, None] * vh[:, j, None, :]
            outs.append(acc * (fmath.ONE / z)[..., None])
        o = torch.cat(outs, dim=-1)
        return x + self.binlin(p + "out", _sign(o))

    def block(self, b: int, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        p = f"blocks.{b}."
        d = self.d
        x_att = self.attention(b, x, valid)
        if self.slfn:
            g = self.binlin(p + "slfn", _sign(self.ln(p + "ln2", x_att)))
            f1 = fmath.bx_sigmoid(g[..., :d])
            f2 = fmath.bx_sigmoid(g[..., d:2 * d])
            s = fmath.bx_sigmoid(g[..., 2 * d:3 * d])
            y = (f1 * x + f2 * x_att) + s * g[..., 3 * d:]
        else:
            y = x_att
        hdn = _sign(self.binlin(p + "up", _sign(self.ln(p + "ln3", y))))
        return y + self.binlin(p + "down", hdn)

    def exit_logits(self, b: int, x: torch.Tensor, valid: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        p = f"exits.{b}."
        xm = torch.where(valid[..., None], x, torch.tensor(0.0, dtype=F32))
        m = fmath.seq_sum(xm, dim=1) / lengths.to(F32)[:, None]
        e = self.ln(p + "ln", m)  # (N, d)
        w = self.t[p + "fc.weight"]  # (C, d)
        acc = fmath.seq_sum(e[:, None, :] * w[None, :, :])  # (N, C), in order over d
        return acc + self.t[p + "fc.bias"]

    def wide_logits(self, all_ids: list[list[int]]) -> torch.Tensor:
        """Exit 0 (N, C): scale * float32(S) + bias, S the exact integer sums (beexgen/core/wide.py);
        two classes have one column z and logits (0, z)."""
        s = np.stack([wide_rules.table_sums(a, self.wide_table, self.art.config) for a in all_ids])
        z = torch.from_numpy(s.astype(np.float32)) * self.t["wide.scale"] + self.t["wide.bias"]
        if z.shape[-1] != self.n_classes:
            z = torch.cat([torch.zeros_like(z), z], dim=-1)
        return z

    # --- forward -----------------------------------------------------------------
    @torch.no_grad()
    def forward_ids(self, ids: list[list[int]], all_ids: list[list[int]] | None = None,
                    n_blocks: int | None = None) -> torch.Tensor:
        """Token ids ([CLS] first) of N sentences -> logits of every exit (N, E, C) float32,
        exit 0 (the wide exit) first when the model has one. all_ids: every tokenizer id
        of each text (default ids[1:], right for texts the blocks see whole)."""
        n_blocks = n_blocks or self.n_blocks
        N, n = len(ids), max(len(s) for s in ids)
        idt = torch.zeros((N, n), dtype=torch.long)
        for i, s in enumerate(ids):
            idt[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        lengths = torch.tensor([len(s) for s in ids])
        valid = torch.arange(n)[None, :] < lengths[:, None]
        x = self.t["embed.tok.scale"] * self.tok[idt] + self.t["embed.pos.scale"] * self.pos[:n]
        outs, w = [], None
        if self.wide:
            w = self.wide_logits(all_ids if all_ids is not None else [s[1:] for s in ids])
            outs.append(w)
        for b in range(n_blocks):
            x = self.block(b, x, valid)
            lg = self.exit_logits(b, x, valid, lengths)
            outs.append(lg + w if w is not None else lg)
        return torch.stack(outs, dim=1)

    def forward_batched(self, ids: list[list[int]], all_ids: list[list[int]] | None = None,
                        batch: int = 256) -> torch.Tensor:
        """forward_ids over sentences grouped by length (less padding, same results)."""
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = torch.empty((len(ids), self.n_exits, self.n_classes), dtype=F32)
        for s in range(0, len(order), batch):
            sel = order[s:s + batch]
            out[sel] = self.forward_ids([ids[i] for i in sel],
                                        None if all_ids is None else [all_ids[i] for i in sel])
        return out


@dataclass
class DeployResult:
    logits: np.ndarray      # (N, E, C) every exit's logits
    cls: np.ndarray         # (N, E)
    conf: np.ndarray        # (N, E)
    entropy: np.ndarray     # (N, E)
    first_exit: int = 1     # exit number of column 0: 0 with a wide exit, else 1
    h_prior: float = float("inf")  # entropy before any exit (the entropy rule's H_{-1}, exits.py)

    @property
    def exits(self) -> list[int]:
        """The exit number e of each column (first_exit .. n_blocks)."""
        return exit_of_column(np.arange(self.cls.shape[1]), self.first_exit).tolist()

    def column(self, e) -> np.ndarray:
        """The tensor column of exit number(s) e (core.policy.column_of_exit)."""
        return column_of_exit(e, self.first_exit)

    def exit_of(self, col) -> np.ndarray:
        """The exit number of tensor column(s) col (core.policy.exit_of_column)."""
        return exit_of_column(col, self.first_exit)

    def depth(self, policy: Policy | int, thresholds) -> np.ndarray:
        """Exit number taken by each sentence (= blocks run)."""
        return decide(policy, thresholds, self.conf, self.entropy, cls=self.cls, first_exit=self.first_exit,
                      h_prior=self.h_prior)

    def at_exit(self, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(predicted class, logits at the exit taken) for exit numbers `depth`."""
        rows, col = np.arange(len(depth)), self.column(depth)
        return self.cls[rows, col], self.logits[rows, col]


def run(model: DeployModel, ids: list[list[int]], all_ids: list[list[int]] | None = None) -> DeployResult:
    logits = model.forward_batched(ids, all_ids)
    cls, conf, ent = exit_stats(logits)
    return DeployResult(logits.numpy(), cls, conf, ent, model.first_exit, prior_entropy(model.art))


def prior_entropy(art: Artifact) -> float:
    """H_{-1} of the entropy rule: the entropy of the training class prior, float32, from meta."""
    return float(np.float32(art.meta.get("h_prior", float("inf"))))
