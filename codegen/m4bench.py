"""Cortex-M4 figures for the bench, as plain dicts: the binary kernel, its int8 peer
(CMSIS-DSP arm_mat_vec_mult_q7), the whole-model int8 estimate and the per-stage profile.

    from beexgen.codegen import m4bench
    m4bench.kernel_figures()          # instructions per 32 binary MACs, per shape and path
    m4bench.q7_figures()              # CMSIS-DSP q7 instructions per shape, ratio to ours
    m4bench.int8_estimate(art)        # int8 model of the same shape: instructions, flash
    m4bench.profile(art, texts)       # instructions per stage of bx_classify, per sentence

Every count is of instructions executed by the arm-none-eabi-gcc build of the real C,
run in unicorn (codegen/m4emu.py: QEMU's CPU, counted by translation block), over whole
calls: the kernel's entry, loops, tails and return. Kernels are built into a small
bench ELF with the firmware's flags (codegen/cflags.py arm_cflags); the profile runs
the firmware ELF itself. Inputs are random (seeded); each measured call's output is
checked bit for bit against the portable reference run on the same emulator, so a
figure is never reported for a kernel that computed something else.
"""
from __future__ import annotations

import json
import os
import struct
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from beexgen.codegen import boards, cflags, project
from beexgen.codegen import firmware as fw_mod
from beexgen.codegen import render
from beexgen.codegen.m4emu import M4



def model_shapes(cfg: dict | None = None) -> tuple[tuple[int, int], ...]:
    """(n_in, n_out) of one block's binary layers (core/validate.py expected_tensors: n_out
    rows of n_in / 32 words), by default the default model's (train/config.py ModelConfig);
    the attention output is left out (its rows are qkv's length: the same cost per row)."""
    from beexgen.core import validate
    from beexgen.train.config import ModelConfig
    cfg = cfg or ModelConfig(vocab_size=1, n_classes=2).to_dict()
    return tuple((shape[1] * 32, shape[0]) for name, (_, shape) in validate.expected_tensors(cfg).items()
                 if name.startswith("blocks.0.") and name.endswith(".bits") and name != "blocks.0.out.bits")


MODEL_SHAPES = model_shapes()   # qkv, slfn, up, down of d_model 128, d_ff 256
BENCH_BOARD = "mps2-an386"   # its core's kernel files (codegen/project.py) and arch flags
KERNEL_SOURCES = tuple(f for f in project.kernel_files(BENCH_BOARD) if f.endswith(".c"))
KERNEL_HEADERS = ("bx_math.h", *(f for f in project.kernel_files(BENCH_BOARD) if f.endswith(".h")))
CACHE = Path(os.environ.get("BEEXGEN_CACHE", Path.home() / ".cache" / "beexgen"))
CMSISDSP_VERSION = "1.10.3"
CMSISDSP_SDIST = f"cmsisdsp-{CMSISDSP_VERSION}.tar.gz"
Q7_SOURCE = "Source/MatrixFunctions/arm_mat_vec_mult_q7.c"


def shape_key(n_in: int, n_out: int) -> str:
    return f"{n_in}x{n_out}"


# --------------------------------------------------------------------------- builds

def _cc(args: list[str], what: str) -> None:
    r = subprocess.run([fw_mod.CC, *args], capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"{what} failed:\n{fw_mod.CC} {' '.join(args)}\n{r.stderr[-4000:]}")


def _bench_cflags(dsp: bool) -> list[str]:
    """The firmware's compiler flags (codegen/cflags.py) without the stack/call-graph
    reports, plus -DBX_USE_DSP for the DSP path."""
    return cflags.arm_cflags(boards.get_board(BENCH_BOARD).arch_flags(), stack_usage=False) + \
        (["-DBX_USE_DSP"] if dsp else [])


def _link_bench(out: Path, objects: list[Path], cflags: list[str]) -> Path:
    """A bare ELF of the objects: code at 0 (flash), data at 0x20000000 (RAM), no start-up:
    unicorn calls its functions directly."""
    _cc([*cflags, "-nostartfiles", "--specs=nano.specs", "-Wl,-Ttext=0x0", "-Wl,-Tdata=0x20000000",
         "-Wl,-e,bx_binlinear", "-o", str(out), *map(str, objects)], "linking the kernel bench")
    return out


def build_kernel_bench(out_dir: str | Path, *, dsp: bool = False, q7: bool = True) -> Path:
    """The kernels (bx_kernels.c + the Cortex-M4 files), and CMSIS-DSP's q7 matrix-vector
    product when q7, compiled with the firmware's flags into out_dir/kernels[_dsp].elf."""
    from beexgen.core import numerics

    out = Path(out_dir)
    src = out / ("src_dsp" if dsp else "src")
    src.mkdir(parents=True, exist_ok=True)
    render.copy_sources(list(KERNEL_SOURCES + KERNEL_HEADERS), src)
    render.render_to(render.environment(), "bx_numerics.h.j2", src / "bx_numerics.h",
                     constants=sorted(numerics.constants().items()))
    cflags = _bench_cflags(dsp)
    objects = []
    for name in KERNEL_SOURCES:
        o = src / (Path(name).stem + ".o")
        _cc([*cflags, f"-I{src}", "-c", "-o", str(o), str(src / name)], f"compiling {name}")
        objects.append(o)
    if q7:
        objects.append(build_q7_object(src, dsp=True))
    return _link_bench(out / ("kernels_dsp.elf" if dsp else "kernels.elf"), objects, cflags)


# --------------------------------------------------------------------------- the int8 peer

def cmsisdsp_sdist(cache: Path = CACHE, fetch: bool = True) -> Path:
    """The cmsisdsp sdist (Apache-2.0), fetched once with pip into the cache."""
    path = Path(cache) / "cmsisdsp" / CMSISDSP_SDIST
    if path.exists() or not fetch:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    import sys
    r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--no-build-isolation",
                        f"cmsisdsp=={CMSISDSP_VERSION}", "-d", str(path.parent)], capture_output=True, text=True)
    if r.returncode or not path.exists():
        raise RuntimeError(f"pip download cmsisdsp=={CMSISDSP_VERSION} failed:\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
    return path


# CMSIS-DSP includes CMSIS-Core's cmsis_compiler.h for the intrinsics; the sdist does not
# ship it. These are the few it uses in arm_mat_vec_mult_q7 and its headers, on top of
# ACLE (arm_acle.h), with the semantics of CMSIS-Core 5's cmsis_gcc.h.
CMSIS_COMPILER_SHIM = """\
/* cmsis_compiler.h: a minimal stand-in for CMSIS-Core's, on ACLE (beexgen m4bench). */
#ifndef CMSIS_COMPILER_SHIM_H
#define CMSIS_COMPILER_SHIM_H
#include <stdint.h>
#include <arm_acle.h>
#ifndef __STATIC_FORCEINLINE
#define __STATIC_FORCEINLINE static inline __attribute__((always_inline))
#endif
#ifndef __STATIC_INLINE
#define __STATIC_INLINE static inline
#endif
#ifndef __ALIGNED
#define __ALIGNED(x) __attribute__((aligned(x)))
#endif
#ifndef __PACKED
#define __PACKED __attribute__((packed))
#endif
#ifndef __RESTRICT
#define __RESTRICT __restrict
#endif
#ifndef __WEAK
#define __WEAK __attribute__((weak))
#endif
#ifndef __ASM
#define __ASM __asm
#endif
#define __SSAT(x, n) __ssat(x, n)
#define __USAT(x, n) __usat(x, n)
#define __CLZ(x) ((uint8_t)((x) == 0U ? 32U : (uint32_t)__builtin_clz(x)))
#define __SXTB16(x) __sxtb16(x)
__STATIC_FORCEINLINE uint32_t __ROR(uint32_t x, uint32_t r)
{
    r %= 32U;
    return r == 0U ? x : (x >> r) | (x << (32U - r));
}
/* as CMSIS-Core: one SXTB16 with its rotate operand for the constant rotations */
__STATIC_FORCEINLINE uint32_t __SXTB16_RORn(uint32_t x, uint32_t r)
{
    uint32_t y;
    if (__builtin_constant_p(r) && (r == 8U || r == 16U || r == 24U))
        __ASM volatile("sxtb16 %0, %1, ROR %2" : "=r"(y) : "r"(x), "i"(r));
    else
        y = __sxtb16(__ROR(x, r));
    return y;
}
#define __SXTAB16(a, b) __sxtab16(a, b)
#define __SMLAD(a, b, c) __smlad(a, b, c)
#define __SMUAD(a, b) __smuad(a, b)
#define __SMLADX(a, b, c) __smladx(a, b, c)
#define __QADD8(a, b) __qadd8(a, b)
#define __QSUB8(a, b) __qsub8(a, b)
#define __QADD16(a, b) __qadd16(a, b)
#define __QSUB16(a, b) __qsub16(a, b)
#define __SHADD16(a, b) __shadd16(a, b)
#define __PKHBT(a, b, s) ((((uint32_t)(a)) & 0x0000FFFFUL) | ((((uint32_t)(b)) << (s)) & 0xFFFF0000UL))
#define __PKHTB(a, b, s) ((((uint32_t)(a)) & 0xFFFF0000UL) | ((((uint32_t)(b)) >> (s)) & 0x0000FFFFUL))
#define __QADD(a, b) __qadd(a, b)
#define __QSUB(a, b) __qsub(a, b)
#endif
"""


def build_q7_object(out_dir: Path, *, dsp: bool = True) -> Path:
    """arm_mat_vec_mult_q7.o from the cmsisdsp sdist, for the Cortex-M4 with the DSP
    extension (ARM_MATH_DSP, as CMSIS-DSP selects it for the Cortex-M4 core)."""
    out = Path(out_dir) / "cmsis"
    if not (out / "Include" / "arm_math.h").exists():
        with tarfile.open(cmsisdsp_sdist()) as tar:
            prefix = f"cmsisdsp-{CMSISDSP_VERSION}/"
            want = ("Include/", "PrivateInclude/", Q7_SOURCE)
            members = [m for m in tar.getmembers() if m.name.startswith(prefix)
                       and m.name[len(prefix):].startswith(want) and (m.isfile() or m.isdir())]
            for m in members:
                m.name = m.name[len(prefix):]
            tar.extractall(out, members=members, filter="data")
        (out / "shim").mkdir(exist_ok=True)
        (out / "shim" / "cmsis_compiler.h").write_text(CMSIS_COMPILER_SHIM)
    o = out / "arm_mat_vec_mult_q7.o"
    flags = _bench_cflags(False) + ["-Wno-error", "-Werror=implicit-function-declaration", "-DARM_MATH_LOOPUNROLL"] + (["-DARM_MATH_DSP"] if dsp else [])
    _cc([*flags, f"-I{out / 'shim'}", f"-I{out / 'Include'}", f"-I{out / 'PrivateInclude'}",
         "-c", "-o", str(o), str(out / Q7_SOURCE)], "compiling arm_mat_vec_mult_q7.c")
    return o


# --------------------------------------------------------------------------- measuring

def _pack(rng, rows: int, n: int) -> np.ndarray:
    from beexgen.core import artifact
    return np.ascontiguousarray(artifact.pack_signs(rng.standard_normal((rows, n)).astype(np.float32)))


# The binary-linear functions of the kernel bench that read the slices layout
# (beexgen/core/slices.py): the Cortex-M4's bx_binlinear and the layout's reference.
SLICED = ("bx_binlinear", "bx_binlinear_slices_ref")


def weights_for(fn: str, w: np.ndarray, n_in: int) -> np.ndarray:
    """Packed rows w (n_out, words) as fn reads them."""
    from beexgen.core import slices
    return slices.to_slices(w, n_in) if fn in SLICED else np.ascontiguousarray(w)


def binlinear_call(m4: M4, fn: str, n_in: int, n_out: int, seed: int = 0) -> tuple[int, np.ndarray, np.ndarray]:
    """One call of a binary linear kernel (bx_binlinear, bx_binlinear_portable or
    bx_binlinear_ref) on random inputs: (instructions, y it wrote, y of the reference)."""
    rng = np.random.default_rng(seed)
    x = _pack(rng, 1, n_in)[0]
    w = _pack(rng, n_out, n_in)
    alpha = np.abs(rng.standard_normal(n_out)).astype(np.float32)
    bias = rng.standard_normal(n_out).astype(np.float32)
    m4.reset_heap()
    px, pw, pa, pb = (m4.put(a.tobytes()) for a in (x, w, alpha, bias))
    pf = m4.put(weights_for(fn, w, n_in).tobytes())
    py, pr = m4.alloc(4 * n_out), m4.alloc(4 * n_out)
    _, n = m4.call(fn, py, px, pf, pa, pb, n_in, n_out)
    m4.call("bx_binlinear_ref", pr, px, pw, pa, pb, n_in, n_out)
    y = np.frombuffer(m4.read(py, 4 * n_out), dtype=np.uint32)
    ref = np.frombuffer(m4.read(pr, 4 * n_out), dtype=np.uint32)
    return n, y, ref


def kernel_figures(shapes=MODEL_SHAPES, work_dir: str | Path | None = None, seed: int = 0) -> dict:
    """Instructions of whole binary-linear calls on the M4, per shape "n_inxn_out":

        binary_instr              bx_binlinear as the default firmware runs it (Armv7-M loops)
        binary_instr_per_32_macs  the same per 32 binary MACs (n_in * n_out / 32)
        dsp_instr, dsp_instr_per_32_macs          the --dsp firmware's (USADA8) loops
        portable_instr_per_32_macs                bx_binlinear_portable (the C path)
        reference_instr_per_32_macs               bx_binlinear_ref (one row at a time)

    Raises AssertionError when a kernel's output differs from the reference's bits."""
    tmp = None
    if work_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="bx_m4bench_")
        work_dir = tmp.name
    try:
        out: dict = {k: {} for k in ("binary_instr", "binary_instr_per_32_macs", "dsp_instr",
                                     "dsp_instr_per_32_macs", "portable_instr_per_32_macs",
                                     "reference_instr_per_32_macs")}
        plain = M4(build_kernel_bench(work_dir, dsp=False, q7=False))
        dsp = M4(build_kernel_bench(work_dir, dsp=True, q7=False))
        for n_in, n_out in shapes:
            key, units = shape_key(n_in, n_out), n_in * n_out / 32
            for m4, fn, count_key, per_key in ((plain, "bx_binlinear", "binary_instr", "binary_instr_per_32_macs"),
                                               (dsp, "bx_binlinear", "dsp_instr", "dsp_instr_per_32_macs"),
                                               (plain, "bx_binlinear_portable", None, "portable_instr_per_32_macs"),
                                               (plain, "bx_binlinear_ref", None, "reference_instr_per_32_macs")):
                n, y, ref = binlinear_call(m4, fn, n_in, n_out, seed)
                assert np.array_equal(y, ref), f"{fn} ({'dsp' if m4 is dsp else 'armv7-m'}) {key}: output differs"
                if count_key:
                    out[count_key][key] = n
                out[per_key][key] = round(n / units, 3)
        return out
    finally:
        if tmp is not None:
            tmp.cleanup()


def q7_call(m4: M4, n_in: int, n_out: int, seed: int = 0) -> tuple[int, np.ndarray, np.ndarray]:
    """arm_mat_vec_mult_q7 on a random (n_out, n_in) q7 matrix and q7 vector:
    (instructions, its output, numpy's (sum >> 7) saturated to q7)."""
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (n_out, n_in), dtype=np.int8)
    v = rng.integers(-128, 128, n_in, dtype=np.int8)
    m4.reset_heap()
    pa, pv = m4.put(a.tobytes()), m4.put(v.tobytes())
    pdst = m4.alloc(n_out)
    mat = m4.put(struct.pack("<HHI", n_out, n_in, pa))    # arm_matrix_instance_q7
    _, n = m4.call("arm_mat_vec_mult_q7", mat, pv, pdst)
    got = np.frombuffer(m4.read(pdst, n_out), dtype=np.int8)
    want = np.clip((a.astype(np.int64) @ v.astype(np.int64)) >> 7, -128, 127).astype(np.int8)
    return n, got, want


def q7_figures(shapes=MODEL_SHAPES, work_dir: str | Path | None = None, seed: int = 0,
               binary: dict | None = None) -> dict:
    """CMSIS-DSP arm_mat_vec_mult_q7 (SMLAD) on the same shapes and core:

        cmsis_dsp_q7_instr        instructions of one call, per shape
        cmsis_dsp_q7_instr_per_mac
        q7_over_binary            q7 instructions / ours (bx_binlinear, default build)

    binary: kernel_figures()'s dict, to reuse (measured here when None)."""
    tmp = None
    if work_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="bx_m4q7_")
        work_dir = tmp.name
    try:
        m4 = M4(build_kernel_bench(Path(work_dir) / "q7", dsp=False, q7=True))
        binary = binary or kernel_figures(shapes, Path(work_dir) / "bin", seed)
        out = {"cmsis_dsp_q7_instr": {}, "cmsis_dsp_q7_instr_per_mac": {}, "q7_over_binary": {}}
        for n_in, n_out in shapes:
            key = shape_key(n_in, n_out)
            n, got, want = q7_call(m4, n_in, n_out, seed)
            assert np.array_equal(got, want), f"arm_mat_vec_mult_q7 {key}: output differs from numpy"
            out["cmsis_dsp_q7_instr"][key] = n
            out["cmsis_dsp_q7_instr_per_mac"][key] = round(n / (n_in * n_out), 4)
            out["q7_over_binary"][key] = round(n / binary["binary_instr"][key], 2)
        return out
    finally:
        if tmp is not None:
            tmp.cleanup()


# --------------------------------------------------------------------------- whole model

def int8_estimate(art, q7: dict | None = None, binary: dict | None = None, *, tokens: float | None = None,
                  blocks: float | None = None) -> dict:
    """An int8 model of art's shape on the same M4: every binary layer a q7
    matrix-vector product at CMSIS-DSP's measured instructions per MAC (all MODEL_SHAPES
    together, from q7_figures; q7: its dict, measured here when None):

        instr_per_mac              arm_mat_vec_mult_q7, measured
        layer_macs_per_token       MACs of one block's binary layers for one token
        instr_per_token_per_block  layer_macs_per_token * instr_per_mac (the matrix
                                   products only: multiply by tokens and blocks run)
        flash_bytes                int8 weights of every binary layer and of the token
                                   and position embeddings, plus the float parameters
                                   as this artifact stores them
        binary_flash_bytes         the same parameters as this artifact stores them
        instr_per_sentence         with tokens and blocks (e.g. a profile's tokens_mean
                                   and exit_depth_mean): instr_per_token_per_block *
                                   tokens * blocks, the int8 model's matrix products for
                                   such a sentence
    """
    from beexgen.core import artifact as art_mod

    a = art if isinstance(art, art_mod.Artifact) else art_mod.load(art)
    q7 = q7 or q7_figures(binary=binary)
    macs = {k: int(k.split("x")[0]) * int(k.split("x")[1]) for k in q7["cmsis_dsp_q7_instr"]}
    per_mac = sum(q7["cmsis_dsp_q7_instr"].values()) / sum(macs.values())
    cfg = a.config if isinstance(a.config, dict) else vars(a.config)
    d, f = int(cfg["d_model"]), int(cfg["d_ff"])
    bits = int8 = floats = 0
    for name, t in a.tensors.items():
        t = np.asarray(t)
        if name.endswith(".bits"):
            n_in = f if name.split(".")[-2] == "down" else d
            bits += t.nbytes
            int8 += int(np.prod(t.shape[:-1])) * n_in
        else:
            floats += t.nbytes
    layer = 3 * d * d + d * d + (4 * d * d if cfg.get("slfn", True) else 0) + d * f + f * d
    out = {"instr_per_mac": round(per_mac, 4),
           "layer_macs_per_token": layer,
           "instr_per_token_per_block": round(layer * per_mac),
           "flash_bytes": int8 + floats,
           "binary_flash_bytes": bits + floats}
    if tokens is not None and blocks is not None:
        out["instr_per_sentence"] = round(layer * per_mac * tokens * blocks)
    return out


# --------------------------------------------------------------------------- profile

ADDR2LINE = "arm-none-eabi-addr2line"
STAGE_ORDER = ("tokenizer", "embedding", "layer norms", "sign packing", "binary qkv", "binary out",
               "binary slfn", "binary up", "binary down", "attention scores", "softmax", "V weighting",
               "SLFN gates", "residuals and glue", "exit heads", "cost counter")


def _inline_chains(elf: Path, addrs: list[int]) -> dict[int, tuple[str, ...]]:
    """addr -> the functions its code belongs to, innermost first (DWARF inline info)."""
    if not addrs:
        return {}
    r = subprocess.run([ADDR2LINE, "-a", "-f", "-i", "-e", str(elf)], input="\n".join(f"{a:#x}" for a in addrs),
                       capture_output=True, text=True, check=True)
    out, cur, chain = {}, None, []
    lines = r.stdout.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("0x"):
            if cur is not None:
                out[cur] = tuple(chain)
            cur, chain = int(line, 16), []
            i += 1
            continue
        chain.append(line.strip())
        i += 2                                   # function, then file:line
    if cur is not None:
        out[cur] = tuple(chain)
    return out


def _static_stage(chain: tuple[str, ...]) -> str:
    """Stage of engine code that is no function of its own (inlined into bx_block_forward)."""
    return "SLFN gates" if "slfn_group" in chain else "residuals and glue"


def _stage_map(m4: M4) -> dict:
    layers = sorted((addr, addr + size, name[len("bx_"):-len("_bits")].split("_")[-1])
                    for name, (addr, size, typ) in m4.symbols.items()
                    if name.startswith("bx_blocks_") and name.endswith("_bits"))

    def binary(m, _cur):
        w = m.reg(2)
        for lo, hi, layer in layers:
            if lo <= w < hi:
                return f"binary {layer}"
        return "binary other"

    def norm(_m, cur):
        return None if cur == "exit heads" else "layer norms"

    return {"bx_tokenize": "tokenizer", "bx_tok_byte": "tokenizer", "bx_tok_end": "tokenizer",
            "bx_wide_id": "wide exit", "bx_wide_end": "wide exit", "bx_embed": "embedding", "bx_pack_signs": "sign packing",
            "bx_binlinear": binary, "bx_layernorm_rows": norm, "bx_layernorm": norm,
            "bx_attend": "attention scores", "bx_attend_scores": "attention scores", "bx_attend_softmax": "softmax",
            "bx_attend_weigh": "V weighting", "bx_attend_weigh_portable": "V weighting",
            "bx_sigmoid_array": "SLFN gates", "bx_slfn_mix": "SLFN gates", "bx_vadd": "residuals and glue", "bx_embed_row": "embedding", "bx_exp_table": "softmax",
            "bx_exit_after": "exit heads",
            "bx_wide_sums": "wide exit", "bx_exit_wide": "exit heads"}


def _qemu_replies(elf: Path, board: str, texts: list[bytes], log: Path) -> list:
    """The firmware's reply (core.protocol.Reply) to each text, under QEMU -icount."""
    import serial

    from beexgen.codegen.emulate import handshake, start_qemu
    from beexgen.core.protocol import parse_reply

    out = []
    with start_qemu(elf, board, serial="tcp", log=log) as q:
        ser = serial.serial_for_url(q.url, timeout=30)
        try:
            handshake(ser, timeout=15)
            for t in texts:
                ser.write((b"!c " + t if t.startswith(b"!") else t) + b"\n")
                out.append(parse_reply(ser.readline().decode("utf-8", "replace")))
        finally:
            ser.close()
    return out


def force_full_depth(m4: M4) -> None:
    """Set the firmware's policy (bx_engine_set_policy) to confidence with every threshold
    above 1: no exit but the last takes, so every sentence runs every block."""
    from beexgen.core.policy import Policy

    addr, size, _ = m4.symbols["bx_policy_n_thresholds"]
    n_thr = struct.unpack("<i", m4.read(addr + 4 * int(Policy.CONFIDENCE), 4))[0]
    m4.reset_heap()
    thr = m4.put(struct.pack(f"<{n_thr}f", *([2.0] * n_thr)))
    r0, _ = m4.call("bx_engine_set_policy", int(Policy.CONFIDENCE), thr, n_thr)
    if r0 != 0:
        raise RuntimeError("bx_engine_set_policy refused the full-depth thresholds")


def profile(art_or_elf, texts, *, board: str = "mps2-an386", dsp: bool = False, qemu: bool = True,
            work_dir: str | Path | None = None, full_depth: bool = False) -> dict:
    """Instructions per stage of bx_classify on the Cortex-M4 firmware, mean per sentence.

    art_or_elf: an artifact (path or Artifact; the firmware is built for `board`, with the
    DSP loops when dsp) or a built fw.elf. texts: sentences (str or bytes).
    Every instruction bx_classify executes is charged to one stage (STAGE_ORDER): by the
    kernel function it runs in (the binary layers told apart by their weight tensor),
    engine code inlined into bx_block_forward by its DWARF inline chain (SLFN gates,
    the rest "residuals and glue"). qemu: also run the texts through the firmware in
    QEMU and add "cost counter", the instructions `cost=` counts around bx_classify
    (the two timer reads), so that the stages sum to the mean cost= exactly.

    Returns {"stages": {stage: mean instructions}, "total": mean (== sum of stages),
    "classify_mean": mean of bx_classify alone, "cost_mean": mean cost= (qemu),
    "sentences": n, "exit_depth_mean", "tokens_mean", "per_sentence": [{"tokens",
    "exit", "instructions", "cost"}]}.

    full_depth: every sentence runs every block (force_full_depth; unicorn only, so qemu
    must be False)."""
    if full_depth and qemu:
        raise ValueError("profile(full_depth=True) runs in unicorn only: pass qemu=False")
    tmp = None
    if work_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="bx_m4prof_")
        work_dir = tmp.name
    try:
        if isinstance(art_or_elf, (str, Path)) and Path(art_or_elf).suffix == ".elf":
            elf = Path(art_or_elf)
        else:
            elf = fw_mod.build_firmware(art_or_elf, board, Path(work_dir) / "fw", dsp=dsp).elf
        m4 = M4.for_board(elf, board)
        if full_depth:
            force_full_depth(m4)
        stages = _stage_map(m4)
        # one request line per text: CR and LF (line ends on the wire) become spaces, which
        # the tokenizer's normaliser does to every control character anyway
        texts = [(t.encode() if isinstance(t, str) else bytes(t)).replace(b"\r", b" ").replace(b"\n", b" ")
                 for t in texts]
        n_classes = m4.symbols["bx_labels"][1] // 4
        totals: dict[str, int] = {}
        rows, engine_blocks = [], {}
        for t in texts:
            m4.reset_heap()
            res = m4.alloc(512)
            p = m4.put(t or b"\0")
            r0, tr = m4.trace("bx_classify", p, len(t), res, stages=stages, root="engine")
            if r0 != 0:
                raise ValueError(f"bx_classify({t[:40]!r}) returned {r0 - (1 << 32) if r0 >> 31 else r0}")
            for (name, a, s), c in m4.last_blocks.items():
                if name == "engine":
                    engine_blocks[(a, s)] = engine_blocks.get((a, s), 0) + c
                else:
                    totals[name] = totals.get(name, 0) + c * m4.block_instructions(a, s)
            depth, = struct.unpack("<i", m4.read(res + 4, 4))
            tokens, = struct.unpack("<i", m4.read(res + 12 + 4 * n_classes, 4))
            rows.append({"tokens": tokens, "exit": depth, "instructions": tr.total})
        addrs = sorted({i for (a, s) in engine_blocks for i in m4.block_addresses(a, s)})
        chains = _inline_chains(elf, addrs)
        for (a, s), c in engine_blocks.items():
            for i in m4.block_addresses(a, s):
                st = _static_stage(chains.get(i, ()))
                totals[st] = totals.get(st, 0) + c
        n = len(texts)
        out = {"sentences": n, "classify_mean": sum(r["instructions"] for r in rows) / n,
               "exit_depth_mean": sum(r["exit"] for r in rows) / n,
               "tokens_mean": sum(r["tokens"] for r in rows) / n}
        if qemu:
            replies = _qemu_replies(elf, board, texts, Path(work_dir) / "qemu.log")
            for t, r, rep in zip(texts, rows, replies):
                if (rep.tokens, rep.exit_depth) != (r["tokens"], r["exit"]):
                    raise RuntimeError(f"QEMU and unicorn disagree on {t[:60]!r}: {rep} vs {r}")
                r["cost"] = rep.cost
            costs = [r["cost"] for r in rows]
            totals["cost counter"] = sum(c - r["instructions"] for r, c in zip(rows, costs))
            out["cost_mean"] = sum(costs) / n
        order = [s for s in STAGE_ORDER if s in totals] + sorted(set(totals) - set(STAGE_ORDER))
        out["stages"] = {s: round(totals[s] / n, 1) for s in order}
        out["total"] = sum(totals.values()) / n
        out["per_sentence"] = rows
        return out
    finally:
        if tmp is not None:
            tmp.cleanup()


def test_texts(run: str | Path, n: int) -> list[str]:
    """The first n test-split sentences of a training run (RUN/split.json)."""
    from beexgen.train import data

    meta = json.loads((Path(run) / "split.json").read_text())
    spec = meta["dataset"]
    if spec not in data.OFFLINE and meta.get("source"):     # a local file: the run's copy of it (RUN/data/)
        copy = Path(run) / "data" / Path(meta["source"]).name
        spec = str(copy) if copy.is_file() else meta["source"]
    ds = data.load_dataset(spec)
    split = data.load_split(Path(run) / "split.json", ds)
    return [ds.texts[i] for i in split.test[:n]]


def main(argv: list[str] | None = None) -> int:
    """python -m beexgen.codegen.m4bench kernels | q7 | profile RUN [N] [--dsp]"""
    import sys

    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("kernels", "q7", "profile"):
        print(main.__doc__, file=sys.stderr)
        return 2
    if argv[0] == "kernels":
        out = kernel_figures()
    elif argv[0] == "q7":
        out = q7_figures()
    else:
        run = Path(argv[1])
        n = int(argv[2]) if len(argv) > 2 and argv[2].isdigit() else 50
        art = run / "artifact" if (run / "artifact").is_dir() else run
        out = profile(art, test_texts(run, n), dsp="--dsp" in argv)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
