"""C kernels against the Python reference, exactly, at awkward sizes.

The kernels are compiled into a shared library and called through ctypes; expected
values come from beexgen.core.artifact (packing), numpy (integer dot products) and the
PyTorch mirror train/fmath.py (float routines), computed at test time."""
import ctypes
import shutil

import numpy as np
import pytest
import torch

from beexgen.core import artifact
from beexgen.codegen import render
from beexgen.train import fmath
from beexgen.train.exits import exit_stats

from cbuild import HOST_KERNELS, TESTS_C, gcc, isa_levels, render_numerics

SIZES = [1, 31, 32, 33, 63, 64, 65, 127, 128, 129]
f32p = np.ctypeslib.ndpointer(np.float32, flags="C_CONTIGUOUS")
u32p = np.ctypeslib.ndpointer(np.uint32, flags="C_CONTIGUOUS")
i32p = np.ctypeslib.ndpointer(np.int32, flags="C_CONTIGUOUS")


ISA = isa_levels()


@pytest.fixture(scope="module", params=list(ISA))
def lib(request, tmp_path_factory):
    """The kernels built once per x86 path this machine has (portable C, POPCNT, AVX2,
    AVX-512), so every optimised path is compared with the reference."""
    d = tmp_path_factory.mktemp(f"kernels_{request.param}")
    for name in HOST_KERNELS + ["bx_math.h"]:
        shutil.copy(render.TEMPLATE_DIR / name, d / name)
    render_numerics(d)
    so = gcc(d / "libk.so", [d / n for n in HOST_KERNELS if n.endswith(".c")] + [TESTS_C / "kernels_shim.c"], [d],
             ["-shared", "-fPIC"], isa=ISA[request.param])
    L = ctypes.CDLL(str(so))
    L.bx_popcount_ref.argtypes = L.bx_popcount.argtypes = [ctypes.c_uint32]
    L.bx_pack_signs.argtypes = L.bx_pack_signs_ref.argtypes = [u32p, f32p, ctypes.c_int]
    L.bx_bdot.argtypes = L.bx_bdot_ref.argtypes = [u32p, u32p, ctypes.c_int]
    L.bx_bdot.restype = L.bx_bdot_ref.restype = ctypes.c_int32
    L.bx_binlinear.argtypes = L.bx_binlinear_ref.argtypes = L.bx_binlinear_slices_ref.argtypes = \
        [f32p, u32p, u32p, f32p, f32p, ctypes.c_int, ctypes.c_int]
    L.bx_layernorm.argtypes = [f32p, f32p, f32p, f32p, ctypes.c_int]
    L.bx_layernorm_rows.argtypes = [f32p, f32p, f32p, f32p, ctypes.c_int, ctypes.c_int]
    L.bx_attend.argtypes = [f32p, f32p, i32p, u32p, u32p, ctypes.c_int, f32p, ctypes.c_int, ctypes.c_int,
                            ctypes.c_int, ctypes.c_float, f32p]
    L.bx_exp_table.argtypes = [f32p, ctypes.c_float, ctypes.c_int]
    L.bx_exit_stats.argtypes = [f32p, ctypes.c_int, ctypes.POINTER(ctypes.c_int32),
                                ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_float)]
    for fn in ("shim_expf", "shim_logf", "shim_sigmoidf"):
        getattr(L, fn).argtypes = [ctypes.c_float]
        getattr(L, fn).restype = ctypes.c_float
    L.shim_sigmoid_array.argtypes = [f32p, ctypes.c_int]
    L.shim_exp_shift_array.argtypes = [f32p, ctypes.c_float, ctypes.c_int]
    return L


def bits(x):
    return np.asarray(x, dtype=np.float32).view(np.uint32)


def test_popcount_portable_and_optimised(lib):
    rng = np.random.default_rng(0)
    vals = list(rng.integers(0, 2**32, 20000, dtype=np.uint64)) + [0, 1, 2**31, 2**32 - 1, 0x55555555]
    for v in vals:
        want = bin(int(v)).count("1")
        assert lib.bx_popcount_ref(int(v)) == want, f"ERROR at {int(v):#x}: ref {lib.bx_popcount_ref(int(v))} want {want}"
        assert lib.bx_popcount(int(v)) == want


@pytest.mark.parametrize("n", SIZES)
def test_pack_signs_matches_artifact_packing(lib, n):
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n).astype(np.float32)
    x[:: max(1, n // 4)] = 0.0
    x[n // 2] = -0.0
    want = artifact.pack_signs(x[None])[0]
    for fn in (lib.bx_pack_signs, lib.bx_pack_signs_ref):
        out = np.zeros((n + 31) // 32, dtype=np.uint32)
        fn(out, x, n)
        assert np.array_equal(out, want)


@pytest.mark.parametrize("n", SIZES)
def test_binary_dot_is_exact(lib, n):
    rng = np.random.default_rng(100 + n)
    for _ in range(50):
        a, w = rng.standard_normal((2, n)).astype(np.float32)
        want = int(np.dot(np.where(a < 0, -1, 1), np.where(w < 0, -1, 1)))
        pa, pw = artifact.pack_signs(a[None])[0], artifact.pack_signs(w[None])[0]
        assert lib.bx_bdot(pa, pw, n) == want == lib.bx_bdot_ref(pa, pw, n)


@pytest.mark.parametrize("n_out", [1, 3, 4, 5, 8, 17, 37])
@pytest.mark.parametrize("n_in", SIZES + [192, 256, 512])
def test_binary_linear_layer(lib, n_in, n_out):
    """The 4-row optimised kernel and the reference equal the +-1 float product."""
    rng = np.random.default_rng(200 + n_in + 1000 * n_out)
    x = rng.standard_normal(n_in).astype(np.float32)
    w = rng.standard_normal((n_out, n_in)).astype(np.float32)
    alpha = np.abs(rng.standard_normal(n_out)).astype(np.float32)
    bias = rng.standard_normal(n_out).astype(np.float32)
    y = np.zeros(n_out, dtype=np.float32)
    lib.bx_binlinear(y, artifact.pack_signs(x[None])[0], np.ascontiguousarray(artifact.pack_signs(w)),
                     alpha, bias, n_in, n_out)
    dot = torch.from_numpy(np.where(w < 0, -1.0, 1.0).astype(np.float32) @ np.where(x < 0, -1.0, 1.0).astype(np.float32))
    want = dot * torch.from_numpy(alpha) + torch.from_numpy(bias)
    assert np.array_equal(bits(y), bits(want.numpy()))
    y_ref = np.zeros(n_out, dtype=np.float32)
    lib.bx_binlinear_ref(y_ref, artifact.pack_signs(x[None])[0], np.ascontiguousarray(artifact.pack_signs(w)),
                         alpha, bias, n_in, n_out)
    assert np.array_equal(bits(y_ref), bits(y))


def slices_by_definition(w_signs: np.ndarray) -> np.ndarray:
    """beexgen/core/slices.py's layout written out bit by bit from its docstring: groups of
    32 rows, HEAD + n_in words; word k < PLANES bit plane k of F = n_in - R, word PLANES zero,
    word HEAD + j column j; row q of a group in bit 8 (q % 4) + q // 4."""
    from beexgen.core import slices
    n_out, n_in = w_signs.shape
    groups = -(-n_out // 32)
    signs = np.zeros((32 * groups, n_in), dtype=np.int64)       # padding rows: +1 (bit 0)
    signs[:n_out] = w_signs
    out = np.zeros((groups, slices.HEAD + n_in), dtype=np.uint64)
    for o in range(32 * groups):
        g, q = divmod(o, 32)
        lane = 8 * (q % 4) + q // 4
        f = n_in - int(signs[o].sum())
        for k in range(slices.PLANES):
            out[g, k] |= ((f >> k) & 1) << lane
        for j in range(n_in):
            out[g, slices.HEAD + j] |= int(signs[o, j]) << lane
    return out.astype(np.uint32).reshape(-1)


@pytest.mark.parametrize("n_out", [1, 31, 32, 33, 65])
@pytest.mark.parametrize("n_in", [1, 31, 32, 33, 63, 64, 65, 129])
def test_slices_layout_is_its_definition(n_in, n_out):
    from beexgen.core import slices
    rng = np.random.default_rng(n_in + 100 * n_out)
    w = rng.standard_normal((n_out, n_in)).astype(np.float32)
    got = slices.to_slices(artifact.pack_signs(w), n_in)
    assert got.size == slices.words(n_out, n_in)
    assert np.array_equal(got, slices_by_definition((w < 0).astype(np.int64)))


def test_slices_layout_refuses_what_ten_planes_cannot_hold():
    from beexgen.core import slices
    with pytest.raises(ValueError, match="1..1023"):
        slices.to_slices(np.zeros((32, 32), np.uint32), 1024)


@pytest.mark.parametrize("n_out", [1, 31, 32, 33, 64, 65])
@pytest.mark.parametrize("n_in", SIZES + [192, 256, 512, 513])
def test_binary_linear_layer_in_the_slices_layout(lib, n_in, n_out):
    """The slices layout's portable reference (what the Cortex-M falls back to) equals the
    rows layout's reference bit for bit."""
    from beexgen.core import slices
    rng = np.random.default_rng(700 + n_in + 1000 * n_out)
    x = rng.standard_normal(n_in).astype(np.float32)
    w = rng.standard_normal((n_out, n_in)).astype(np.float32)
    alpha = np.abs(rng.standard_normal(n_out)).astype(np.float32)
    bias = rng.standard_normal(n_out).astype(np.float32)
    xb, wb = artifact.pack_signs(x[None])[0], np.ascontiguousarray(artifact.pack_signs(w))
    y, y_ref = np.zeros(n_out, dtype=np.float32), np.zeros(n_out, dtype=np.float32)
    lib.bx_binlinear_slices_ref(y, xb, slices.to_slices(wb, n_in), alpha, bias, n_in, n_out)
    lib.bx_binlinear_ref(y_ref, xb, wb, alpha, bias, n_in, n_out)
    assert np.array_equal(bits(y), bits(y_ref))


@pytest.mark.parametrize("d", SIZES)
def test_layernorm_bit_exact(lib, d):
    rng = np.random.default_rng(300 + d)
    for scale in (1e-3, 1.0, 1e3):
        x = (rng.standard_normal(d) * scale).astype(np.float32)
        g, b = rng.standard_normal((2, d)).astype(np.float32)
        y = np.zeros(d, dtype=np.float32)
        lib.bx_layernorm(y, x, g, b, d)
        want = fmath.layer_norm(torch.from_numpy(x), torch.from_numpy(g), torch.from_numpy(b)).numpy()
        assert np.array_equal(bits(y), bits(want))


@pytest.mark.parametrize("rows", [1, 3, 8, 9, 17])
@pytest.mark.parametrize("d", [1, 7, 8, 31, 128, 129])
def test_layernorm_rows_bit_exact(lib, rows, d):
    """Rows side by side (SIMD lanes on x86, a last partial group) equal fmath's layer
    norm row by row, also when y is x."""
    rng = np.random.default_rng(350 + 31 * rows + d)
    x = (rng.standard_normal((rows, d)) * rng.choice([1e-3, 1.0, 1e3], (rows, 1))).astype(np.float32)
    g, b = rng.standard_normal((2, d)).astype(np.float32)
    want = fmath.layer_norm(torch.from_numpy(x), torch.from_numpy(g), torch.from_numpy(b)).numpy()
    y = np.zeros_like(x)
    lib.bx_layernorm_rows(y, x, g, b, rows, d)
    assert np.array_equal(bits(y), bits(want))
    lib.bx_layernorm_rows(x, x, g, b, rows, d)
    assert np.array_equal(bits(x), bits(want))


@pytest.mark.parametrize("tau", [0.37, -0.5, 0.0, 3.0])
@pytest.mark.parametrize("n,dh", [(1, 1), (1, 32), (5, 31), (33, 32), (64, 33), (17, 65), (9, 16), (40, 64), (7, 48)])
def test_attention_head_bit_exact(lib, n, dh, tau):
    """bx_exp_table + bx_attend (counts, table weights, V weighting) equal fmath's
    attend_one; negative tau takes the flipped counts."""
    rng = np.random.default_rng(400 + n * dh)
    q = rng.standard_normal(dh).astype(np.float32)
    k = rng.standard_normal((n, dh)).astype(np.float32)
    v = rng.standard_normal((n, dh)).astype(np.float32)
    tau = np.float32(tau)
    o = np.zeros(dh, dtype=np.float32)
    e = np.zeros(n, dtype=np.float32)
    c = np.zeros(n, dtype=np.int32)
    E = np.zeros(dh + 1, dtype=np.float32)
    lib.bx_exp_table(E, tau, dh)
    assert np.array_equal(bits(E), bits(fmath.exp_table(torch.tensor(tau), dh).numpy()))
    kp = np.ascontiguousarray(artifact.pack_signs(k))
    lib.bx_attend(o, e, c, artifact.pack_signs(q[None])[0], kp, kp.shape[1], v, dh, n, dh, tau, E)
    s = torch.from_numpy(np.where(k < 0, -1.0, 1.0).astype(np.float32) @ np.where(q < 0, -1.0, 1.0).astype(np.float32))
    want = fmath.attend_one(s, torch.from_numpy(v), tau, dh).numpy()
    assert np.array_equal(bits(o), bits(want))


def test_exp_log_sigmoid_bit_exact(lib):
    rng = np.random.default_rng(5)
    xs = np.concatenate([rng.uniform(-100, 100, 3000), rng.standard_normal(3000),
                         [0.0, -0.0, -87.0, 88.0, 1e-30, -1e-30]]).astype(np.float32)
    t = torch.from_numpy(xs)
    for fn, ref in (("shim_expf", fmath.bx_exp), ("shim_sigmoidf", fmath.bx_sigmoid)):
        got = np.array([getattr(lib, fn)(float(x)) for x in xs], dtype=np.float32)
        assert np.array_equal(bits(got), bits(ref(t).numpy())), fn
    pos = np.concatenate([np.exp(rng.uniform(-80, 80, 3000)), [1.0, 2.0, 0.5, 1.17549435e-38]]).astype(np.float32)
    got = np.array([lib.shim_logf(float(x)) for x in pos], dtype=np.float32)
    assert np.array_equal(bits(got), bits(fmath.bx_log(torch.from_numpy(pos)).numpy()))


@pytest.mark.parametrize("n", [1, 7, 8, 9, 17, 384])
def test_element_wise_arrays_bit_exact(lib, n):
    """bx_sigmoid_array and bx_exp_shift_array (SIMD lanes plus a scalar tail on x86)
    equal fmath's sigmoid and exp of x - m element by element, clamps included."""
    rng = np.random.default_rng(700 + n)
    x = np.concatenate([rng.uniform(-100, 100, n), rng.standard_normal(n) * 3]).astype(np.float32)
    x[:: 5] = 0.0
    x[1:: 7] = -0.0
    x[2:: 11] = 88.5
    m = np.float32(1.25)
    for chunk in (x[:n], x[n:]):
        got = chunk.copy()
        lib.shim_sigmoid_array(got, n)
        assert np.array_equal(bits(got), bits(fmath.bx_sigmoid(torch.from_numpy(chunk)).numpy()))
        got = chunk.copy()
        lib.shim_exp_shift_array(got, m, n)
        assert np.array_equal(bits(got), bits(fmath.bx_exp(torch.from_numpy(chunk) - torch.tensor(m)).numpy()))


@pytest.mark.parametrize("c", [1, 2, 3, 6, 50])
def test_exit_stats_bit_exact(lib, c):
    rng = np.random.default_rng(600 + c)
    logits = (rng.standard_normal((200, c)) * 5).astype(np.float32)
    logits[0] = 1.5  # all equal: first index wins
    cls, conf, ent = exit_stats(torch.from_numpy(logits))
    for i in range(len(logits)):
        k, p, h = ctypes.c_int32(), ctypes.c_float(), ctypes.c_float()
        lib.bx_exit_stats(np.ascontiguousarray(logits[i]), c, ctypes.byref(k), ctypes.byref(p), ctypes.byref(h))
        assert (k.value, bits(p.value), bits(h.value)) == (cls[i], bits(conf[i]), bits(ent[i])), f"ERROR at row {i}"


@pytest.mark.parametrize("d", SIZES + [256])
def test_slfn_mix_bit_exact(lib, d):
    """bx_slfn_mix (att in place) equals deploy.py's (f1 * x + f2 * att) + s * c."""
    rng = np.random.default_rng(800 + d)
    g = rng.standard_normal(4 * d).astype(np.float32)
    g[: 3 * d] = fmath.bx_sigmoid(torch.from_numpy(g[: 3 * d] * 4)).numpy()
    x, att = (rng.standard_normal((2, d)) * 3).astype(np.float32)
    t = torch.from_numpy(g)
    want = (t[:d] * torch.from_numpy(x) + t[d:2 * d] * torch.from_numpy(att)) + t[2 * d:3 * d] * t[3 * d:]
    lib.bx_slfn_mix.argtypes = [f32p, f32p, f32p, ctypes.c_int]
    lib.bx_slfn_mix(att, g, x, d)
    assert np.array_equal(bits(att), bits(want.numpy()))


@pytest.mark.parametrize("n", SIZES)
def test_vadd_bit_exact(lib, n):
    """bx_vadd (the residual adds), also in place, equals torch's a + b."""
    rng = np.random.default_rng(900 + n)
    a, b = (rng.standard_normal((2, n)) * 10).astype(np.float32)
    a[:: 7] = -0.0
    b[:: 7] = 0.0
    want = bits((torch.from_numpy(a) + torch.from_numpy(b)).numpy())
    lib.bx_vadd.argtypes = [f32p, f32p, f32p, ctypes.c_int]
    y = np.zeros(n, dtype=np.float32)
    lib.bx_vadd(y, a, b, n)
    assert np.array_equal(bits(y), want)
    lib.bx_vadd(b, a, b, n)
    assert np.array_equal(bits(b), want)


@pytest.mark.parametrize("d", SIZES + [256])
def test_embed_row_bit_exact(lib, d):
    """bx_embed_row equals deploy.py's tok_scale * (+-1) + pos_scale * (+-1)."""
    rng = np.random.default_rng(1000 + d)
    tf, pf = rng.standard_normal((2, d)).astype(np.float32)
    ts, ps = (np.abs(rng.standard_normal((2, d))) * 0.3).astype(np.float32)
    ts[:: 9] = 0.0
    tb, pb = artifact.pack_signs(tf[None])[0], artifact.pack_signs(pf[None])[0]
    sgn = lambda v: torch.from_numpy(np.where(v < 0, -1.0, 1.0).astype(np.float32))
    want = torch.from_numpy(ts) * sgn(tf) + torch.from_numpy(ps) * sgn(pf)
    lib.bx_embed_row.argtypes = [f32p, u32p, u32p, f32p, f32p, ctypes.c_int]
    x = np.zeros(d, np.float32)
    lib.bx_embed_row(x, np.ascontiguousarray(tb), np.ascontiguousarray(pb), ts, ps, d)
    assert np.array_equal(bits(x), bits(want.numpy()))
