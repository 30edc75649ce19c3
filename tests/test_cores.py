"""Every Cortex-M core QEMU 7.2 emulates: QEMU == host emulator == PyTorch, bit for bit.

A small artifact (one that fits the micro:bit's 16 KiB of RAM) is built for one board per
core: microbit (Cortex-M0, soft float), mps2-an385 (M3, soft float), mps2-an386 (M4F),
mps2-an500 (M7), mps2-an505 (M33, Secure state), mps3-an547 (M55). Each firmware is
booted in QEMU with -icount and answers a request script (info, tokenizer, classifications
under three exit policies, errors, lines over BX_LINE_MAX). Every reply must equal the host
emulator's (board-dependent cost=, unit=, board= aside), and every classification must
equal the PyTorch deploy mirror's class, exit depth and logit bits. On the soft-float
cores this is the proof that libgcc's IEEE single-precision routines (and newlib's
sqrtf) give the bits the host's SSE hardware gives, on every float operation of these
sentences: nothing in the suite assumes it.

The Cortex-M0+ has no QEMU 7.2 machine: its build (gcc's cortex-m0plus) runs on the
micro:bit's M0, which executes the same Armv6-M instruction set.

Also: every board file in codegen/boards/ loads and names a known core and driver kinds;
a new board of a known family is one data file (written here to a temporary directory,
loaded, built); malformed board files are refused with the file and key named; the
default-sized tiny model does not fit the micro:bit and the build says why (RAM).
Instruction counts per core are printed (pytest -s).
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from beexgen.codegen import boards, cflags, build as build_mod, firmware

from conftest import needs
from fixtures import tiny_artifact
from test_firmware_qemu import Mirror, as_request, costs, host_replies, normalise, qemu_session, sentences

pytestmark = needs(firmware.CC, "qemu-system-arm")

from beexgen.bench.cores import CORE_BOARDS  # noqa: E402  (core -> its QEMU board, shared with the bench)
LINE_MAX = 128            # the micro:bit's RAM: a 1 KiB receive ring
N_SENTENCES = 40


def small_artifact(out: Path):
    return tiny_artifact(out, d_model=32, n_heads=2, d_ff=32, n_blocks=2, seq_max=16, vocab_size=150, wide=False)


def script(art) -> list[bytes]:
    sents = sentences(art, N_SENTENCES, seed=3)
    n_early = art.config["n_blocks"] + int(art.config.get("wide", False)) - 1
    reqs = [b"!info\n"] + [b"!tok " + s[:100] + b"\n" for s in sents[:5]]
    reqs += [as_request(s) for s in sents]
    reqs += [b"!policy none\n"] + [as_request(s) for s in sents[:10]]
    reqs += [b"!policy confidence " + ",".join(["0.5"] * n_early).encode() + b"\n"]
    reqs += [as_request(s) for s in sents[10:20]] + [b"!policy\n", b"!info\n"]
    return reqs


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("cores")
    art = small_artifact(d / "art")
    reqs = script(art)
    exe = build_mod.build_host(art, d / "host", line_max=LINE_MAX)
    return {"dir": d, "art": art, "reqs": reqs, "host": host_replies(exe, reqs), "mirror": Mirror(art), "runs": {}}


def run_board(work, board: str, tag: str | None = None) -> list[str]:
    tag = tag or board
    if tag not in work["runs"]:
        b = firmware.build_firmware(work["art"], board, work["dir"] / tag, line_max=LINE_MAX)
        print("\n" + firmware.format_size_table(b))
        t = time.monotonic()
        work["runs"][tag] = qemu_session(b.elf, board, work["reqs"], work["dir"] / f"{tag}.log")
        print(f"{tag}: {len(work['reqs'])} requests in {time.monotonic() - t:.1f} s")
    return work["runs"][tag]


def check_equal(work, got: list[str], label: str) -> None:
    for req, g, w in zip(work["reqs"], got, work["host"]):
        assert normalise(g) == normalise(w), f"{label}, request {req[:60]!r}:\n  firmware {g}\n  host     {w}"
    n = work["mirror"].check(work["reqs"], got)
    assert n >= N_SENTENCES, f"{label}: only {n} classifications checked against the deploy mirror"
    assert any(r.startswith("err ") for r in got), "the script should reach an error path (a line over LINE_MAX)"


@pytest.mark.parametrize("core", list(CORE_BOARDS))
def test_qemu_equals_host_and_pytorch_on_every_core(work, core):
    board = CORE_BOARDS[core]
    assert boards.get_board(board).core == core
    got = run_board(work, board)
    check_equal(work, got, board)
    assert any(f"board={board}" in g for g in got if g.startswith("ok info"))
    c = costs(work["reqs"], got)
    assert all(cost > 0 for _, _, cost in c), f"{board}: the cost counter did not count"
    print(f"{core} on {board}: {sum(x[2] for x in c) / len(c):,.0f} instructions per sentence (mean)")


def test_cortex_m0plus_build_runs_on_the_m0(work, monkeypatch):
    """Cortex-M0+ code on QEMU's Cortex-M0 (microbit): the same Armv6-M ISA."""
    mb = boards.get_board("microbit")
    m0p = dataclasses.replace(mb, name="microbit-m0plus", core="cortex-m0plus")
    monkeypatch.setitem(boards.BOARDS, m0p.name, m0p)
    b = firmware.build_firmware(work["art"], m0p.name, work["dir"] / m0p.name, line_max=LINE_MAX)
    assert b.cflags[:len(m0p.arch_flags())] == boards.get_core("cortex-m0plus").arch_flags()
    assert not boards.get_core("cortex-m0plus").hard_float
    got = qemu_session(b.elf, m0p.name, work["reqs"], work["dir"] / "m0plus.log")
    check_equal(work, got, m0p.name)


def test_instruction_counts_per_core(work):
    """-icount makes every core's count repeatable; the hard-float cores with the Thumb-2
    kernels need far fewer instructions than the soft-float ones."""
    mean = {}
    for core, board in CORE_BOARDS.items():
        c = costs(work["reqs"], run_board(work, board))
        mean[core] = sum(x[2] for x in c) / len(c)
    print("\ninstructions per sentence (mean): " + ", ".join(f"{k} {v:,.0f}" for k, v in mean.items()))
    assert mean["cortex-m3"] > 3 * mean["cortex-m4"] and mean["cortex-m0"] > mean["cortex-m3"]
    for core in ("cortex-m7", "cortex-m33", "cortex-m55"):
        assert 0.5 < mean[core] / mean["cortex-m4"] < 2.0, mean


def test_the_default_model_does_not_fit_the_microbit_and_the_build_says_why(work):
    """The default configuration (ModelConfig's defaults, TrainConfig's vocabulary size),
    measured as `beexgen train --board microbit` measures it before training (fit.py:
    the placeholder firmware of those dimensions): RAM is the reason, with the size table
    and the board's note. The small model of this module fits, on the board's own default
    line length (128 bytes, from microbit.toml)."""
    from beexgen.codegen import fit
    from beexgen.train.model import ModelConfig
    from beexgen.train.tokenizer import build_empty
    from beexgen.train.trainer import TrainConfig

    vocab = TrainConfig(dataset="x", out="y").vocab_size
    cfg = ModelConfig(vocab_size=vocab, n_classes=2).to_dict()
    with pytest.raises(firmware.FirmwareTooBig) as e:
        fit.ram_check(cfg, build_empty(fit.placeholder_vocab(vocab)).to_str(), "microbit")
    msg = str(e.value)
    ram = f"{boards.get_board('microbit').ram.length:,} B"            # the board file's RAM, as the message prints it
    assert "does not fit microbit" in msg and "RAM:" in msg and ram in msg and "small models only" in msg, msg
    b = firmware.build_firmware(work["art"], "microbit", work["dir"] / "mb_default")
    assert b.fits and "#define BX_LINE_MAX     128" in (b.out_dir / "src" / "bx_board.h").read_text()


# --------------------------------------------------------------------------- board files

def test_every_board_file_loads():
    files = sorted(boards.BOARD_DIR.glob("*.toml"))
    assert {p.stem for p in files} == set(boards.BOARDS)
    for p in files:
        b = boards.load_board(p)
        assert b.core in boards.CORES and all(f for f in b.driver_files())
        assert b.arch_flags() == b.cpu.arch_flags() and b.cpu.mcpu in b.arch_flags()[0]
    emulated = {b.cpu.name for b in boards.BOARDS.values() if b.emulated}
    assert set(CORE_BOARDS) <= emulated
    assert not boards.get_board("mps2-an385").cpu.hard_float and boards.get_board("mps2-an505").cpu.hard_float
    assert boards.get_board("mps2-an385").arch_flags()[-1].endswith("=soft")
    assert boards.get_board("mps2-an505").arch_flags()[-1].endswith("=hard")


NEW_BOARD = """\
description = "A user's own STM32F401CC board (Cortex-M4F, 84 MHz)"
family = "stm32f4"
core = "cortex-m4"
clock_hz = 84_000_000
nvic_irqs = 85
clock_setup = "stm32f4_hsi_pll"
clock_params = { pll_m = 16, pll_n = 336, pll_p = 4, pll_q = 7, flash_latency = 2, apb1_div = 2 }

[flash]
origin = 0x08000000
length = 0x40000

[ram]
origin = 0x20000000
length = 0x10000

[uart]
kind = "stm32"
base = 0x40004400
irq = 38
pclk_hz = 42_000_000
params = { gpio_port = "A", tx_pin = 2, rx_pin = 3, af = 7, rcc_apb1 = 0x20000, rcc_apb2 = 0 }

[counter]
kind = "dwt"
unit = "cycles"
"""


def test_a_new_board_of_a_known_family_is_one_data_file(work, tmp_path, monkeypatch):
    (tmp_path / "my-f401cc.toml").write_text(NEW_BOARD)
    new = boards.load_boards(tmp_path)
    assert list(new) == ["my-f401cc"]
    monkeypatch.setattr(boards, "BOARDS", {**boards.BOARDS, **new})
    b = firmware.build_firmware(work["art"], "my-f401cc", tmp_path / "build", line_max=LINE_MAX)
    assert b.fits and b.ram_total == 64 * 1024
    assert {"clock_stm32f4.c", "uart_stm32.c", "counter_dwt.c"} <= {p.name for p in (b.out_dir / "src").glob("*.c")}
    assert "#define BX_PLL_N 336" in (b.out_dir / "src" / "bx_board.h").read_text()


@pytest.mark.parametrize("edit, complaint", [
    (lambda s: s.replace('core = "cortex-m4"', 'core = "cortex-m9"'), "core 'cortex-m9'"),
    (lambda s: s.replace('kind = "dwt"', 'kind = "sundial"'), "counter kind 'sundial'"),
    (lambda s: s.replace("irq = 38", "irq = 38\nparity = 1"), "unknown key(s) parity"),
    (lambda s: s.replace("[counter]", "[countr]"), "no [counter] table"),
    (lambda s: 'name = "other"\n' + s, "differs from the file name"),
    (lambda s: s.replace("length = 0x40000", "length = 0x40000 0"), "my-f401cc.toml"),
])
def test_malformed_board_files_are_refused(tmp_path, edit, complaint):
    p = tmp_path / "my-f401cc.toml"
    p.write_text(edit(NEW_BOARD))
    with pytest.raises(boards.BoardFileError) as e:
        boards.load_board(p)
    assert complaint in str(e.value) and str(p.name) in str(e.value)


# --------------------------------------------------------------------------- soft float

SOFT_FLOAT_C = r"""
#include <math.h>
#include <stdint.h>
#include <string.h>
static float f(uint32_t v) { float x; memcpy(&x, &v, 4); return x; }
static uint32_t u(float x) { uint32_t v; memcpy(&v, &x, 4); return v; }
#define OP2(name, expr) void name(const uint32_t *a, const uint32_t *b, uint32_t *o, int n) \
    { for (int i = 0; i < n; i++) { float x = f(a[i]), y = f(b[i]); o[i] = (expr); } }
OP2(op_add, u(x + y))
OP2(op_sub, u(x - y))
OP2(op_mul, u(x * y))
OP2(op_div, u(x / y))
OP2(op_lt, (uint32_t)(x < y))
OP2(op_sqrt, u(sqrtf(x)))
OP2(op_i2f, u((float)(int32_t)a[i]))
OP2(op_f2i, (uint32_t)(int32_t)x)
"""


def operands(rng, n: int):
    """Bit patterns over every exponent, subnormals, signed zeros, infinities, values near
    1 and pairs that cancel (a + b with b close to -a): where rounding is decided."""
    import numpy as np
    a = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    b = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    k = n // 4
    near = (np.float32(1) + rng.standard_normal(k).astype(np.float32) * np.float32(1e-3)).view(np.uint32)
    a[:k] = near
    b[:k] = (-(near.view(np.float32) * (np.float32(1) + np.float32(2**-20) * rng.integers(-8, 9, k)
                                          .astype(np.float32)))).astype(np.float32).view(np.uint32)
    sub = rng.integers(1, 2**23, k, dtype=np.uint32)             # subnormals
    a[k:2 * k] = sub | (rng.integers(0, 2, k, dtype=np.uint32) << 31)
    special = np.array([0, 0x80000000, 0x7F800000, 0xFF800000, 0x00800000, 0x7F7FFFFF, 0x3F800000,
                        0x3F800001, 0x00000001, 0x807FFFFF], dtype=np.uint32)
    a[2 * k:2 * k + special.size] = special
    b[2 * k:2 * k + special.size] = special[::-1]
    return a, b


@pytest.mark.parametrize("core", ["cortex-m0", "cortex-m3"])
def test_soft_float_routines_round_like_the_host_hardware(tmp_path, core):
    """libgcc's single-precision add/sub/mul/div/compare/conversions and newlib's sqrtf,
    as the soft-float firmware links them (the core's arch flags, soft float ABI, the
    firmware's exactness flags), run in unicorn on awkward operands: every result's bits
    equal numpy's float32 (the host's SSE, round to nearest even, no flush to zero).
    NaN results need only be NaN on both sides (the firmware never makes one)."""
    import numpy as np
    from beexgen.codegen.m4emu import M4

    src = tmp_path / "sf.c"
    src.write_text(SOFT_FLOAT_C)
    elf = tmp_path / "sf.elf"
    flags = cflags.arm_cflags(boards.get_core(core).arch_flags(), stack_usage=False, werror=False)
    keep = [f for f in cflags.ARM_LDFLAGS if "gc-sections" not in f]      # every op stays: unicorn calls them
    r = firmware.subprocess.run([firmware.CC, *flags, *keep, "-Wl,-e,op_add",
                                 "-o", str(elf), str(src), "-lm"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rng = np.random.default_rng(13)
    n = 4000
    a, b = operands(rng, n)
    fa, fb = a.view(np.float32), b.view(np.float32)
    with np.errstate(all="ignore"):
        want = {"op_add": fa + fb, "op_sub": fa - fb, "op_mul": fa * fb, "op_div": fa / fb,
                "op_lt": (fa < fb).astype(np.uint32), "op_sqrt": np.sqrt(np.abs(fa)),
                "op_i2f": a.view(np.int32).astype(np.float32)}
        fin = np.isfinite(fa) & (np.abs(fa) < 2.0**31)
        want["op_f2i"] = np.where(fin, np.trunc(np.where(fin, fa, 0)), 0).astype(np.int32).view(np.uint32)
    m = M4(elf)
    for op, w in want.items():
        x = np.abs(fa).view(np.uint32) if op == "op_sqrt" else a
        m.reset_heap()
        pa, pb, po = m.put(x.tobytes()), m.put(b.tobytes()), m.alloc(4 * n)
        m.call(op, pa, pb, po, n, max_instructions=50_000_000)
        got = np.frombuffer(m.read(po, 4 * n), dtype=np.uint32)
        w = np.asarray(w)
        if w.dtype == np.float32:
            nan = np.isnan(w)
            assert np.array_equal(np.isnan(got.view(np.float32)), nan), op
            bad = np.flatnonzero((got != w.view(np.uint32)) & ~nan)
        else:
            sel = fin if op == "op_f2i" else np.ones(n, bool)
            bad = np.flatnonzero((got != w.view(np.uint32)) & sel)
        assert bad.size == 0, (f"{core} {op}: {bad.size} of {n} differ, e.g. a={x[bad[0]]:#010x} b={b[bad[0]]:#010x} "
                               f"got {got[bad[0]]:#010x} want {w.view(np.uint32)[bad[0]]:#010x}")
