"""Does a model of these dimensions fit a board? Answered before training.

The RAM a model needs (activations for seq_max tokens, the line and receive buffers,
the stack) is measured, not estimated: the firmware of an untrained artifact with the
same dimensions (zero weights, a placeholder vocabulary of the same size) is built for
the board with the real toolchain, and its linker map is read. Weights live in flash;
their size is checked again when the trained model is built.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from beexgen.core import artifact as art_mod
from beexgen.core import validate
from beexgen.core.wordpiece import SPECIAL_IDS, SPECIAL_TOKENS

from . import firmware


def placeholder_vocab(vocab_size: int) -> dict[str, int]:
    """[PAD], [UNK], [CLS] and placeholder pieces up to vocab_size ids."""
    n = len(SPECIAL_TOKENS)
    return {**{t: i for i, t in enumerate(SPECIAL_TOKENS)}, **{f"w{i}": i for i in range(n, vocab_size)}}


def placeholder_artifact(model_cfg: dict, tokenizer_json: str, out: Path) -> art_mod.Artifact:
    """An artifact with model_cfg's dimensions, zero weights and the given tokenizer
    (beexgen's pipeline over placeholder_vocab): what RAM depends on, nothing learnt."""
    cfg = dict(model_cfg)
    tensors = {k: np.zeros(shape, dtype=dt) for k, (dt, shape) in validate.expected_tensors(cfg).items()}
    meta = {"config": cfg, "classes": [f"c{i}" for i in range(cfg["n_classes"])],
            "exit_policy": {"name": "confidence",         # non-zero thresholds: in .data, as shipped
                            "thresholds": [0.5] * (cfg["n_blocks"] + int(bool(cfg.get("wide"))) - 1)},
            "h_prior": 0.5,
            "special_ids": dict(SPECIAL_IDS)}
    return art_mod.save(out, meta, tensors, tokenizer_json)


def ram_check(model_cfg: dict, tokenizer_json: str, board_name: str) -> firmware.FirmwareBuild:
    """Build the placeholder firmware; raises firmware.FirmwareTooBig (RAM or stack:
    flash is the trained model's question) and returns the build otherwise."""
    with tempfile.TemporaryDirectory(prefix="beexgen-fit-") as d:
        art = placeholder_artifact(model_cfg, tokenizer_json, Path(d) / "artifact")
        try:
            return firmware.build_firmware(art, board_name, Path(d) / "fw")
        except firmware.FirmwareTooBig as e:
            b = e.build
            if b.ram_used <= b.ram_total and (b.stack.worst is None or b.stack.worst <= b.stack_reserved):
                return b                     # only flash: the placeholder says nothing about it
            raise
