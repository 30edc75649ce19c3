"""The table sigmoid and the softmax weight table (beexgen/core/numerics.py) computed by
the C equal the PyTorch mirror (train/fmath.py) bit for bit on a million inputs: random
bit patterns (NaNs of both signs, infinities, denormals, the float range limits), the
table's domain and the neighbourhood of its boundaries; on the host (the portable
element loop and the build's x86 SIMD path) and, on a smaller sweep, on the Cortex-M4
(the assembly loop, in unicorn). Also: the table sigmoid stays within 6e-5 of the true
sigmoid, the accuracy bound the numerics change promises."""
import ctypes
import shutil

import numpy as np
import pytest
import torch

from beexgen.codegen import m4bench, render
from beexgen.codegen.m4emu import M4
from beexgen.core import numerics
from beexgen.train import fmath

from cbuild import HOST_KERNELS, TESTS_C, gcc, render_numerics

f32p = np.ctypeslib.ndpointer(np.float32, flags="C_CONTIGUOUS")


def sweep(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 2**32, n // 2, dtype=np.uint64).astype(np.uint32).view(np.float32)
    span = rng.uniform(-17, 17, n // 4).astype(np.float32)
    edges = []
    for b in (-16.0, 16.0, 0.0):                       # every float within 2000 ulps of the edges
        c = np.float32(b).view(np.int32)
        for sgn in (1, -1) if b == 0.0 else (1,):
            edges.append((np.arange(-2000, 2000, dtype=np.int64) + c).astype(np.int32).view(np.float32) * sgn)
    grid = (np.arange(-16 * 64, 16 * 64 + 1) / np.float32(64)).astype(np.float32)   # the knots and midpoints
    special = np.array([np.inf, -np.inf, np.nan, -np.nan, 0.0, -0.0, 1e-45, -1e-45, 1.1754942e-38,
                        -1.1754942e-38, 3.4028235e38, -3.4028235e38, 87.0, -87.0], np.float32)
    x = np.concatenate([raw, span, *edges, grid, special]).astype(np.float32)
    return x[:n] if len(x) >= n else np.concatenate([x, rng.standard_normal(n - len(x)).astype(np.float32)])


def bits(a):
    return np.asarray(a, np.float32).view(np.uint32)


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    for name in HOST_KERNELS + ["bx_math.h"]:
        shutil.copy(render.TEMPLATE_DIR / name, d / name)
    render_numerics(d)
    so = gcc(d / "libs.so", [d / n for n in HOST_KERNELS if n.endswith(".c")] + [TESTS_C / "kernels_shim.c"], [d],
             ["-shared", "-fPIC"])
    L = ctypes.CDLL(str(so))
    L.shim_sigmoid_array.argtypes = L.bx_sigmoid_array_portable.argtypes = [f32p, ctypes.c_int]
    L.bx_exp_table.argtypes = [f32p, ctypes.c_float, ctypes.c_int]
    return L


def test_sigmoid_million_inputs_host(lib):
    x = sweep(1_000_000, 24)
    want = bits(fmath.bx_sigmoid(torch.from_numpy(x)).numpy())
    for fn in (lib.shim_sigmoid_array, lib.bx_sigmoid_array_portable):   # the build's SIMD path, the scalar one
        got = x.copy()
        fn(got, len(got))
        bad = np.flatnonzero(bits(got) != want)
        assert not len(bad), f"{fn.__name__}: {len(bad)} differ, first x={x[bad[0]]!r}"


def test_sigmoid_is_close_to_the_true_sigmoid():
    x = np.linspace(-40, 40, 200_001, dtype=np.float32)
    got = fmath.bx_sigmoid(torch.from_numpy(x)).numpy().astype(np.float64)
    true = 1.0 / (1.0 + np.exp(-x.astype(np.float64)))
    assert np.max(np.abs(got - true)) < 6e-5
    assert np.all(np.diff(got) >= 0)                                     # monotone
    assert len(numerics.SIG_TD) == 2 * (numerics.SIG_N + 1) and numerics.SIG_TD[-1] == 0.0


def test_exp_table_million_entries_host(lib):
    """bx_exp_table over 30,000 finite taus (random bits, small and large, +-0,
    denormals, the float limits) x 33 entries (dh = 32) equals fmath.exp_table."""
    rng = np.random.default_rng(2400)
    raw = rng.integers(0, 2**32, 21_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    raw = raw[np.isfinite(raw)]
    taus = np.concatenate([raw, rng.uniform(-4, 4, 10_000).astype(np.float32),
                           np.array([0.0, -0.0, 1e-45, -1e-45, 3.4028235e38, -3.4028235e38, 0.17677669], np.float32)])
    E = np.zeros(33, np.float32)
    got = np.empty((len(taus), 33), np.float32)
    for i, t in enumerate(taus):
        lib.bx_exp_table(E, t, 32)
        got[i] = E
    c2 = torch.arange(0, 65, 2, dtype=torch.float32)
    want = fmath.bx_exp(-(torch.abs(torch.from_numpy(taus))[:, None] * c2)).numpy()
    assert got.size >= 1_000_000
    bad = np.argwhere(bits(got) != bits(want))
    assert not len(bad), f"{len(bad)} differ, first tau={taus[bad[0][0]]!r} c={bad[0][1]}"
    for t in taus[:50]:                                                  # the per-tau mirror is the same function
        lib.bx_exp_table(E, t, 32)
        assert np.array_equal(bits(E), bits(fmath.exp_table(torch.tensor(t), 32).numpy()))


def test_sigmoid_sweep_on_the_m4(tmp_path):
    """20,000 of the sweep's inputs through the M4 assembly loop, in unicorn."""
    m4 = M4(m4bench.build_kernel_bench(tmp_path, q7=False))
    x = sweep(1_000_000, 25)
    x = np.concatenate([x[-60_000:][::3], x[:2_000:1]])[:20_001]          # the edges, the grid, specials; odd n
    want = bits(fmath.bx_sigmoid(torch.from_numpy(x)).numpy())
    m4.reset_heap()
    px = m4.put(x.tobytes())
    m4.call("bx_sigmoid_array", px, len(x))
    got = np.frombuffer(m4.read(px, 4 * len(x)), np.uint32)
    bad = np.flatnonzero(got != want)
    assert not len(bad), f"{len(bad)} differ, first x={x[bad[0]]!r}"
