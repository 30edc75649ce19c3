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


# --------------------------------------------------------------------------- flash

FLASH_MARGIN = 8 * 1024     # bytes kept free: alignment, vocabulary strings longer than the placeholder's


class BudgetError(ValueError):
    """A model whose fixed part (blocks, embeddings, id bag, vocabulary) alone exceeds the flash budget."""


def no_word_tables(model_cfg: dict) -> dict:
    """model_cfg without the word and pair tables (what fills the budget is left out)."""
    return dict(model_cfg, word_buckets=0, pair_buckets=0)


def firmware_code_bytes(build: firmware.FirmwareBuild, model_cfg: dict, vocab_bytes: int) -> int:
    """Flash of a firmware build that is not the artifact's bytes: code, constants, the
    vocabulary's index and the cost tables (measured on the placeholder build)."""
    from beexgen.core import cost
    return build.flash_used - cost.artifact_bytes(model_cfg, vocab_bytes)


def flash_budget(build: firmware.FirmwareBuild, model_cfg: dict, vocab_bytes: int,
                 margin: int = FLASH_MARGIN) -> int:
    """Bytes the artifact may use on the build's board: its flash - the firmware's code
    (firmware_code_bytes) - margin. `build` is a placeholder build of model_cfg (ram_check)."""
    return build.flash_total - firmware_code_bytes(build, model_cfg, vocab_bytes) - margin


def check_budget(model_cfg: dict, vocab_bytes: int, budget: int, board: str) -> int:
    """The artifact's bytes without the word tables; BudgetError when they exceed budget
    (checked before training: the word tables shrink to fit, nothing else does)."""
    from beexgen.core import cost
    base = cost.artifact_bytes(no_word_tables(model_cfg), vocab_bytes)
    if base > budget:
        raise BudgetError(
            f"the model without its word tables needs {base / 1024:.1f} KB of flash, the budget on {board} is "
            f"{budget / 1024:.1f} KB (its flash - the firmware's code - {FLASH_MARGIN // 1024} KB margin): lower "
            f"--blocks, --d-model, --d-ff or --vocab-size, or pick another --board (checked before training)")
    return base


def board_budget(model_cfg: dict, tokenizer_json: str, vocab_bytes: int, board: str):
    """(flash budget in bytes, the placeholder build) of model_cfg on `board`: builds the
    placeholder firmware without the word tables (ram_check: RAM and stack refused there),
    then check_budget. Raises firmware.FirmwareTooBig or BudgetError."""
    cfg = no_word_tables(model_cfg)
    build = ram_check(cfg, tokenizer_json, board)
    budget = flash_budget(build, cfg, vocab_bytes)
    check_budget(cfg, vocab_bytes, budget, board)
    return budget, build
