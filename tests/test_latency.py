"""Worst-case latency (issue 24, codegen/latency.py): the bound computed from
per-stage costs measured on three lengths (the binary layers' at their worst input) covers every full-depth pass of a tiny model
of the default shape family, at every length and with sigmoid inputs far out of the
table's range; full-depth figures of the profile; `beexgen build` prints the bound."""
import struct

import numpy as np
import pytest

from beexgen.codegen import latency as bl
from beexgen.codegen import firmware as fw_mod
from beexgen.codegen import m4bench
from beexgen.codegen.m4emu import M4

from fixtures import tiny_artifact


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("lat")
    art = tiny_artifact(d / "art", d_model=64, n_heads=2, d_ff=128, n_blocks=2, seq_max=24)
    elf = fw_mod.build_firmware(art, "mps2-an386", d / "fw").elf
    return art, elf, d


def test_bound_covers_every_length(built):
    art, elf, d = built
    costs = bl.calibrate(art, "mps2-an386", elf=elf, seeds=1)
    assert costs.key == bl.shape_key(dict(art.config), "cortex-m4")
    assert costs.sigmoid_clamp_extra == 0.0               # the table sigmoid has no clamp branch
    m4 = M4(elf)
    m4bench.force_full_depth(m4)
    rng = np.random.default_rng(24)
    cfg = art.config
    for n in (1, 2, 5, 11, 17, 23, 24):
        ids = [2] + rng.integers(5, cfg["vocab_size"], n - 1).tolist()
        got = sum(bl._forward_stages(m4, ids).values())
        # the quadratic through the calibration lengths, up to the loops' odd-count steps, and
        # the binary layers at their most expensive input (bx_kernels_arm.c: a call costs
        # more the more inputs its smaller sign set has): never below, a few % above
        assert got <= costs.forward(n) * (1 + 2e-3), (n, got, costs.forward(n))
        assert costs.forward(n) - got <= 0.04 * got, (n, got, costs.forward(n))
        assert got <= costs.bound(), (n, got, costs.bound())          # the worst case: seq_max tokens
    assert costs.bound() >= costs.bound(12)


def test_full_depth_profile_and_bound_message(built, tmp_path):
    art, elf, d = built
    texts = ["a charming and often affecting journey", "ok", "what is the capital of france and why " * 3]
    p = m4bench.profile(elf, texts, qemu=False, full_depth=True, work_dir=tmp_path)
    assert all(r["exit"] == art.config["n_blocks"] for r in p["per_sentence"])
    assert p["stages"]["SLFN gates"] > 0 and p["stages"]["softmax"] > 0
    path = tmp_path / "costs.json"
    assert bl.worst_case_bound(art, "mps2-an386", path=path) is None
    bl.store(bl.calibrate(art, "mps2-an386", elf=elf, seeds=1), path=path)
    bound = bl.worst_case_bound(art, "mps2-an386", path=path)
    longest = max(range(len(texts)), key=lambda i: p["per_sentence"][i]["tokens"])
    assert bl._forward_of(elf, "mps2-an386", texts[longest]) <= bound
