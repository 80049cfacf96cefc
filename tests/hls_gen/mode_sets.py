"""Mode sets the multi-mode tests share: a training pair of presets, unfused modes of mixed formats, and
accumulator formats that one rounder serves with different grids, specials and roundings."""

from __future__ import annotations

from hls_gen.modes import ArithMode, training_modes

E4M3_SR_BF16 = training_modes(["e4m3-sr", "bf16"])

MODE_SETS = {
    "e4m3-sr+bf16": E4M3_SR_BF16,
    "unfused-mixed": (
        ArithMode(
            "e4m3",
            "e5m6",
            b_format="e5m2",
            product_format="e5m6",
            rounding="stochastic:6",
            product_rounding="stochastic:3",
        ),
        ArithMode("fp16", "fp16", product_format="bf16", rounding="nearest"),
        ArithMode("e2m1", "e6m9", rounding="stochastic:4"),
    ),
    # One rounder, four grids: no subnormals, fnuz (no Inf, no -0), saturating, IEEE; two nearest formats of
    # different widths and two stochastic ones with different random bits.
    "rounder-formats": (
        ArithMode("e4m3", "e6m5ns", rounding="stochastic:5"),
        ArithMode("e5m2", "e5m4fnuz", rounding="nearest"),
        ArithMode("bf16", "e8m7sat", rounding="nearest"),
        ArithMode("e4m3", "fp16", b_format="e5m2", rounding="stochastic:3"),
    ),
}
