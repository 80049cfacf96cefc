"""MX block formats against torchao's ``to_mx``: a second oracle beside gfloat (``tests/test_mx.py``).

torchao (``torchao.prototype.mx_formats.mx_tensor.to_mx``) implements five of
the six OCP presets (not MXINT8) and all four of mpsim's scale rules
(``ScaleCalculationMode`` FLOOR, CEIL, RCEIL, EVEN). On CPU, in eager mode:

* random data over a wide range: scales and element codes equal, every block,
  every format and rule;
* edge data: equal on every block except where torchao departs from OCP MX
  v1.0 or from its own rule, each asserted here as torchao's documented code
  computes it, so a change on either side fails a test:

  - **NaN blocks**: both give the NaN scale 0xFF; the element codes beside it
    are don't-care (every value of the block is NaN) and differ (torchao:
    ``x / Inf`` = 0 and NaN elements, or garbage codes for FP6/FP4; mpsim: the
    element's NaN, else 0); not compared.
  - **Inf blocks, floor/ceil/even**: torchao reads the float32 exponent field of
    Inf (255) as ``2**128``, ``E = 128 - emax`` (code ``255 - emax``); mpsim (as
    gfloat) clamps ``log2(Inf)`` to ``E = 127`` (code 254); implementations
    differ here (Microsoft's microxcaling makes such a block's scale NaN). The
    element codes agree (Inf saturates to +-max, the rest flush to 0). RCEIL:
    both code 254.
  - **Tiny blocks (scale code 0, ``E = -127``)**: torchao stores code 0
    (``2**-127``) but divides the elements by ``2**-126`` (floor/ceil/even: the
    float32 scale is clamped to the smallest normal) or by 1 (RCEIL:
    ``exponent == 0`` gives a reciprocal of 1.0), so its elements decode to
    half (or nearly none) of the block. mpsim divides by ``2**-127`` as the
    stored scale says.
  - **RCEIL just above ``max * 2**k``**: torchao's eager fallback computes
    ``ceil(log2(amax / max))`` in float32, and ``log2`` rounds a quotient a few
    ulps above a power of two to that power: ``E`` one too small, the top
    element saturates. NVIDIA's rule (``cvt.rp.satfinite.ue8m0x2.f32`` on the
    quotient, which torchao uses on sm100 under torch.compile) and mpsim's exact
    rule give the smallest ``E`` with ``amax / 2**E <= max``. Also a quotient in
    float32's subnormal range can round down onto ``2**-127`` (code 0 instead of 1).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
mx_tensor = pytest.importorskip(
    "torchao.prototype.mx_formats.mx_tensor",
    reason="torchao is not installed (pip install torchao): the second MX oracle",
)
from torchao.prototype.mx_formats.config import ScaleCalculationMode  # noqa: E402
from torchao.prototype.mx_formats.constants import DTYPE_FP6_E2M3, DTYPE_FP6_E3M2  # noqa: E402

import mpsim  # noqa: E402
from mpsim.mx import MX_PRESETS  # noqa: E402
from mpsim.mx_edges import edge_rows, random_rows  # noqa: E402

#: The OCP presets torchao implements, and its element dtypes for them (no MXINT8 in torchao).
TORCHAO = {
    "mxfp8_e4m3": torch.float8_e4m3fn,
    "mxfp8_e5m2": torch.float8_e5m2,
    "mxfp6_e3m2": DTYPE_FP6_E3M2,
    "mxfp6_e2m3": DTYPE_FP6_E2M3,
    "mxfp4_e2m1": torch.float4_e2m1fn_x2,
}
PRESETS = list(TORCHAO)
MODES = ["floor", "ceil", "rceil", "even"]
F32 = np.float32


# --------------------------------------------------------------------------- the two sides


def unpack_fp4(codes: np.ndarray) -> np.ndarray:
    """Two FP4 codes per byte, the earlier in the low nibble (torchao's ``pack_uint4``, mpsim's ``encode_mx``)."""
    return np.stack([codes & 0xF, codes >> 4], axis=-1).reshape(*codes.shape[:-1], -1)


def torchao_blocks(name: str, x: np.ndarray, mode: str, block: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """torchao's (scale codes, element codes one per element) of 2-D float32 ``x``, blocks along the rows."""
    scale, data = mx_tensor.to_mx(torch.from_numpy(x.copy()), TORCHAO[name], block, ScaleCalculationMode(mode))
    scales = scale.view(torch.uint8).numpy().reshape(x.shape[0], -1)
    codes = data.view(torch.uint8).numpy()
    return scales, unpack_fp4(codes) if name == "mxfp4_e2m1" else codes


def mpsim_blocks(name: str, x: np.ndarray, mode: str, block: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """mpsim's ``encode_mx`` in the same layout."""
    fmt = name if block == 32 else f"{name}:b{block}"
    scales, codes = mpsim.encode_mx(x, fmt, scale_mode=mode)
    return scales, unpack_fp4(codes) if name == "mxfp4_e2m1" else codes


def element_codes(name: str, x: np.ndarray, divisor: float) -> np.ndarray:
    """Codes of ``x / divisor`` (exact, float64) rounded to nearest even into the element format, saturating."""
    element = MX_PRESETS[name].element
    values = mpsim.quantize(x.astype(np.float64) / divisor, element, saturate=True)
    return mpsim.encode(element, values)


# --------------------------------------------------------------------------- torchao's documented departures


def classify(name: str, x: np.ndarray, mode: str, mp_scale: int, tao_scale: int) -> str:
    """Which documented torchao behaviour a block falls under ("same" for none)."""
    if np.isnan(x).any():
        return "nan"
    if np.isinf(x).any():
        return "inf" if mode != "rceil" else "same"
    if mode != "rceil":
        return "tiny" if mp_scale == 0 and np.abs(x).max() > 0 else "same"
    if tao_scale == 0 and np.abs(x).max() > 0:
        return "tiny"
    return "rceil_log2" if tao_scale == mp_scale - 1 else "same"


def torchao_divisor(mode: str, tao_scale: int) -> float:
    """What torchao divides a block's elements by, for its scale code (finite blocks)."""
    if mode == "rceil":
        return 1.0 if tao_scale == 0 else 2.0 ** (tao_scale - 127)
    return max(2.0 ** (tao_scale - 127), 2.0**-126)


def assert_log2_rounded(name: str, x: np.ndarray, e: int) -> None:
    """The exact ``amax / max`` is above ``2**e``, its float32 quotient at or just above, float32 log2 of it ``e``."""
    amax, top = F32(np.abs(x).max()), F32(MX_PRESETS[name].element.max)
    assert float(amax) > float(top) * 2.0**e  # the exact rule gives e + 1 (the product is exact in float64)
    q = amax / top
    assert 2.0**e <= q < 2.0**e * (1 + 2.0**-12)
    assert torch.log2(torch.tensor(q)).item() == e


def check_block(name: str, x: np.ndarray, mode: str, mp: tuple[int, np.ndarray], tao: tuple[int, np.ndarray]) -> str:
    """Assert one block: equal, or torchao's documented departure exactly; returns its kind."""
    (mp_scale, mp_codes), (tao_scale, tao_codes) = mp, tao
    kind = classify(name, x, mode, mp_scale, tao_scale)
    emax = MX_PRESETS[name].element_emax
    if kind == "same":
        assert tao_scale == mp_scale
        np.testing.assert_array_equal(tao_codes, mp_codes)
    elif kind == "nan":
        assert tao_scale == mp_scale == 0xFF
    elif kind == "inf":
        assert mp_scale == 254 and tao_scale == 255 - emax  # E = 127 against E = 128 - emax
        np.testing.assert_array_equal(tao_codes, mp_codes)
    elif kind == "tiny":
        assert tao_scale == 0 and mp_scale in (0, 1)
        if mp_scale == 1:  # RCEIL: the float32 quotient (subnormal) or its log2 rounded onto 2**-127
            assert_log2_rounded(name, x, -127)
        np.testing.assert_array_equal(tao_codes, element_codes(name, x, torchao_divisor(mode, 0)))
    else:  # rceil_log2: the float32 quotient lies just above 2**E' and its float32 log2 is E'
        assert_log2_rounded(name, x, tao_scale - 127)
        np.testing.assert_array_equal(tao_codes, element_codes(name, x, torchao_divisor(mode, tao_scale)))
    return kind


def compare(name: str, x: np.ndarray, mode: str, block: int = 32) -> dict[str, int]:
    """Every block of ``x`` checked; how many blocks of each kind."""
    mp_scales, mp_codes = mpsim_blocks(name, x, mode, block)
    tao_scales, tao_codes = torchao_blocks(name, x, mode, block)
    assert mp_scales.shape == tao_scales.shape and mp_codes.shape == tao_codes.shape
    kinds: dict[str, int] = {}
    for i, j in np.ndindex(mp_scales.shape):
        cols = slice(j * block, (j + 1) * block)
        kind = check_block(
            name,
            x[i, cols],
            mode,
            (int(mp_scales[i, j]), mp_codes[i, cols]),
            (int(tao_scales[i, j]), tao_codes[i, cols]),
        )
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", PRESETS)
def test_random_data_bit_identical(name: str, mode: str) -> None:
    """Wide-range random data: every scale and element code equal, no exceptions."""
    x = random_rows(64, 256, seed=5)
    mp_scales, mp_codes = mpsim_blocks(name, x, mode)
    tao_scales, tao_codes = torchao_blocks(name, x, mode)
    np.testing.assert_array_equal(mp_scales, tao_scales)
    np.testing.assert_array_equal(mp_codes, tao_codes)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", PRESETS)
def test_other_block_size_bit_identical(name: str, mode: str) -> None:
    x = random_rows(16, 96, seed=6)
    assert compare(name, x, mode, block=16) == {"same": 16 * 6}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", PRESETS)
def test_edge_blocks_equal_or_torchao_departure(name: str, mode: str) -> None:
    """Edge data: equal, or exactly torchao's documented departure; each departure is really met."""
    kinds = compare(name, edge_rows(name), mode)
    assert kinds["same"] > 100
    assert kinds.get("nan", 0) >= 1 and kinds.get("tiny", 0) >= 1
    if mode == "rceil":
        assert kinds.get("rceil_log2", 0) >= 1 and "inf" not in kinds
    else:
        assert kinds.get("inf", 0) >= 3 and "rceil_log2" not in kinds


@pytest.mark.parametrize("name", PRESETS)
def test_tiny_block_departure_in_values(name: str) -> None:
    """A block at scale code 0: mpsim's elements times 2**-127 are the block; torchao's are half of it."""
    x = np.zeros((1, 32), F32)
    top = MX_PRESETS[name].element.max
    x[0, 0] = top * 2.0**-127  # exactly max times the smallest scale
    scales, codes = mpsim.encode_mx(x, name)
    assert scales.tolist() == [[0]] and mpsim.decode_mx(scales, codes, name)[0, 0] == x[0, 0]
    tao_scales, tao_codes = torchao_blocks(name, x, "floor")
    assert tao_scales.tolist() == [[0]]
    decoded = float(mpsim.decode(MX_PRESETS[name].element, tao_codes[0, :1])[0]) * 2.0**-127
    assert decoded == x[0, 0] / 2  # max / 2 is an element value of every preset: x / 2**-126, exactly


def test_rceil_log2_departure_example() -> None:
    """amax = 1.75 * (1 + 2**-22) in MXFP8 E4M3: exact rceil E = -7; torchao's float32 log2 gives -8."""
    x = np.zeros((1, 32), F32)
    x[0, 0] = np.nextafter(F32(1.75), F32(2))  # 448 * 2**-8 one ulp up
    scales, _ = mpsim.encode_mx(x, "mxfp8_e4m3", scale_mode="rceil")
    tao_scales, tao_codes = torchao_blocks("mxfp8_e4m3", x, "rceil")
    assert int(scales[0, 0]) - 127 == -7 and int(tao_scales[0, 0]) - 127 == -8
    assert tao_codes[0, 0] == 0x7E  # 448: x / 2**-8 saturated
    assert mpsim.quantize_mx(x, "mxfp8_e4m3", scale_mode="rceil")[0, 0] == 1.75  # 224 * 2**-7: nothing saturates
