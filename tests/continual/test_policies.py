"""Policies switch exactly when their trigger fires (synthetic signals, no Avalanche)."""

from __future__ import annotations

import pytest
import torch

import mpsim
from continual.policies import (
    AdaptivePolicy,
    AdaptiveSettings,
    BatchSignals,
    ErrorMonitor,
    FixedPolicy,
    SchedulePolicy,
    error_format,
    make_policy,
)
from continual.precision import CL_PRESETS

QUIET = BatchSignals(loss=0.5, error_underflow=0.0)  # nothing lost, no spike


def _run(policy, signals):
    """Feed batch signals; return the names of the precisions switched to, in order."""
    return [s.to.name for s in (policy.on_batch(x) for x in signals) if s is not None]


def test_fixed_never_switches():
    p = FixedPolicy("e4m3-sr")
    assert p.current is CL_PRESETS["e4m3-sr"] and p.label == "e4m3-sr"
    assert p.on_experience(0) is None and p.on_experience(3) is None
    assert _run(p, [BatchSignals(float("nan"), 1.0, 1.0)] * 5) == []


def test_schedule_switches_at_experience_starts_only():
    p = SchedulePolicy(["bf16", "e5m2", "e4m3-sr"])
    assert p.current.name == "bf16"
    assert p.on_experience(0) is None  # already in bf16
    assert _run(p, [BatchSignals(9.0, 1.0)] * 3) == []
    s = p.on_experience(1)
    assert s.to.name == "e5m2" and s.reason == "schedule: experience 1 in e5m2"
    assert p.on_experience(2).to.name == "e4m3-sr"
    assert p.on_experience(7) is None  # the last entry repeats
    assert make_policy("schedule", "e4m3").label == "schedule:bf16,e4m3"


def test_adaptive_goes_low_after_warmup_when_few_errors_are_lost():
    p = AdaptivePolicy("e4m3-sr", settings=AdaptiveSettings(warmup_batches=3))
    assert p.current.name == "bf16"
    assert p.on_experience(0) is None
    assert _run(p, [QUIET, QUIET]) == []  # still warming up
    (switch,) = [p.on_batch(QUIET)]
    assert switch.to.name == "e4m3-sr"
    assert switch.reason == "errors lost in e5m2: 0.0% <= 20.0% (running mean), loss 0.5"


def test_adaptive_stays_high_while_errors_would_underflow():
    p = AdaptivePolicy("e4m3-sr", settings=AdaptiveSettings(warmup_batches=1, error_decay=0.0))
    assert _run(p, [BatchSignals(0.1, error_underflow=0.5)] * 10) == []
    assert _run(p, [BatchSignals(0.1, error_underflow=0.05)]) == ["e4m3-sr"]


def test_adaptive_leaves_low_on_error_underflow_with_cooldown():
    s = AdaptiveSettings(warmup_batches=0, error_decay=0.0, cooldown_batches=4)
    p = AdaptivePolicy("e5m2-sr", "fp32", s)
    assert _run(p, [QUIET]) == ["e5m2-sr"]
    switch = p.on_batch(BatchSignals(0.5, error_underflow=0.3, error_overflow=0.01))
    assert switch.to.name == "fp32" and switch.reason == "errors lost in e5m2: 31.0% > 20.0% (running mean)"
    assert _run(p, [QUIET] * 4) == []  # cool-down
    assert _run(p, [QUIET]) == ["e5m2-sr"]


def test_adaptive_leaves_low_on_loss_spike():
    p = AdaptivePolicy("e4m3", settings=AdaptiveSettings(warmup_batches=0, cooldown_batches=0))
    assert _run(p, [BatchSignals(0.2)] * 5) == ["e4m3"]
    assert _run(p, [BatchSignals(0.35)]) == []  # above 1.5x but not 2x the running mean
    switch = p.on_batch(BatchSignals(1.0))
    assert switch.to.name == "bf16" and switch.reason.startswith("loss spike: 1 > 2.0 x running mean 0.2")
    assert _run(p, [QUIET]) == ["e4m3"]
    assert p.on_batch(BatchSignals(float("inf"))).reason == "non-finite loss inf"


def test_adaptive_new_experience_starts_high_and_measures_again():
    p = AdaptivePolicy("e4m3-sr", settings=AdaptiveSettings(warmup_batches=2))
    assert _run(p, [QUIET] * 3) == ["e4m3-sr"]
    switch = p.on_experience(1)
    assert switch.to.name == "bf16" and switch.reason == "experience 1 starts: 2 batches in bf16 to measure it"
    assert p.batches == 0 and p.loss_ema is None
    assert _run(p, [QUIET] * 2) == ["e4m3-sr"]
    assert p.monitored().name == "e4m3-sr"


def test_error_monitor_counts_against_the_format():
    fmt = mpsim.parse_format("e5m2")
    m = ErrorMonitor("e5m2")
    tiny = fmt.smallest_subnormal / 4  # rounds to zero
    half = fmt.smallest_subnormal * 0.75  # rounds to the smallest subnormal
    m.observe(torch.tensor([0.0, tiny, -tiny, half, 1.0, fmt.max * 2]))
    assert (m.nonzero, m.underflow, m.overflow) == (5, 2, 1)
    assert m.rates() == (pytest.approx(2 / 5), pytest.approx(1 / 5))
    assert torch.equal(mpsim.quantize(torch.tensor([tiny, half]), "e5m2"), torch.tensor([0.0, fmt.smallest_subnormal]))
    m.reset()
    assert m.rates() == (0.0, 0.0)
    fp32 = ErrorMonitor(None)
    fp32.observe(torch.tensor([1e-40]))
    assert fp32.rates() == (0.0, 0.0)


def test_error_monitor_of_an_mx_precision_counts_errors_lost_in_their_blocks():
    """mxfp4's errors enter the input-gradient GEMM as MXFP4 blocks along the output features: an error below a
    quarter of the block's smallest element step (E2M1: 0.5 x 2**scale) is flushed, whatever its absolute size."""
    assert error_format(CL_PRESETS["mxfp4"]) == "mxfp4_e2m1" and error_format(CL_PRESETS["e4m3"]) == "e5m2"
    assert error_format(CL_PRESETS["fp32"]) is None
    m = ErrorMonitor("mxfp4_e2m1")
    row = torch.zeros(2, 64)
    row[0, 0] = 4.0  # block 0: scale 2**0, smallest step 0.5: 0.2 flushes, 0.3 rounds to 0.5
    row[0, 1], row[0, 2] = 0.2, 0.3
    row[0, 32], row[0, 33] = 4e-6, 1e-6  # block 1: its own scale, so its tiny errors survive
    row[1, 5] = float("inf")
    m.observe(row)
    want = mpsim.quantize_mx(row[:1], "mxfp4_e2m1")
    assert want[0, 1] == 0 and want[0, 2] > 0 and want[0, 33] > 0  # the oracle of the counts below
    assert (m.nonzero, m.underflow, m.overflow) == (6, 1, 1)
    conv = ErrorMonitor("mxfp4_e2m1")  # (B, C, H, W): blocked along the channels
    maps = torch.zeros(1, 40, 2, 2)
    maps[0, 0, 1, 1], maps[0, 1, 1, 1], maps[0, 2, 0, 0] = 4.0, 0.2, 0.2
    conv.observe(maps)
    assert (conv.nonzero, conv.underflow) == (3, 1)  # only the 0.2 that shares a block with the 4.0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "sometimes",
            r"^unknown policy 'sometimes': expected fixed, schedule, schedule:P0,P1,\.\.\., adaptive or adaptive:HIGH$",
        ),
        ("fixed:bf16", r"^unknown policy 'fixed:bf16': "),
        ("adaptive:e4m3x", r"^unknown precision 'e4m3x': "),
        ("adaptive:e4m3", r"^adaptive policy needs two different precisions, not 'e4m3' twice$"),
    ],
)
def test_bad_policies_named(spec, message):
    with pytest.raises(ValueError, match=message):
        make_policy(spec, "e4m3")


def test_bad_settings_named():
    with pytest.raises(ValueError, match=r"^error_limit must be in \[0, 1\], not 2$"):
        AdaptiveSettings(error_limit=2)
    with pytest.raises(ValueError, match=r"^warmup_batches must be an integer >= 0, not -1$"):
        AdaptiveSettings(warmup_batches=-1)
    with pytest.raises(ValueError, match=r"^schedule must be a non-empty sequence of precisions, not 'bf16'$"):
        SchedulePolicy("bf16")
