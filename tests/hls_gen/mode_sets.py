"""Mode sets the multi-mode tests share: a training pair of presets, and unfused modes of mixed formats."""

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
}
