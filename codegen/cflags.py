"""Every C compiler flag beexgen uses, defined once.

The generated build files (codegen/project.py: bx_flags.cmake and bx_flags.mk, read by
the generated CMakeLists.txt and Makefile) are written from these lists, and so are
beexgen's own builds (the host emulator, the firmware, the kernel bench, the fuzz targets
and the tests' helpers), so a user's build and ours compile the same C the same way.
tests/test_static.py fails if an exactness flag is written anywhere else.

Exactness (EXACT). C == PyTorch bit for bit needs every float operation rounded as
written, in the written order:
- -ffp-contract=off: no fused multiply-add, even where the target has one (the M4's
  VFMA, x86 FMA, AVX-512); gcc's default for GNU C would fuse a * b + c.
- -fno-fast-math: no reassociation, reciprocal or finite-math shortcuts, whatever an
  application's flags say before ours.
- -fno-math-errno: __builtin_sqrtf becomes one correctly rounded instruction (VSQRT.F32,
  SQRTSS), never a libm call that sets errno.
The float ABI (-mfloat-abi, -mfpu) comes with the core: boards.Board.arch_flags().
"""
from __future__ import annotations

import functools
from pathlib import Path

EXACT = ["-ffp-contract=off", "-fno-fast-math", "-fno-math-errno"]
# What the library's sources refuse (bx_internal.h #error): the export's README and the
# tests name it from here.
FAST_MATH = ["-ffast-math"]
STD = ["-std=c11"]
WARN = ["-Wall", "-Wextra"]
WERROR = ["-Werror"]
# -fno-trapping-math lets gcc turn selects into SIMD blends; it only gives up exact FP
# exception flags, which nothing reads.
HOST_OPT = ["-O3", "-fno-trapping-math"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g", "-O1"]
FUZZ = ["-g", "-O1", "-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=all",
        "-fno-omit-frame-pointer"]
ARM_OPT = ["-O2", "-ffunction-sections", "-fdata-sections", "-g"]
# gcc's per-function frame sizes and call graph: codegen/firmware.py's stack analysis.
ARM_STACK = ["-fstack-usage", "-fcallgraph-info=su"]
# bx_classify (the whole-buffer API) and bx_model_ids stay in every image although the
# protocol streams: m4bench.profile and codegen/latency.py call them, and so can a debugger.
ARM_LDFLAGS = ["-nostartfiles", "--specs=nano.specs", "-Wl,--gc-sections", "-Wl,--undefined=bx_classify",
               "-Wl,--undefined=bx_model_ids"]

# Instruction sets the kernels' x86 paths use (bx_kernels_x86.c), each enabled when the
# build machine has every CPU flag it needs: (name, gcc options, /proc/cpuinfo flags).
# Their integer work is exact and their float work is the same IEEE operations in the
# same order, so they change speed, never results; none enables FMA, and EXACT keeps gcc
# from fusing even where AVX-512 has the instruction. Each level needs the ones before it.
# -DBX_ROW_GROUP=8: the engine hands bx_layernorm_rows eight rows, one per AVX2 lane.
HOST_ISA_LEVELS = (
    ("popcnt", ["-mpopcnt"], {"popcnt"}),
    ("avx2", ["-mavx2", "-DBX_ROW_GROUP=8"], {"avx2"}),
    ("avx512", ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vpopcntdq"],
     {"avx512f", "avx512bw", "avx512vl", "avx512_vpopcntdq"}),
)
HOST_ISA_NAMES = ("portable",) + tuple(name for name, _, _ in HOST_ISA_LEVELS)


@functools.cache
def host_cpu_flags() -> frozenset[str]:
    """The feature flags of the build machine's CPU (read on first use, not at import)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def host_isa_levels(cpu_flags: set[str] | frozenset[str] | None = None) -> dict[str, list[str]]:
    """The x86 kernel paths a CPU (default: this machine's) can run, name -> gcc options:
    "portable" (no x86 extension: the code the Cortex-M compiles, with the portable
    popcount), then each level of HOST_ISA_LEVELS it has, in order; the last is the fastest."""
    cpu = host_cpu_flags() if cpu_flags is None else cpu_flags
    out, opts = {"portable": []}, []
    for name, level_opts, need in HOST_ISA_LEVELS:
        if not need <= cpu:
            break
        opts = opts + level_opts
        out[name] = opts
    return out


def fastest_host_isa() -> list[str]:
    """gcc options of the fastest x86 path this machine runs."""
    return list(host_isa_levels().values())[-1]


def host_cflags(isa: list[str] | None = None, werror: bool = True) -> list[str]:
    """The host emulator's flags, with the x86 options isa (None: the fastest here)."""
    return STD + HOST_OPT + EXACT + WARN + (WERROR if werror else []) + \
        (fastest_host_isa() if isa is None else list(isa))


def arm_cflags(arch: list[str], stack_usage: bool = True, werror: bool = True) -> list[str]:
    """The Cortex-M firmware's flags for a core's arch flags (boards.Board.arch_flags())."""
    return list(arch) + STD + ARM_OPT + EXACT + WARN + (WERROR if werror else []) + \
        (ARM_STACK if stack_usage else [])
