"""quantize on torch CPU tensors and on NumPy arrays of every layout; quantize_ste autograd.

Oracles: the NumPy float path on a contiguous copy (itself pinned to the
rounding rule by test_stochastic_rounding.py) and ml_dtypes casts for
round-to-nearest-even.
"""

from __future__ import annotations

import re

import ml_dtypes
import numpy as np
import pytest
import torch

import mpsim
from mpsim.formats import FixedFormat, parse_format
from mpsim.randbits import LFSR, CounterRNG

FORMATS = ["e4m3", "e5m2", "bf16", "e3m4", "q4.11"]
ROUNDINGS = ["nearest", "toward_zero", "up", "down", "nearest_away", "stochastic", "stochastic:8"]
ML_DTYPES = {"e4m3": ml_dtypes.float8_e4m3fn, "e5m2": ml_dtypes.float8_e5m2, "bf16": ml_dtypes.bfloat16}


def sample(fmt_name: str, shape: tuple[int, ...], seed: int = 0, dtype: type = np.float64) -> np.ndarray:
    fmt = parse_format(fmt_name)
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    top = np.log2(float(fmt.max))
    bottom = -fmt.frac_bits - 2 if isinstance(fmt, FixedFormat) else fmt.emin - fmt.man_bits - 2
    x = 2.0 ** rng.uniform(bottom, top, n) * rng.choice([-1.0, 1.0], n)
    return x.astype(dtype).reshape(shape)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    a64 = np.ascontiguousarray(a, dtype=np.float64)
    b64 = np.ascontiguousarray(b, dtype=np.float64)
    return a64.shape == b64.shape and np.array_equal(a64.view(np.uint64), b64.view(np.uint64))


def kw(rounding: str) -> dict:
    return {"seed": 1234} if rounding.startswith("stochastic") else {}


# --------------------------------------------------------------------------- torch equals NumPy


@pytest.mark.parametrize("fmt_name", FORMATS)
@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tensor_equals_numpy(fmt_name: str, rounding: str, dtype: torch.dtype) -> None:
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    x = sample(fmt_name, (17, 23), seed=1, dtype=np_dtype)
    t = torch.from_numpy(x.copy())
    before = t.clone()
    got = mpsim.quantize(t, fmt_name, rounding, **kw(rounding))
    want = mpsim.quantize(x, fmt_name, rounding, **kw(rounding))
    assert isinstance(got, torch.Tensor)
    assert got.dtype == dtype and got.shape == t.shape and got.device.type == "cpu"
    assert same_bits(got.numpy(), want)
    assert torch.equal(t, before)  # input not modified
    assert got.data_ptr() != t.data_ptr()


@pytest.mark.parametrize("fmt_name", ["e4m3", "e5m2", "bf16"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nearest_matches_ml_dtypes(fmt_name: str, dtype: type) -> None:
    """Round-to-nearest-even equals ml_dtypes' cast (float32 values, so the cast rounds once)."""
    x32 = sample(fmt_name, (4000,), seed=2, dtype=np.float32)
    want = x32.astype(ML_DTYPES[fmt_name]).astype(dtype)
    got = mpsim.quantize(torch.from_numpy(x32.astype(dtype)), fmt_name)
    assert same_bits(got.numpy(), want)


def test_input_array_not_modified() -> None:
    x = sample("e4m3", (50,), seed=3)
    before = x.copy()
    out = mpsim.quantize(x, "e4m3", "stochastic", seed=1)
    assert np.array_equal(x, before) and out is not x and not np.shares_memory(out, x)


# --------------------------------------------------------------------------- layouts


def _np_base(shape: tuple[int, ...], dtype: type) -> np.ndarray:
    return sample("e5m2", shape, seed=4, dtype=dtype)


NUMPY_LAYOUTS = {
    "step_slice": lambda d: _np_base((40,), d)[::3],
    "step_slice_2d": lambda d: _np_base((8, 10), d)[::2, 1::3],
    "negative_stride": lambda d: _np_base((30,), d)[::-1],
    "negative_stride_2d": lambda d: _np_base((6, 7), d)[::-1, ::-2],
    "broadcast_stride0": lambda d: np.broadcast_to(_np_base((5,), d), (4, 5)),
    "column_stride0": lambda d: np.broadcast_to(_np_base((4, 1), d), (4, 6)),
    "transposed": lambda d: _np_base((5, 7), d).T,
    "fortran": lambda d: np.asfortranarray(_np_base((5, 7), d)),
    "permuted_3d": lambda d: _np_base((3, 4, 5), d).transpose(2, 0, 1),
    "swapaxes_3d": lambda d: _np_base((3, 4, 5), d).swapaxes(0, 2),
}


@pytest.mark.parametrize("layout", NUMPY_LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
def test_numpy_layouts_equal_contiguous_copy(layout: str, dtype: type, rounding: str) -> None:
    x = NUMPY_LAYOUTS[layout](dtype)
    assert not x.flags.c_contiguous
    got = mpsim.quantize(x, "e5m2", rounding, **kw(rounding))
    want = mpsim.quantize(np.ascontiguousarray(x), "e5m2", rounding, **kw(rounding))
    assert got.shape == x.shape and got.dtype == x.dtype and got.flags.c_contiguous
    assert same_bits(got, want)


def _t_base(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    return torch.from_numpy(sample("e4m3", shape, seed=5, dtype=np_dtype))


TORCH_LAYOUTS = {
    "transposed_t": lambda d: _t_base((6, 9), d).t(),
    "step_slice": lambda d: _t_base((40,), d)[::4],
    "step_slice_2d": lambda d: _t_base((9, 12), d)[1::2, ::3],
    "expanded": lambda d: _t_base((7,), d).expand(3, 7),
    "expanded_column": lambda d: _t_base((5, 1), d).expand(5, 4),
    "permuted": lambda d: _t_base((3, 4, 5), d).permute(2, 0, 1),
    "narrowed": lambda d: _t_base((6, 8), d)[:, 2:5],
}


@pytest.mark.parametrize("layout", TORCH_LAYOUTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("rounding", ["nearest", "stochastic:4"])
def test_tensor_layouts_equal_contiguous_copy(layout: str, dtype: torch.dtype, rounding: str) -> None:
    t = TORCH_LAYOUTS[layout](dtype)
    assert not t.is_contiguous()
    got = mpsim.quantize(t, "e4m3", rounding, **kw(rounding))
    want = mpsim.quantize(t.contiguous(), "e4m3", rounding, **kw(rounding))
    assert got.shape == t.shape and got.dtype == dtype
    assert same_bits(got.numpy(), want.numpy())


# --------------------------------------------------------------------------- shapes and scalars


@pytest.mark.parametrize("shape", [(0,), (3, 0), (0, 4, 2)])
@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
def test_empty(shape: tuple[int, ...], rounding: str) -> None:
    for dtype in (np.float32, np.float64):
        x = np.zeros(shape, dtype=dtype)
        got = mpsim.quantize(x, "e4m3", rounding, **kw(rounding))
        assert isinstance(got, np.ndarray) and got.shape == shape and got.dtype == dtype
    for tdtype in (torch.float32, torch.float64):
        t = torch.zeros(shape, dtype=tdtype)
        got = mpsim.quantize(t, "e4m3", rounding, **kw(rounding))
        assert isinstance(got, torch.Tensor) and got.shape == t.shape and got.dtype == tdtype


def test_empty_does_not_advance_counter() -> None:
    rng = CounterRNG(1)
    mpsim.quantize(np.zeros((3, 0)), "e4m3", "stochastic", seed=rng)
    assert rng.offset == 0


@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
def test_zero_dimensional(rounding: str) -> None:
    for dtype in (np.float32, np.float64):
        x = np.array(1.3, dtype=dtype)
        got = mpsim.quantize(x, "e4m3", rounding, **kw(rounding))
        assert isinstance(got, np.ndarray) and got.shape == () and got.dtype == dtype
        assert same_bits(got.reshape(1), mpsim.quantize(x.reshape(1), "e4m3", rounding, **kw(rounding)))
    for tdtype in (torch.float32, torch.float64):
        t = torch.tensor(1.3, dtype=tdtype)
        got = mpsim.quantize(t, "e4m3", rounding, **kw(rounding))
        assert isinstance(got, torch.Tensor) and got.shape == () and got.dtype == tdtype
        assert same_bits(got.numpy(), mpsim.quantize(t.numpy(), "e4m3", rounding, **kw(rounding)))


@pytest.mark.parametrize("value", [1.3, -2.7, 0.0, 1e-3, 3])
def test_python_float_returns_float(value: float) -> None:
    got = mpsim.quantize(value, "e4m3")
    assert type(got) is float
    assert got == float(mpsim.quantize(np.array([float(value)]), "e4m3")[0])
    sr = mpsim.quantize(value, "e4m3", "stochastic", seed=9)
    assert type(sr) is float
    assert sr == float(mpsim.quantize(np.array([float(value)]), "e4m3", "stochastic", seed=9)[0])


def test_numpy_scalar_and_list() -> None:
    assert type(mpsim.quantize(np.float32(1.3), "e4m3")) is float
    out = mpsim.quantize([1.3, 2.7], "e4m3")
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    assert out.tolist() == [1.25, 2.75]


# --------------------------------------------------------------------------- special values


@pytest.mark.parametrize("fmt_name", ["e4m3", "e5m2", "bf16", "e3m4"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
def test_special_values_tensor(fmt_name: str, dtype: torch.dtype, rounding: str) -> None:
    fmt = parse_format(fmt_name)
    tiny = 2.0 ** (fmt.emin - fmt.man_bits)  # smallest subnormal of the format
    values = [-0.0, 0.0, float("nan"), float("inf"), float("-inf"), tiny, -tiny, 3 * tiny, 2.0**fmt.emin, 1e-45, -1e-45]
    t = torch.tensor(values, dtype=dtype)
    got = mpsim.quantize(t, fmt_name, rounding, **kw(rounding))
    want = mpsim.quantize(t.numpy().copy(), fmt_name, rounding, **kw(rounding))
    assert same_bits(got.numpy(), want)
    g = got.double().numpy()
    assert np.signbit(g[0]) and g[0] == 0 and not np.signbit(g[1]) and g[1] == 0
    assert np.isnan(g[2])
    if fmt.has_inf and not fmt.saturates:
        assert g[3] == np.inf and g[4] == -np.inf
    elif fmt.has_nan and not fmt.saturates:
        assert np.isnan(g[3]) and np.isnan(g[4])
    else:
        assert g[3] == fmt.max and g[4] == -fmt.max
    assert g[5] == tiny and g[6] == -tiny and g[7] == 3 * tiny and g[8] == 2.0**fmt.emin
    assert abs(g[9]) in (0.0, tiny) and abs(g[10]) in (0.0, tiny)


def test_float32_subnormal_inputs() -> None:
    x = np.array([1e-45, -1e-45, 1e-40, 2.0**-127, -(2.0**-130)], dtype=np.float32)
    for fmt_name in ("bf16", "e4m3"):
        got = mpsim.quantize(torch.from_numpy(x), fmt_name)
        want = mpsim.quantize(x.astype(np.float64), fmt_name)
        assert same_bits(got.numpy().astype(np.float64), want)
    want_bf16 = x.astype(ml_dtypes.bfloat16).astype(np.float32)
    assert same_bits(mpsim.quantize(x, "bf16"), want_bf16)


# --------------------------------------------------------------------------- narrow dtypes


def test_float16_numpy_fits() -> None:
    x = sample("e4m3", (200,), seed=6, dtype=np.float16)
    got = mpsim.quantize(x, "e4m3")
    assert got.dtype == np.float16 and got.shape == x.shape
    assert same_bits(got, mpsim.quantize(x.astype(np.float32), "e4m3"))
    sr = mpsim.quantize(x, "e4m3", "stochastic", seed=3)
    assert same_bits(sr, mpsim.quantize(x.astype(np.float32), "e4m3", "stochastic", seed=3))


@pytest.mark.parametrize("tdtype", [torch.float16, torch.bfloat16])
def test_narrow_tensor_fits(tdtype: torch.dtype) -> None:
    x = torch.from_numpy(sample("e4m3", (200,), seed=7, dtype=np.float32)).to(tdtype)
    got = mpsim.quantize(x, "e4m3")
    assert got.dtype == tdtype and got.shape == x.shape
    want = mpsim.quantize(x.float().numpy(), "e4m3")
    assert torch.equal(got.float(), torch.from_numpy(want))
    sr = mpsim.quantize(x, "e4m3", "stochastic", seed=2)
    assert torch.equal(sr.float(), torch.from_numpy(mpsim.quantize(x.float().numpy(), "e4m3", "stochastic", seed=2)))


def _fits_message(fmt: str, dtype_name: str) -> str:
    message = (
        f"format {fmt} has values that {dtype_name} cannot hold exactly; "
        f"pass float32 or float64 input to quantize to {fmt}"
    )
    return f"^{re.escape(message)}$"


def test_float16_refuses_wider_format() -> None:
    with pytest.raises(ValueError, match=_fits_message("bf16", "float16")):
        mpsim.quantize(np.ones(3, dtype=np.float16), "bf16")
    with pytest.raises(ValueError, match=_fits_message("bf16", "float16")):
        mpsim.quantize(torch.ones(3, dtype=torch.float16), "bf16")


def test_bfloat16_refuses_wider_format() -> None:
    fmt = str(parse_format("fp16"))
    with pytest.raises(ValueError, match=_fits_message(fmt, "bfloat16")):
        mpsim.quantize(torch.ones(3, dtype=torch.bfloat16), "fp16")


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.bool_, np.complex64])
def test_numpy_non_float_dtype(dtype: type) -> None:
    msg = f"quantize takes float16, float32 or float64 arrays, not dtype {np.dtype(dtype)}"
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        mpsim.quantize(np.ones(3, dtype=dtype), "e4m3")


@pytest.mark.parametrize("dtype", [">f4", ">f8"])
def test_numpy_byte_swapped_refused(dtype: str) -> None:
    with pytest.raises(ValueError, match=f"not dtype '{dtype}'; convert with x.astype"):
        mpsim.quantize(np.ones(3, dtype=dtype), "e4m3")


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.bool, torch.complex64])
def test_tensor_non_float_dtype(dtype: torch.dtype) -> None:
    msg = f"quantize takes float16, bfloat16, float32 or float64 tensors, not {dtype}"
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        mpsim.quantize(torch.ones(3, dtype=dtype), "e4m3")


def test_non_cpu_tensor_refused() -> None:
    msg = (
        "mpsim has no meta kernel yet: got a tensor on meta; "
        "move it to the CPU explicitly (x.cpu()) if that is what you want"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        mpsim.quantize(torch.empty(3, device="meta"), "e4m3")


def test_unsupported_input_type() -> None:
    with pytest.raises(ValueError, match=r"^quantize takes a NumPy array, a torch tensor or a float, not str$"):
        mpsim.quantize("1.0", "e4m3")
    with pytest.raises(ValueError, match=r"^quantize takes a NumPy array, a torch tensor or a float, not bool$"):
        mpsim.quantize(True, "e4m3")


# --------------------------------------------------------------------------- autograd


def test_requires_grad_input() -> None:
    t = torch.tensor([1.3, -2.7, 100.0], requires_grad=True)
    got = mpsim.quantize(t, "e4m3")
    assert not got.requires_grad
    assert got.tolist() == [1.25, -2.75, 96.0]
    assert t.grad is None


@pytest.mark.parametrize("rounding", ["nearest", "stochastic", "stochastic:6"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_quantize_ste_forward_and_straight_through(rounding: str, dtype: torch.dtype) -> None:
    x = torch.from_numpy(sample("e4m3", (5, 6), seed=8)).to(dtype).requires_grad_(True)
    y = mpsim.quantize_ste(x, "e4m3", rounding, seed=55)
    assert y.requires_grad and y.dtype == dtype and y.shape == x.shape
    assert same_bits(y.detach().numpy(), mpsim.quantize(x.detach().numpy(), "e4m3", rounding, seed=55))
    upstream = torch.from_numpy(sample("e5m2", (5, 6), seed=9)).to(dtype)
    y.backward(upstream)
    assert x.grad is not None and torch.equal(x.grad, upstream)


def test_quantize_ste_rand_bits_and_lfsr() -> None:
    x = torch.from_numpy(sample("e4m3", (64,), seed=10)).requires_grad_(True)
    y = mpsim.quantize_ste(x, "e4m3", "stochastic", rand_bits=5, seed=LFSR(width=16, seed=9))
    want = mpsim.quantize(x.detach().numpy(), "e4m3", "stochastic:5", seed=LFSR(width=16, seed=9))
    assert same_bits(y.detach().numpy(), want)


@pytest.mark.parametrize(
    ("grad_format", "grad_rounding"),
    [("e5m2", "nearest"), ("bf16", "toward_zero"), ("e5m2", "stochastic"), ("q4.11", "stochastic:8")],
)
def test_quantize_ste_gradient_quantized(grad_format: str, grad_rounding: str) -> None:
    x = torch.from_numpy(sample("e4m3", (8, 9), seed=11)).requires_grad_(True)
    upstream = torch.from_numpy(sample("e4m3", (8, 9), seed=12))
    y = mpsim.quantize_ste(x, "e4m3", grad_format=grad_format, grad_rounding=grad_rounding, grad_seed=21)
    y.backward(upstream)
    want = mpsim.quantize(upstream.numpy(), grad_format, grad_rounding, seed=21)
    assert same_bits(x.grad.numpy(), want)


def test_quantize_ste_grad_seed_source_advances() -> None:
    """An int grad_seed becomes one CounterRNG: a second backward draws fresh bits."""
    x = torch.full((100,), 1.3, requires_grad=True)
    upstream = torch.full((100,), 1.0 + 2.0**-4)  # e5m2 neighbours 1 and 1.25, f = 1/4
    y = mpsim.quantize_ste(x, "e4m3", grad_format="e5m2", grad_rounding="stochastic", grad_seed=4)
    y.backward(upstream, retain_graph=True)
    first = x.grad.clone()
    x.grad = None
    y.backward(upstream)
    second = x.grad.clone()
    both = mpsim.quantize(torch.cat([upstream, upstream]), "e5m2", "stochastic", seed=4)
    assert torch.equal(torch.cat([first, second]), both)


def test_quantize_ste_in_a_graph() -> None:
    x = torch.tensor([0.3, 1.7, -5.1], dtype=torch.float64, requires_grad=True)
    y = (mpsim.quantize_ste(x * 2, "e3m4") ** 2).sum()
    y.backward()
    q = mpsim.quantize(x.detach() * 2, "e3m4")
    assert torch.equal(x.grad, 2 * 2 * q)  # d/dx q(2x)^2 = 2 q * 2 under straight-through


@pytest.mark.parametrize("rounding", ["nearest", "stochastic:4"])
def test_narrow_dtypes_strided(rounding: str) -> None:
    """float16 arrays/tensors and bfloat16 tensors, sliced with a step: same as their contiguous copies."""
    x16 = sample("e4m3", (12, 10), seed=13, dtype=np.float32).astype(np.float16)[::2, 1::3]
    got = mpsim.quantize(x16, "e4m3", rounding, **kw(rounding))
    assert got.dtype == np.float16 and got.shape == x16.shape
    assert same_bits(got, mpsim.quantize(np.ascontiguousarray(x16), "e4m3", rounding, **kw(rounding)))
    base = torch.from_numpy(sample("e4m3", (12, 10), seed=14, dtype=np.float32))
    for tdtype in (torch.float16, torch.bfloat16):
        t = base.to(tdtype)[1::2, ::3]
        assert not t.is_contiguous()
        got_t = mpsim.quantize(t, "e4m3", rounding, **kw(rounding))
        assert got_t.dtype == tdtype and got_t.shape == t.shape
        want_t = mpsim.quantize(t.contiguous(), "e4m3", rounding, **kw(rounding))
        assert torch.equal(got_t.float(), want_t.float())
