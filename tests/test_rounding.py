"""parse_rounding: accepted spellings, the Rounding it builds, and whole-message errors."""

from __future__ import annotations

import re

import pytest

from mpsim.rounding import (
    EXACT_RAND_BITS,
    MAX_RAND_BITS,
    Rounding,
    RoundingMode,
    parse_rounding,
)

KNOWN = "nearest, nearest_away, toward_zero, up, down, stochastic"

SPELLINGS = [
    ("nearest", RoundingMode.NEAREST, None),
    ("nearest_even", RoundingMode.NEAREST, None),
    ("rne", RoundingMode.NEAREST, None),
    ("RNE", RoundingMode.NEAREST, None),
    ("  nearest  ", RoundingMode.NEAREST, None),
    ("nearest_away", RoundingMode.NEAREST_AWAY, None),
    ("rna", RoundingMode.NEAREST_AWAY, None),
    ("toward_zero", RoundingMode.TOWARD_ZERO, None),
    ("truncate", RoundingMode.TOWARD_ZERO, None),
    ("rz", RoundingMode.TOWARD_ZERO, None),
    ("up", RoundingMode.UP, None),
    ("ru", RoundingMode.UP, None),
    ("down", RoundingMode.DOWN, None),
    ("rd", RoundingMode.DOWN, None),
    ("stochastic", RoundingMode.STOCHASTIC, None),
    ("Stochastic", RoundingMode.STOCHASTIC, None),
    ("sr", RoundingMode.STOCHASTIC, None),
    ("stochastic:1", RoundingMode.STOCHASTIC, 1),
    ("stochastic:8", RoundingMode.STOCHASTIC, 8),
    ("stochastic:62", RoundingMode.STOCHASTIC, 62),
    ("sr:4", RoundingMode.STOCHASTIC, 4),
    ("sr8", RoundingMode.STOCHASTIC, 8),
    ("SR13", RoundingMode.STOCHASTIC, 13),
    ("sr1", RoundingMode.STOCHASTIC, 1),
]


@pytest.mark.parametrize(("spec", "mode", "bits"), SPELLINGS)
def test_valid_spellings(spec: str, mode: RoundingMode, bits: int | None) -> None:
    rule = parse_rounding(spec)
    assert rule == Rounding(mode, bits)
    assert rule.stochastic == (mode is RoundingMode.STOCHASTIC)


@pytest.mark.parametrize(("spec", "mode", "bits"), SPELLINGS)
def test_str_round_trips(spec: str, mode: RoundingMode, bits: int | None) -> None:
    rule = parse_rounding(spec)
    assert parse_rounding(str(rule)) == rule


def test_every_mode_value_parses_to_itself() -> None:
    for mode in RoundingMode:
        assert parse_rounding(mode.value) == Rounding(mode)
        assert parse_rounding(mode) == Rounding(mode)


def test_rand_bits_argument() -> None:
    assert parse_rounding("stochastic", 8) == Rounding(RoundingMode.STOCHASTIC, 8)
    assert parse_rounding("stochastic:8", 8) == Rounding(RoundingMode.STOCHASTIC, 8)
    assert parse_rounding("sr8", None) == Rounding(RoundingMode.STOCHASTIC, 8)
    assert parse_rounding(RoundingMode.STOCHASTIC, 5) == Rounding(RoundingMode.STOCHASTIC, 5)
    rule = Rounding(RoundingMode.STOCHASTIC, 3)
    assert parse_rounding(rule) is rule
    assert parse_rounding(rule, 3) is rule


def test_kernel_rand_bits() -> None:
    assert EXACT_RAND_BITS == 62 and MAX_RAND_BITS == 62
    assert parse_rounding("stochastic").kernel_rand_bits == EXACT_RAND_BITS
    assert parse_rounding("stochastic:5").kernel_rand_bits == 5
    for mode in RoundingMode:
        if mode is not RoundingMode.STOCHASTIC:
            assert parse_rounding(mode.value).kernel_rand_bits == 0


@pytest.mark.parametrize("spec", ["foo", "nearest_odd", "stoch", "", "s r"])
def test_unknown_rounding(spec: str) -> None:
    msg = f"unknown rounding {spec!r}: expected one of {KNOWN} (stochastic:K for K random bits)"
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        parse_rounding(spec)


def test_unknown_rounding_with_count() -> None:
    msg = f"unknown rounding 'foo:3': expected one of {KNOWN} (stochastic:K for K random bits)"
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        parse_rounding("foo:3")


@pytest.mark.parametrize("spec", ["stochastic:0", "sr0", "stochastic:63", "sr100"])
def test_bit_count_out_of_range(spec: str) -> None:
    count = spec.split(":")[-1] if ":" in spec else spec[2:]
    msg = (
        f"unknown rounding {spec!r}: random-bit count must be 1..62 ('stochastic' alone rounds exactly), not {count!r}"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        parse_rounding(spec)


@pytest.mark.parametrize(
    ("spec", "count"), [("stochastic:x", "x"), ("stochastic:", ""), ("stochastic:-1", "-1"), ("sr:1.5", "1.5")]
)
def test_bit_count_not_an_integer(spec: str, count: str) -> None:
    msg = f"unknown rounding {spec!r}: random-bit count must be a positive integer, not {count!r}"
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        parse_rounding(spec)


@pytest.mark.parametrize("spec", ["nearest", "toward_zero", "up", "down", "nearest_away"])
def test_rand_bits_with_deterministic_mode(spec: str) -> None:
    value = RoundingMode(spec).value
    msg = f"random bits only apply to stochastic rounding, not to {value!r} (got rand_bits=8)"
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        parse_rounding(spec, 8)


def test_count_in_deterministic_spec() -> None:
    msg = "random bits only apply to stochastic rounding, not to 'nearest' (got rand_bits=4)"
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        parse_rounding("nearest:4")


@pytest.mark.parametrize(("spec", "bits"), [("stochastic:8", 4), ("sr8", 16), ("stochastic:1", 2)])
def test_contradicting_rand_bits(spec: str, bits: int) -> None:
    msg = f"rand_bits={bits!r} contradicts rounding {spec!r}"
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        parse_rounding(spec, bits)


def test_contradicting_rand_bits_with_rounding_object() -> None:
    with pytest.raises(ValueError, match=r"^rand_bits=4 contradicts rounding 'stochastic:8'$"):
        parse_rounding(Rounding(RoundingMode.STOCHASTIC, 8), 4)
    with pytest.raises(ValueError, match=r"^rand_bits=4 contradicts rounding 'stochastic'$"):
        parse_rounding(Rounding(RoundingMode.STOCHASTIC), 4)


@pytest.mark.parametrize("bits", [0, 63, -1])
def test_rand_bits_argument_out_of_range(bits: int) -> None:
    with pytest.raises(ValueError, match=rf"^random bits must be 1\.\.62 or None, not {bits}$"):
        parse_rounding("stochastic", bits)


@pytest.mark.parametrize("bits", [True, 2.0, "8"])
def test_rand_bits_argument_not_an_integer(bits: object) -> None:
    msg = f"random bits must be an integer or None, not {bits!r}"
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        parse_rounding("stochastic", bits)  # type: ignore[arg-type]


@pytest.mark.parametrize("spec", [3, None, 1.5])
def test_not_a_string(spec: object) -> None:
    msg = f"rounding must be a string or a Rounding, not {spec!r}"
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        parse_rounding(spec)  # type: ignore[arg-type]


def test_rounding_mode_must_be_enum() -> None:
    with pytest.raises(ValueError, match=r"^rounding mode must be a RoundingMode, not 'nearest'$"):
        Rounding("nearest")  # type: ignore[arg-type]
