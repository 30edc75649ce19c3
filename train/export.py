"""Freeze a trained BEExformer into the artifact (beexgen/core/artifact.py).

Tensor names and shapes (d = d_model, f = d_ff, h = heads, V = vocab, L = seq_max,
C = classes, W(k) = ceil(k / 32) words):
    embed.tok.bits (V, W(d)) u32     embed.tok.scale (d,)     [pos: (L, W(d)), (d,)]
    blocks.{b}.ln1|ln2|ln3.weight|bias (d,)
    blocks.{b}.qkv.bits (3d, W(d))  .alpha .bias (3d,)        blocks.{b}.tau (h,)
    blocks.{b}.out.bits (d, W(d))   .alpha .bias (d,)
    blocks.{b}.slfn.bits (4d, W(d)) .alpha .bias (4d,)        (absent without SLFN)
    blocks.{b}.up.bits (f, W(d))    .alpha .bias (f,)
    blocks.{b}.down.bits (d, W(f))  .alpha .bias (d,)
    exits.{b}.ln.weight|bias (d,)   exits.{b}.fc.weight (C, d)  exits.{b}.fc.bias (C,)
    wide.uni (V, C') i8 (absent without the id bag)  wide.big (K, C') i8  wide.word (Kw, C') i8
    wide.pair (Kp, C') i8 (each absent when its buckets are 0)  wide.scale (C',)  wide.bias (C',)
                                    (absent without a wide exit; C' = 1 for two classes, else C;
                                     beexgen/core/wide.py)
"""
from __future__ import annotations

import numpy as np
import torch

from beexgen.core import artifact
from beexgen.core import wide as wide_rules

from .model import BEExformer


def special_ids() -> dict[str, int]:
    from beexgen.core.wordpiece import SPECIAL_IDS
    return dict(SPECIAL_IDS)


def _f32(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float32).contiguous().numpy().copy()


def model_tensors(model: BEExformer) -> dict[str, np.ndarray]:
    if not model.cfg.binary:
        raise ValueError("only a binarized model can be exported (this is the full-precision twin)")
    out = {
        "embed.tok.bits": artifact.pack_signs(_f32(model.tok)),
        "embed.tok.scale": _f32(model.a_tok),
        "embed.pos.bits": artifact.pack_signs(_f32(model.pos)),
        "embed.pos.scale": _f32(model.a_pos),
    }
    for b, blk in enumerate(model.blocks):
        p = f"blocks.{b}."
        for ln in ("ln1", "ln2", "ln3"):
            m = getattr(blk, ln)
            out[p + ln + ".weight"], out[p + ln + ".bias"] = _f32(m.weight), _f32(m.bias)
        out[p + "tau"] = _f32(blk.tau)
        for name in ("qkv", "out", "slfn", "up", "down"):
            lin = getattr(blk, name)
            if lin is None:
                continue
            out[p + name + ".bits"] = artifact.pack_signs(_f32(lin.weight))
            out[p + name + ".alpha"] = _f32(lin.alpha())
            out[p + name + ".bias"] = _f32(lin.bias)
    for b, ex in enumerate(model.exits):
        p = f"exits.{b}."
        out[p + "ln.weight"], out[p + "ln.bias"] = _f32(ex.ln.weight), _f32(ex.ln.bias)
        out[p + "fc.weight"], out[p + "fc.bias"] = _f32(ex.fc.weight), _f32(ex.fc.bias)
    if model.wide is not None:
        q, scale = wide_rules.quantize(_f32(model.wide.table))
        out["wide.scale"], out["wide.bias"] = scale, _f32(model.wide.bias)
        base = 0
        for name, rows in wide_rules.layout(model.cfg.to_dict()):
            out[name] = q[base:base + rows]
            base += rows
    return out


def export(model: BEExformer, path, *, classes: list[str], tokenizer_json: str,
           policy: dict, h_prior: float, extra_meta: dict | None = None) -> artifact.Artifact:
    """h_prior: the entropy of the training class prior (the entropy rule's H_{-1})."""
    model.eval()
    meta = {
        "config": model.cfg.to_dict(),
        "classes": list(classes),
        "exit_policy": policy,
        "h_prior": float(np.float32(h_prior)),
        "special_ids": special_ids(),
        **(extra_meta or {}),
    }
    return artifact.save(path, meta, model_tensors(model), tokenizer_json)


from beexgen.core.policy import DEFAULT_POLICY  # noqa: E402  (the shipped exit policy: core/policy.py)


def exit0_unless_blocks_help(policy: dict, res, y) -> dict:
    """The confidence policy that sends every sentence out at exit 0 (threshold 0 there)
    when the wide exit alone is at least as accurate on validation as `policy`: blocks that
    do not help are not run (they stay in the artifact, reachable with another policy)."""
    from beexgen.core.artifact import Policy

    if res.first_exit != 0 or res.cls.shape[1] < 2:
        return policy
    depth = res.depth(Policy[policy["name"].upper()], policy["thresholds"])
    if float((res.cls[:, 0] == y).mean()) < float((res.at_exit(depth)[0] == y).mean()):
        return policy
    return {**policy, "name": "confidence", "thresholds": [0.0] + [1.0] * (res.cls.shape[1] - 2),
            "blocks_help": False}


def export_run(run_dir, out=None, *, policy_name: str = DEFAULT_POLICY, policy: dict | None = None,
               **options) -> artifact.Artifact:
    """Run directory -> artifact (default RUN/artifact), with the exit policy calibrated
    on the validation split unless `policy` is given: `policy_name` with `options`
    (train/policies.py CALIBRATORS: their defaults where not given). The default,
    `confidence`, gives every early exit, exit 0 included, the lowest threshold whose
    leavers provably lose at most `tolerance` accuracy, with probability 1 - delta."""
    from pathlib import Path

    from . import deploy, policies
    from .exits import prior_entropy
    from .trainer import load_run

    policies.calibration_options(policy_name, **options)     # bad options: refused before loading
    run = load_run(run_dir)
    out = Path(out) if out else Path(run_dir) / "artifact"
    tensors = model_tensors(run.model)
    tok_json = run.tokenizer.to_str()
    h_prior = prior_entropy(run.part("train")[1], len(run.classes))
    meta = {"config": run.model.cfg.to_dict(), "classes": run.classes,
            "exit_policy": {"name": "none", "thresholds": []}, "h_prior": h_prior,
            "special_ids": special_ids(), "format_version": artifact.FORMAT_VERSION}
    if policy is None:
        probe = artifact.Artifact(meta, tensors, tok_json)
        ids, y, _ = run.part("val")
        res = deploy.run(deploy.DeployModel(probe), ids, run.all_part("val"))
        policy = policies.calibrate(policy_name, res, y, np.array([len(s) for s in ids]), probe.config, **options)
        if policy_name == DEFAULT_POLICY:
            policy = exit0_unless_blocks_help(policy, res, y)
    extra = {"dataset": run.config.dataset, "seed": run.config.seed,
             "split_sha256": getattr(run.split, "sha256", None)}
    return export(run.model, out, classes=run.classes, tokenizer_json=tok_json, policy=policy,
                  h_prior=h_prior, extra_meta={"source": extra})
