"""The declared NAS search space: the file format, its checks before any trial, sampling, and a tiny real search."""

from __future__ import annotations

import csv
import itertools
import json
import re
import shutil
from pathlib import Path

import optuna
import pytest
import yaml

from hls_gen.nas import (
    DIRECTIONS,
    Candidate,
    NASConfig,
    array_for,
    build_torch,
    open_study,
    precision_config,
    run_name,
    run_nas,
    sample,
)
from hls_gen.nas_model import mx_backward
from hls_gen.nas_space import (
    IntRange,
    SearchSpace,
    check_hardware,
    choices,
    load_space,
    space_from_dict,
    space_to_dict,
    space_yaml,
)
from hls_gen.network import NetworkSpec
from hls_gen.perf_model import estimate
from mpsim.formats import parse_format
from mpsim.nn import quantize_model

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "nas_space.yaml"
STORED = ROOT / "results" / "nas" / "study.db"  # the committed study, sampled before the space could be declared


def _shape(arch: str) -> tuple[int, ...]:
    return (64,) if arch == "mlp" else (1, 8, 8)


def _propose(space: SearchSpace, seed: int, trials: int, population: int = 16) -> list[optuna.trial.FrozenTrial]:
    """What NSGA-II proposes for ``space`` in the objective's order (``arch`` first), with constant objectives."""

    def objective(trial: optuna.trial.Trial) -> tuple[float, float, float]:
        arch = trial.suggest_categorical("arch", list(space.archs))
        sample(trial, space, _shape(arch), 10)
        return 0.0, 0.0, 0.0

    sampler = optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
    study = optuna.create_study(directions=list(DIRECTIONS), sampler=sampler)
    study.optimize(objective, n_trials=trials)
    return study.trials


def test_the_default_space_samples_what_the_stored_study_sampled() -> None:
    """results/nas/study.db was sampled by the code before the declared space (seed 0, 16 per generation): the
    default space proposes its first generation again, parameter for parameter and distribution for distribution,
    and every stored trial's parameters give back its stored network and array."""
    stored = optuna.load_study(study_name="mpsim-nas", storage=f"sqlite:///{STORED}").get_trials()
    space = SearchSpace()
    population = 16  # open_study's min(20, max(4, 50 // 3)) for the committed --trials 50
    again = _propose(space, seed=0, trials=population)
    assert [t.params for t in again] == [t.params for t in stored[:population]]
    assert [t.distributions for t in again] == [t.distributions for t in stored[:population]]
    for trial in stored:
        candidate = sample(optuna.trial.FixedTrial(trial.params), space, _shape(trial.params["arch"]), 10)
        assert candidate.network.to_dict()["layers"] == trial.user_attrs["network"]["layers"]
        assert array_for(candidate).name == trial.user_attrs["array_config"]


def test_a_study_stored_before_the_space_grew_resumes(tmp_path: Path) -> None:
    shutil.copy(STORED, tmp_path / "study.db")
    study = open_study(NASConfig(trials=50), tmp_path)  # no "other settings" refusal
    assert study.user_attrs["nas_config"]["space"]["mul"] == "e4m3"  # the old record, as it was stored
    with pytest.raises(ValueError, match=r"\(interleaves \[1\] there, \[1, 8\] here\)"):
        open_study(NASConfig(trials=50, space=SearchSpace(interleaves=(1, 8))), tmp_path)
    # it was stored before the estimators, and trained every trial: it is a study of the full estimator
    with pytest.raises(ValueError, match=r"\(estimator 'full' there, 'proxy' here; "):
        open_study(NASConfig(trials=50, estimator="proxy", proxy_threshold=None), tmp_path)
    assert run_name(NASConfig()) == "digits_s0"


@pytest.mark.parametrize("space", [SearchSpace(), load_space(EXAMPLE)], ids=["default", "example"])
def test_print_space_reads_back_to_the_same_space(space: SearchSpace, tmp_path: Path) -> None:
    text = space_yaml(space)
    assert space_from_dict(yaml.safe_load(text)) == space
    (tmp_path / "space.json").write_text(json.dumps(space_to_dict(space)))
    assert load_space(tmp_path / "space.json") == space
    check_hardware(space)


def test_ranges_expand_into_their_members(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(
        "layer:\n"
        "  operands: [e4m3, {exp: [2, 4], man: {min: 1, max: 3}}]\n"
        "  accumulators: [{exp: 5, man: [6, 10]}, fp32]\n"
        "  roundings: [nearest, {stochastic: {min: 4, max: 12, step: 4}}, {stochastic: [2, 3]}]\n"
        "network:\n  mlp: {depth: 1, width: {min: 16, max: 48, step: 16}}\n"
        "array: {rows: {min: 1, max: 4}, cols: [2, 8], pipeline: [0, 2]}\n"
    )
    space = load_space(path)
    operands = ["e4m3"] + [f"e{e}m{m}" for e in range(2, 5) for m in range(1, 4) if (e, m) != (4, 3)]
    assert sorted(space.mul) == sorted(operands) and space.mul[0] == "e4m3"  # e4m3 once, where it was listed first
    assert space.accs == (*(f"e5m{m}" for m in range(6, 11)), "fp32")
    assert space.roundings == ("nearest", *(f"stochastic:{k}" for k in (4, 8, 12, 2, 3)))
    assert (space.mlp_depths, space.mlp_widths) == ((1,), IntRange(16, 48, 16))
    assert choices(space.mlp_widths) == (16, 32, 48)
    assert (space.arrays, space.array_rows, space.array_cols, space.pipelines) == ((), IntRange(1, 4), (2, 8), (0, 2))
    assert space.cnn_channels == SearchSpace().cnn_channels  # what the file leaves out is the default's


#: (space file, the one line it gets). Values are checked by load_space, what the hardware builds by
#: check_hardware; both before any trial.
BAD = [
    (
        {"layer": {"operands": ["e4m3", "e9m9"]}},
        "S: layer.operands: impossible format 'e9m9': exponent bits must be 1..8, not 9",
    ),
    (
        {"layer": {"accumulators": ["fp16", "fp99"]}},
        "S: layer.accumulators: unknown format 'fp99': expected one of fp32, tf32, fp16, bf16, e5m2, e4m3, "
        "e4m3fnuz, e5m2fnuz, e3m2, e2m3, e2m1, eXmY[fn|fnuz|f][bN][ns][sat], qI.F or uqI.F",
    ),
    (
        {"layer": {"roundings": ["nearest", "toward_zero"]}},
        "S: layer.roundings toward_zero: accumulator rounding must be 'nearest' or 'stochastic:K', not "
        "'toward_zero': the hardware implements only these",
    ),
    (
        {"layer": {"roundings": [{"stochastic": {"min": 8, "max": 40}}]}},
        "S: layer.roundings stochastic:33: accumulator rounding takes 33 random bits, more than the 32-bit LFSR holds",
    ),
    (
        {"layer": {"roundings": [{"stochastic": {"min": 12, "max": 4}}]}},
        "S: layer.roundings.stochastic: empty range: min 12 > max 4",
    ),
    (
        {"layer": {"operands": [{"exp": [5, 2], "man": [1, 3]}]}},
        "S: layer.operands.exp: empty range: min 5 > max 2",
    ),
    (
        {"layer": {"operands": [{"exp": [2, 5]}]}},
        "S: layer.operands: missing 'man' (it takes exp, man)",
    ),
    (
        {"layer": {"operands": []}},
        "S: layer.operands: expected format names or {exp, man} ranges, not an empty list",
    ),
    (
        {"layer": {"operands": ["e5m11"]}},
        "S: layer.operands e5m11: multiplier operand format must be at most 16 bits wide, not e5m11 (17 "
        "bits): the multiplier supports FP4..FP16/bf16 operands",
    ),
    (
        {"layer": {"operands": ["e5m2"], "accumulators": ["e3m2"]}},
        "S: layer.operands e5m2 with layer.accumulators e3m2 and layer.roundings nearest: accumulator format "
        "e3m2 has no NaN, but operand format e5m2 brings NaN or Inf; use a format with NaN or finite operand "
        "formats",
    ),
    (
        {"layer": {"operands": ["mxfp8_e4m3", "e4m3"]}},
        "S: layer.operands: MX operand format mxfp8_e4m3 is a whole-network choice (an array runs one MX "
        "arithmetic, and no element format beside it): give it under network.operands",
    ),
    (
        {"network": {"operands": ["mxint8"]}},
        "S: network.operands mxint8: MX operand format a must have floating-point elements, not mxint8 "
        "(elements int8): the hardware generator has no fixed-point datapath",
    ),
    (
        {"network": {"operands": ["mxfp8_e4m3"]}, "array": {"pipeline": [1, 7]}},
        "S: network.operands mxfp8_e4m3 with array.pipeline 7: MX MAC pipeline registers must be 0..6, not 7",
    ),
    (
        {"network": {"operands": ["e4m3"]}, "layer": {"operands": ["e4m3"]}},
        "S: operands are chosen per network (network.operands) or per layer (layer.operands), not both",
    ),
    (
        {"network": {"families": ["mlp", "rnn"]}},
        "S: network.families: unknown family 'rnn': expected mlp, cnn",
    ),
    (
        {"network": {"mlp": {"dept": [1]}}},
        "S: unknown key 'network.mlp.dept': expected depth, width",
    ),
    (
        {"netwerk": {}},
        "S: unknown key 'netwerk': expected network, layer, array",
    ),
    (
        {"network": {"mlp": "deep"}},
        "S: network.mlp: expected a mapping, not 'deep'",
    ),
    (
        {"network": {"mlp": {"width": {"min": 64, "max": 16}}}},
        "S: network.mlp.width: empty range: min 64 > max 16",
    ),
    (
        {"network": {"mlp": {"width": {"min": 16, "max": 60, "step": 16}}}},
        "S: network.mlp.width: range 16..60 does not end on a step of 16",
    ),
    (
        {"network": {"mlp": {"width": []}}},
        "S: network.mlp.width: expected integers, a list of them or {min, max, step}, not an empty list",
    ),
    (
        {"network": {"cnn": {"channels": [0, 4]}}},
        "S: network.cnn.channels: sizes must be at least 1, not 0",
    ),
    (
        {"network": {"cnn": {"depth": {"min": 0, "max": 2}}}},
        "S: network.cnn.depth: sizes must be at least 1, not 0",
    ),
    (
        {"array": {"sizes": ["65x1"]}},
        "S: array.sizes 65x1: MAC array rows must be 1..64, not 65",
    ),
    (
        {"array": {"sizes": ["0x4"]}},
        "S: array.sizes: array size must be ROWSxCOLS with both at least 1, such as 4x4, not '0x4'",
    ),
    (
        {"array": {"rows": [1], "cols": {"min": 1, "max": 80}}},
        "S: array.cols 65: MAC array columns must be 1..64, not 65",
    ),
    (
        {"array": {"rows": [1, 2]}},
        "S: array.rows and array.cols come together (or array.sizes alone)",
    ),
    (
        {"array": {"pipeline": [1, 3]}},
        "S: array.pipeline 3: MAC pipeline registers must be 0..2, not 3",
    ),
    (
        {"array": {"interleave": [1, 17]}},
        "S: array.interleave 17: MAC interleave must be 1..16, not 17",
    ),
    (
        {"layer": {"operands": [{"exp": [2, 5], "man": [1, 5]}]}, "network": {"mlp": {"depth": {"min": 0, "max": 20}}}},
        "S: layer.operands: 20 operand formats per layer in networks of up to 21 layers may need more than "
        "the 16 modes an array runs; give fewer formats or shallower networks",
    ),
]


@pytest.mark.parametrize(("data", "message"), BAD, ids=[m.split(": ")[1][:40] for _, m in BAD])
def test_a_bad_space_is_one_line_naming_the_key_and_value(data: dict, message: str) -> None:
    def load_and_check() -> None:
        try:
            check_hardware(space_from_dict(data, "S"))
        except ValueError as error:
            raise ValueError(str(error) if str(error).startswith("S: ") else f"S: {error}") from None

    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        load_and_check()


def test_a_space_samples_its_distributions_seeded() -> None:
    space = load_space(EXAMPLE)
    first, second = _propose(space, seed=5, trials=24, population=8), _propose(space, seed=5, trials=24, population=8)
    assert [t.params for t in first] == [t.params for t in second]
    assert [t.params for t in first] != [t.params for t in _propose(space, seed=6, trials=24, population=8)]
    for trial in first:
        dist = trial.distributions
        # ranges are int distributions with their step, lists categorical
        if trial.params["arch"] == "mlp" and trial.params["mlp_depth"]:
            assert dist["mlp_width_0"] == optuna.distributions.IntDistribution(16, 256, step=16)
        assert dist["array_rows"] == optuna.distributions.IntDistribution(1, 8)
        assert dist["array_cols"] == optuna.distributions.CategoricalDistribution([1, 2, 4, 8])
        assert dist["mul_0"] == optuna.distributions.CategoricalDistribution(list(space.mul))


def test_every_array_the_example_space_samples_is_built() -> None:
    """check_hardware's promise: every configuration the space produces is one the generator builds."""
    space = load_space(EXAMPLE)
    for trial in _propose(space, seed=1, trials=30, population=10):
        candidate = sample(optuna.trial.FixedTrial(trial.params), space, _shape(trial.params["arch"]), 10)
        array = array_for(candidate)
        array.name  # noqa: B018 (builds the array: the generator's checks)
        layers = candidate.network.layers
        # one mode per operand format: the widest accumulator and the most random bits of its layers
        expected = set()
        for mul in {layer.mul for layer in layers}:
            mine = [layer for layer in layers if layer.mul == mul]
            acc = max((layer.acc for layer in mine), key=lambda f: (parse_format(f).bits, parse_format(f).man_bits))
            ks = [int(layer.rounding.partition(":")[2]) for layer in mine if layer.rounding != "nearest"]
            expected.add((mul, acc, f"stochastic:{max(ks)}" if ks else "nearest"))
        assert {(m.a_format, m.acc_format, m.rounding) for m in array.arith_modes} == expected
        assert (array.rows, array.cols, array.interleave, array.pipeline) == (
            trial.params["array_rows"],
            trial.params["array_cols"],
            trial.params.get("interleave", 1),
            trial.params.get("pipeline", 1),
        )


def test_an_mx_network_trains_and_costs_in_its_mx_format() -> None:
    space = SearchSpace(
        archs=("mlp",), mlp_depths=(1,), mlp_widths=(16,), mul=("mxfp8_e4m3", "e4m3"), mul_scope="network"
    )
    check_hardware(space)
    params = {"arch": "mlp", "mul": "mxfp8_e4m3", "mlp_depth": 1, "mlp_width_0": 16, "array": "4x4"}
    params |= {"acc_0": "fp16", "rounding_0": "stochastic:8", "acc_1": "e5m6", "rounding_1": "nearest"}
    candidate = sample(optuna.trial.FixedTrial(params), space, (64,), 10)
    assert {layer.mul for layer in candidate.network.layers} == {"mxfp8_e4m3"}
    array = array_for(candidate)
    assert array.mx and (array.a_format, array.acc_format, array.rounding) == ("mxfp8_e4m3", "fp16", "stochastic:8")
    model = build_torch(candidate.network)
    model, _ = quantize_model(model, precision_config(candidate.network, model, 0), strict=True)
    backward, elements = mx_backward("mxfp8_e4m3")
    for module, layer in zip((model[0], model[2]), candidate.network.layers):
        p = module.precision
        assert (p.forward.mul, p.forward.acc, p.forward.rounding) == (layer.mul, layer.acc, layer.rounding)
        assert (p.grad_input.mul, p.grad_weight.mul) == (f"{backward},{layer.mul}", f"{layer.mul},{backward}")
        assert p.grad_input.mul_rounding == elements and p.weight.format is None  # the blocks quantize, not the tensor
    cost = estimate(candidate.network, array, fmax_mhz=25.0)
    assert [c.mul for c in cost.layers] == ["mxfp8_e4m3"] * 2


def test_a_tiny_search_uses_the_sampled_formats(tmp_path: Path) -> None:
    """Two trials, one epoch: the sampled operand, accumulator and rounding of each layer are the ones its training
    ran (its PrecisionConfig), its cost counted (perf_model per layer, the array's modes) and its results record."""
    path = tmp_path / "space.yaml"
    path.write_text(
        "network: {families: [mlp], mlp: {depth: [1], width: [16]}}\n"
        "layer:\n  operands: [e4m3, e5m2, e3m2]\n  accumulators: [e5m6, fp16]\n"
        "  roundings: [nearest, {stochastic: {min: 4, max: 6}}]\n"
        "array: {sizes: [2x2, 1x4], interleave: [1, 2]}\n"
    )
    space = load_space(path)
    config = NASConfig(trials=2, epochs=1, batch_size=128, proxy_threshold=None, space=space)
    out = tmp_path / "nas"
    study = run_nas(config, out, progress=False)
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 2
    with open(out / "trials.csv") as handle:
        rows = {int(r["trial"]): r for r in csv.DictReader(handle)}
    # what the checks below need to see (seed 0 draws it): a format other than the default, two in one network
    sampled_muls = [[t.params[f"mul_{i}"] for i in range(2)] for t in trials]
    assert {m for pair in sampled_muls for m in pair} - {"e4m3"} and any(len(set(p)) == 2 for p in sampled_muls)
    for trial in trials:
        p = trial.params
        sampled = [(p[f"mul_{i}"], p[f"acc_{i}"], p[f"rounding_{i}"]) for i in range(2)]
        network = NetworkSpec.from_dict(trial.user_attrs["network"])
        assert [(l.mul, l.acc, l.rounding) for l in network.layers] == sampled
        # training: each layer's PrecisionConfig override is its sampled arithmetic
        model = build_torch(network)
        model, _ = quantize_model(model, precision_config(network, model, 0), strict=True)
        for module, (mul, acc, rounding) in zip((model[0], model[2]), sampled):
            prec = module.precision
            assert (prec.weight.format, prec.activation.format) == (mul, mul)
            assert prec.grad.format == ("e5m2" if mul == "e4m3" else mul)
            for gemm in (prec.forward, prec.grad_input, prec.grad_weight):
                assert (gemm.acc, gemm.rounding) == (acc, rounding)
        # cost: the array runs each layer's arithmetic, and the objectives are the model's on it
        candidate = Candidate(
            network, "mlp", tuple(map(int, trial.user_attrs["array"].split("x"))), p.get("interleave", 1)
        )
        array = array_for(candidate)
        assert array.name == trial.user_attrs["array_config"] == rows[trial.number]["array_config"]
        modes = {(m.a_format, m.acc_format, m.rounding) for m in array.arith_modes}
        assert {mul for mul, _, _ in sampled} == {m for m, _, _ in modes}
        cost = estimate(network, array, fmax_mhz=config.fmax_mhz)
        assert [(c.mul, c.acc, c.rounding) for c in cost.layers] == sampled
        assert trial.values[1:] == [pytest.approx(cost.latency_us), pytest.approx(cost.energy_uj)]
        # results: the per-layer formats in trials.csv
        row = rows[trial.number]
        assert [row["muls"].split(), row["accs"].split(), row["roundings"].split()] == [list(x) for x in zip(*sampled)]


def test_the_modes_check_counts_what_a_network_can_hold() -> None:
    """The modes check counts what a network can hold: min(formats, layers) against the generator's limit."""
    from hls_gen.modes import MAX_MODES

    formats = [f"e{e}m{m}" for e, m in itertools.product(range(2, 6), range(1, 6))][: MAX_MODES + 1]
    fits = SearchSpace(archs=("mlp",), mlp_depths=(MAX_MODES - 1,), mul=tuple(formats))
    check_hardware(fits)  # 17 formats, 16 layers: at most 16 modes
    with pytest.raises(ValueError, match=rf"^layer\.operands: {MAX_MODES + 1} operand formats per layer"):
        check_hardware(SearchSpace(archs=("mlp",), mlp_depths=(MAX_MODES,), mul=tuple(formats)))
