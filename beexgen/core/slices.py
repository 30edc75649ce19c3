"""The "slices" layout of a binary linear layer's weights: how the Cortex-M kernels
(firmware_templates/bx_kernels_arm.c) read them, written by codegen for targets with
those kernels (codegen/project.py). Defined here once; the C reads the constants from
the generated bx_numerics.h (numerics.constants()).

A layer W (n_out, n_in) of signs (bit 1 = -1, as artifact.pack_signs) is cut into groups
of ROWS = 32 output rows (the last group padded with +1 rows, which nobody reads). A group
is HEAD + n_in uint32 words:

    word k, k < PLANES   bit plane k of F = n_in - R, R the row's number of -1 weights
    word ZERO = PLANES   0 (what the kernel's column list is padded with)
    word HEAD + j        column j: the 32 rows' weight bits at input j

Bit L ("lane") of every word belongs to row q = 4 (L % 8) + L // 8 of the group: the
order in which the kernel's 8x8 bit transposes hand the lanes back (bx_kernels_arm.c).
F needs PLANES = 10 bits: n_in <= 1023.

Why F. Counting only the inputs of the smaller sign set S (|S| <= n_in / 2) gives
c = the -1 weights of a row among S, and with R known the row's dot product follows
(bx_kernels_arm.c). The kernel adds 2c into bit planes that start at F, so each lane ends
holding Z = F + 2c, and dot = e + s2 * Z with e, s2 fixed per call."""
from __future__ import annotations

import numpy as np

ROWS = 32          # output rows per group (one per bit of a word)
PLANES = 10        # bit planes of F = n_in - R
ZERO = PLANES      # the group's zero word
HEAD = PLANES + 1  # words before the columns
MAX_IN = (1 << PLANES) - 1


def constants() -> dict[str, int]:
    """The layout's C names (bx_numerics.h)."""
    return {"BX_SLICE_ROWS": ROWS, "BX_SLICE_PLANES": PLANES, "BX_SLICE_ZERO": ZERO, "BX_SLICE_HEAD": HEAD}


def lane_of_row(q: np.ndarray | int):
    """The bit (lane) of a group's words that holds row q (0..31) of the group."""
    return 8 * (np.asarray(q) % 4) + np.asarray(q) // 4


def group_words(n_in: int) -> int:
    return HEAD + n_in


def words(n_out: int, n_in: int) -> int:
    """uint32 words of a layer in this layout."""
    return -(-n_out // ROWS) * group_words(n_in)


def to_slices(bits: np.ndarray, n_in: int) -> np.ndarray:
    """Packed rows (n_out, ceil(n_in/32)) uint32 -> the layer in this layout, (words,) uint32."""
    bits = np.asarray(bits, dtype=np.uint32)
    if not 1 <= n_in <= MAX_IN:
        raise ValueError(f"a binary layer with {n_in} inputs: the slices layout holds 1..{MAX_IN}")
    n_out = bits.shape[0]
    g = -(-n_out // ROWS)
    # signs (g*32, n_in) as 0/1, padding rows +1 (bit 0)
    sign = np.zeros((g * ROWS, n_in), dtype=np.uint64)
    unpacked = np.unpackbits(bits.view(np.uint8).reshape(n_out, -1), axis=1, bitorder="little")[:, :n_in]
    sign[:n_out] = unpacked
    f = n_in - sign.sum(axis=1).astype(np.int64)                      # (g*32,)
    lanes = lane_of_row(np.arange(ROWS)).astype(np.uint64)            # row q -> its bit
    out = np.zeros((g, group_words(n_in)), dtype=np.uint64)
    for q in range(ROWS):
        rows = sign[q::ROWS]                                          # (g, n_in): row q of every group
        out[:, HEAD:] |= rows << lanes[q]
        fq = f[q::ROWS].astype(np.uint64)
        for k in range(PLANES):
            out[:, k] |= ((fq >> np.uint64(k)) & np.uint64(1)) << lanes[q]
    return out.astype(np.uint32).reshape(-1)
