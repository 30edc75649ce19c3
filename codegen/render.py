"""Render the C project of an artifact (numpy + jinja2; never torch).

Jinja renders only what changes with the model or the board: weights, dimensions,
call order, vocabulary tables, status codes, board header and linker script. The
kernels, tokenizer, protocol and drivers are ordinary C files copied as they are.
Rendering is deterministic: the same artifact gives byte-identical files.
"""
from __future__ import annotations

import shutil
from importlib.resources import files
from pathlib import Path

import jinja2
import numpy as np

from beexgen.core import artifact as art_mod
from beexgen.core import cost, numerics, validate, wide
from beexgen.core import slices as slices_mod
from beexgen.core import policy as policy_mod
from beexgen.core.protocol import DESCRIPTIONS, Status, wire_label

TEMPLATE_DIR = Path(str(files("beexgen.firmware_templates")))

# --------------------------------------------------------------------------- filters


def banner(art: art_mod.Artifact, command: str) -> dict:
    """What every generated file's banner names: the command, the format version, the artifact hash."""
    return {"command": command, "format_version": art.meta["format_version"], "hash": art.hash}


def c_string(s: str) -> str:
    """A C string literal holding the UTF-8 bytes of s (octal escapes where needed)."""
    out = []
    for b in s.encode("utf-8"):
        ch = chr(b)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= b < 127 and ch != "?":
            out.append(ch)
        else:
            out.append(f"\\{b:03o}")
    return '"' + "".join(out) + '"'


def c_array(values, per_line: int = 8) -> str:
    """numpy array -> C initialiser lines (4-space indent); a 2-D array gets one braced
    row per line group (for `T name[R][C]`), anything else is flattened.

    uint32 as 0x%08xu, int as decimal, float32 as exact hex-float literals."""
    a = np.asarray(values)
    if a.ndim == 2:
        return ",\n".join("    {\n" + c_array(row, per_line).replace("\n", "\n    ").replace("    ", "        ", 1)
                           + "\n    }" for row in a)
    a = a.reshape(-1)
    if a.dtype == np.float32:
        items = [numerics.c_float(v) for v in a.tolist()]
    elif a.dtype == np.uint32:
        items = [f"0x{v:08x}u" for v in a.tolist()]
    else:
        items = [str(int(v)) for v in a.tolist()]
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return ",\n".join("    " + ln for ln in lines)


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True, autoescape=False)
    env.filters.update(c_float=numerics.c_float, c_array=c_array, c_string=c_string)
    return env


def render_to(env: jinja2.Environment, template: str, out: Path, **ctx) -> Path:
    out.write_text(env.get_template(template).render(**ctx))
    return out


# --------------------------------------------------------------------------- model

C_TYPES = {np.dtype(np.uint32).str: "uint32_t", np.dtype(np.float32).str: "float",
           np.dtype(np.int8).str: "int8_t"}


def c_name(tensor_name: str) -> str:
    """'blocks.0.qkv.bits' -> 'bx_blocks_0_qkv_bits'; 'embed.tok.bits' -> 'bx_tok_bits'."""
    return "bx_" + tensor_name.removeprefix("embed.").replace(".", "_")


def default_special_ids() -> dict[str, int]:
    """The special token ids of train/tokenizer.py (an artifact's meta.json normally has them)."""
    from beexgen.core.wordpiece import SPECIAL_IDS
    return dict(SPECIAL_IDS)


BINARY_LAYERS = ("qkv", "out", "slfn", "up", "down")   # blocks.<b>.<layer>.bits: binary linear layers


def binary_n_in(cfg: dict, name: str) -> int | None:
    """The inputs of a binary linear layer's bits tensor ("blocks.0.down.bits" -> d_ff), else None."""
    parts = name.split(".")
    if len(parts) == 4 and parts[0] == "blocks" and parts[3] == "bits" and parts[2] in BINARY_LAYERS:
        return cfg["d_ff"] if parts[2] == "down" else cfg["d_model"]
    return None


def model_context(art: art_mod.Artifact, command: str, slices: bool = False) -> dict:
    """The model templates' context; slices: binary linear layers in the slices layout
    (beexgen/core/slices.py), for targets whose kernels read it (project.binlinear_slices)."""
    cfg = art.config
    tensors = []
    for name in sorted(art.tensors):
        v = art.tensors[name]
        n_in = binary_n_in(cfg, name)
        if slices and n_in is not None:
            v = slices_mod.to_slices(v, n_in)
        tensors.append({
            "name": name, "cname": c_name(name), "shape": tuple(v.shape), "size": int(v.size),
            "ctype": C_TYPES[v.dtype.str], "data": v.reshape(-1),
        })
    pol = art.policy
    bm, fl = cost.cost_tables(cfg)
    return {
        "banner": banner(art, command),
        "cfg": cfg,
        "slices": slices,
        "special": art.meta.get("special_ids") or default_special_ids(),
        "classes": [wire_label(c) for c in art.classes],
        "policies": [{"name": p.name, "value": p.value, "n_thr": policy_mod.n_thresholds(p, validate.n_exits(cfg))}
                     for p in policy_mod.Policy],
        "policy": {"name": pol["name"].upper(), "thresholds": [np.float32(t) for t in pol["thresholds"]]},
        "tensors": tensors,
        "cost_bmacs": bm, "cost_flops": fl,
        "h_prior": np.float32(art.meta["h_prior"]),
        "wide": wide_context(cfg),
        "constants": sorted(numerics.constants().items()),
    }


def wide_context(cfg: dict) -> dict:
    """The wide exit's sizes and hash constants (beexgen/core/wide.py) for bx_model.h."""
    shift = lambda k: 32 - wide.log2_exact(k) if k else 32
    rows = dict(wide.layout(cfg))
    hexa = lambda v: f"0x{v:08x}"
    return {"shift": shift(cfg.get("bigram_buckets") or 0),
            "word_buckets": cfg.get("word_buckets") or 0, "pair_buckets": cfg.get("pair_buckets") or 0,
            "cols": wide.columns(cfg["n_classes"]), "ids": "wide.uni" in rows,
            "tables": [{"name": n.replace(".", "_"), "rows": rows.get(n, 0)}
                       for n in ("wide.uni", "wide.big", "wide.word", "wide.pair")],
            "hash_a": hexa(wide.HASH_A), "hash_b": hexa(wide.HASH_B), "fnv_offset": hexa(wide.FNV_OFFSET),
            "fnv_prime": hexa(wide.FNV_PRIME), "mix_1": hexa(wide.MIX_1), "mix_2": hexa(wide.MIX_2),
            "flops_per_id": cost.wide_flops_per_id(cfg)}


MODEL_TEMPLATES = ("bx_numerics.h.j2", "bx_model.h.j2", "bx_weights.h.j2", "bx_model_data.c.j2", "bx_forward.c.j2")


def render_model(art: art_mod.Artifact, out_dir: Path, command: str, slices: bool = False) -> list[Path]:
    """bx_numerics.h, bx_model.h (public: dimensions, policies, labels), bx_weights.h
    (private: the model data's declarations), bx_model_data.c and bx_forward.c; slices:
    see model_context."""
    out_dir.mkdir(parents=True, exist_ok=True)
    env = environment()
    ctx = model_context(art, command, slices)
    return [render_to(env, t, out_dir / t.removesuffix(".j2"), **ctx) for t in MODEL_TEMPLATES]


def status_context() -> dict:
    return {"statuses": [{"name": s.name, "value": int(s), "description": DESCRIPTIONS[s]} for s in Status]}


def render_status(out_dir: Path) -> Path:
    """bx_status.h from beexgen.core.protocol.Status (one source for C and Python)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return render_to(environment(), "bx_status.h.j2", out_dir / "bx_status.h", **status_context())


def copy_sources(names: list[str], out_dir: Path) -> list[Path]:
    out = []
    for name in names:
        src = TEMPLATE_DIR / name
        if not src.is_file():
            raise FileNotFoundError(f"firmware template {name} is missing from {TEMPLATE_DIR}")
        shutil.copyfile(src, out_dir / name)
        out.append(out_dir / name)
    return out
