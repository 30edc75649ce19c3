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

The Cortex-M0+ has no QEMU 7.2 machine: its build (-mcpu=cortex-m0plus) runs on the
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

from beexgen.codegen import boards, build as build_mod, firmware

from conftest import needs
from fixtures import tiny_artifact
from test_firmware_qemu import Mirror, as_request, costs, host_replies, normalise, qemu_session, sentences

pytestmark = needs(firmware.CC, "qemu-system-arm")

CORE_BOARDS = {"cortex-m0": "microbit", "cortex-m3": "mps2-an385", "cortex-m4": "mps2-an386",
               "cortex-m7": "mps2-an500", "cortex-m33": "mps2-an505", "cortex-m55": "mps3-an547"}
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
    """-mcpu=cortex-m0plus code on QEMU's Cortex-M0 (microbit): the same Armv6-M ISA."""
    mb = boards.get_board("microbit")
    m0p = dataclasses.replace(mb, name="microbit-m0plus", core="cortex-m0plus")
    monkeypatch.setitem(boards.BOARDS, m0p.name, m0p)
    b = firmware.build_firmware(work["art"], m0p.name, work["dir"] / m0p.name, line_max=LINE_MAX)
    assert "-mcpu=cortex-m0plus" in b.cflags and "-mfloat-abi=soft" in b.cflags
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


def test_default_tiny_model_does_not_fit_the_microbit_and_says_why(work):
    art = tiny_artifact(work["dir"] / "art_default")
    with pytest.raises(firmware.FirmwareTooBig) as e:
        firmware.build_firmware(art, "microbit", work["dir"] / "mb_default")
    msg = str(e.value)
    assert "does not fit microbit" in msg and "RAM:" in msg and "16,384 B" in msg, msg


# --------------------------------------------------------------------------- board files

def test_every_board_file_loads():
    files = sorted(boards.BOARD_DIR.glob("*.toml"))
    assert {p.stem for p in files} == set(boards.BOARDS)
    for p in files:
        b = boards.load_board(p)
        assert b.core in boards.CORES and all(f for f in b.driver_files())
        assert b.arch_flags()[0] == f"-mcpu={b.cpu.mcpu}"
    emulated = {b.cpu.name for b in boards.BOARDS.values() if b.emulated}
    assert set(CORE_BOARDS) <= emulated
    assert boards.get_board("mps2-an385").arch_flags()[-1] == "-mfloat-abi=soft"
    assert "-mfloat-abi=hard" in boards.get_board("mps2-an505").arch_flags()


NEW_BOARD = """\
description = "ST Nucleo-F401RE (STM32F401RE, Cortex-M4F, 84 MHz)"
family = "stm32f4"
core = "cortex-m4"
clock_hz = 84_000_000
nvic_irqs = 85
clock_setup = "stm32f4_hsi_pll"
pll = { m = 16, n = 336, p = 4, q = 7, latency = 2, apb1_div = 2 }

[flash]
origin = 0x08000000
length = 0x80000

[ram]
origin = 0x20000000
length = 0x18000

[uart]
kind = "stm32"
base = 0x40004400
irq = 38
pclk_hz = 42_000_000
rcc_apb1 = 0x20000
gpio = ["A", 2, 3, 7]

[counter]
kind = "dwt"
unit = "cycles"
"""


def test_a_new_board_of_a_known_family_is_one_data_file(work, tmp_path, monkeypatch):
    (tmp_path / "nucleo-f401re.toml").write_text(NEW_BOARD)
    new = boards.load_boards(tmp_path)
    assert list(new) == ["nucleo-f401re"]
    monkeypatch.setattr(boards, "BOARDS", {**boards.BOARDS, **new})
    b = firmware.build_firmware(work["art"], "nucleo-f401re", tmp_path / "build", line_max=LINE_MAX)
    assert b.fits and b.ram_total == 96 * 1024
    assert {"clock_stm32f4.c", "uart_stm32.c", "counter_dwt.c"} <= {p.name for p in (b.out_dir / "src").glob("*.c")}
    assert "#define BX_PLL_N 336" in (b.out_dir / "src" / "bx_board.h").read_text()


@pytest.mark.parametrize("edit, complaint", [
    (lambda s: s.replace('core = "cortex-m4"', 'core = "cortex-m9"'), "core 'cortex-m9'"),
    (lambda s: s.replace('kind = "dwt"', 'kind = "sundial"'), "counter kind 'sundial'"),
    (lambda s: s.replace("irq = 38", "irq = 38\nparity = 1"), "unknown key(s) parity"),
    (lambda s: s.replace("[counter]", "[countr]"), "no [counter] table"),
    (lambda s: 'name = "other"\n' + s, "differs from the file name"),
    (lambda s: s.replace("length = 0x80000", "length = 0x80000 0"), "nucleo-f401re.toml"),
])
def test_malformed_board_files_are_refused(tmp_path, edit, complaint):
    p = tmp_path / "nucleo-f401re.toml"
    p.write_text(edit(NEW_BOARD))
    with pytest.raises(boards.BoardFileError) as e:
        boards.load_board(p)
    assert complaint in str(e.value) and str(p.name) in str(e.value)
