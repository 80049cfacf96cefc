"""Hardware-aware architecture search: network shape, per-layer precision and array size, on Optuna.

Every trial samples, from a :class:`~hls_gen.nas_space.SearchSpace` (the
default, or one a space file declares), a network (an MLP or a small CNN:
depth, widths, kernel sizes), a per-layer operand format, accumulator format
and rounding, and a MAC array (size, interleave, pipeline); it scores

* **accuracy** by short real training with mpsim's emulated arithmetic at the
  trial's per-layer precision (:class:`mpsim.nn.PrecisionConfig` with one
  override per layer; the layer's operands, accumulator and rounding in
  all three GEMMs, seeded), optionally stopped after a one-epoch proxy when it
  is hopeless;
* **latency** and **energy** of one inference by :func:`hls_gen.perf_model.estimate`
  on the array that runs the trial's arithmetic (per operand format, the widest
  accumulator it uses; stochastic rounding if any layer rounds stochastically), at a nominal
  clock or at the array's Fmax from synthesis and place-and-route
  (:mod:`hls_gen.synth`, cached).

The study is multi-objective (maximise accuracy, minimise latency and
energy) with Optuna's NSGA-II sampler (seeded), stored in SQLite by default
or any database URL Optuna accepts, so several workers can share it and a
rerun of the same command resumes it without redoing finished trials.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hls_gen.array_size import parse_array_size
from hls_gen.nas_space import IntRange, SearchSpace, choices
from hls_gen.network import LayerSpec, NetworkSpec

if TYPE_CHECKING:
    import optuna

    from hls_gen.emit import ArrayConfig

__all__ = [
    "IntRange",
    "NASConfig",
    "SearchSpace",
    "finished_trials",
    "hardware_cost",
    "open_study",
    "pareto_front",
    "run_name",
    "run_nas",
    "sample",
    "train_accuracy",
    "write_results",
]

BENCHMARKS = ("digits",)
OBJECTIVES = ("accuracy", "latency_us", "energy_uj")
DIRECTIONS = ("maximize", "minimize", "minimize")


@dataclass(frozen=True)
class NASConfig:
    """A search: benchmark, trials, training budget, clock, storage, seed."""

    benchmark: str = "digits"
    trials: int = 50
    epochs: int = 4
    batch_size: int = 32
    lr: float = 0.05
    proxy_threshold: float | None = 0.5  # after one epoch, stop a trial below this test accuracy
    batch: int = 1  # inference batch the hardware cost is for
    fmax_mhz: float = 25.0  # nominal clock when not synthesizing
    synth: bool = False
    sram_bytes: int = 32 * 1024
    seed: int = 0
    storage: str | None = None  # default: sqlite:///OUT/study.db
    study_name: str = "mpsim-nas"
    space: SearchSpace = field(default_factory=SearchSpace)

    def __post_init__(self) -> None:
        if self.benchmark not in BENCHMARKS:
            raise ValueError(f"unknown NAS benchmark {self.benchmark!r}: expected one of {', '.join(BENCHMARKS)}")
        for name in ("trials", "epochs", "batch_size", "batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if not self.fmax_mhz > 0:
            raise ValueError(f"fmax_mhz must be positive, not {self.fmax_mhz!r}")


@dataclass(frozen=True)
class Candidate:
    """What a trial sampled: the network with per-layer precision, the array size, interleave and pipeline."""

    network: NetworkSpec
    arch: str
    array: tuple[int, int]
    interleave: int = 1
    pipeline: int = 1


def sample(trial: optuna.trial.BaseTrial, space: SearchSpace, input_shape: tuple[int, ...], classes: int) -> Candidate:
    """Draw a candidate; parameter names are stable so that NSGA-II can cross them over.

    The parameters of the default space are drawn in the order and with the distributions they always had
    (a stored study resumes as it was); a choice added since (the operand formats, the interleave, the
    pipeline) is a parameter only when the space gives it more than one value.
    """
    arch = trial.suggest_categorical("arch", list(space.archs))
    network_mul = _fixed_or_suggest(trial, "mul", space.mul) if space.mul_scope == "network" else None
    layers: list[tuple[str, dict[str, Any]]] = []
    if arch == "mlp":
        depth = _suggest_int(trial, "mlp_depth", space.mlp_depths)
        for i in range(depth):
            layers.append(("Linear", {"out": _suggest_int(trial, f"mlp_width_{i}", space.mlp_widths)}))
        shape: tuple[int, ...] = (int(_prod(input_shape)),)
    else:
        depth = _suggest_int(trial, "cnn_depth", space.cnn_depths)
        for i in range(depth):
            k = _suggest_int(trial, f"cnn_kernel_{i}", space.cnn_kernels)
            channels = _suggest_int(trial, f"cnn_channels_{i}", space.cnn_channels)
            # the last convolution halves the map, as mpsim train's cnn does
            stride = 2 if i == depth - 1 else 1
            layers.append(
                ("Conv2d", {"out": channels, "kernel": (k, k), "padding": (k // 2, k // 2), "stride": (stride, stride)})
            )
        shape = input_shape
    layers.append(("Linear", {"out": classes}))
    specs = []
    for i, (kind, args) in enumerate(layers):
        mul = network_mul or _fixed_or_suggest(trial, f"mul_{i}", space.mul)
        acc = trial.suggest_categorical(f"acc_{i}", list(space.accs))
        rounding = trial.suggest_categorical(f"rounding_{i}", list(space.roundings))
        specs.append(LayerSpec(kind, mul=mul, acc=acc, rounding=rounding, **args))
    if space.arrays:
        array = parse_array_size(trial.suggest_categorical("array", list(space.arrays)))
    else:
        array = (
            _suggest_int(trial, "array_rows", space.array_rows),  # type: ignore[arg-type]
            _suggest_int(trial, "array_cols", space.array_cols),  # type: ignore[arg-type]
        )
    interleave = _fixed_or_suggest(trial, "interleave", space.interleaves)
    pipeline = _fixed_or_suggest(trial, "pipeline", space.pipelines)
    network = NetworkSpec(shape, tuple(specs), f"{arch}-{trial.number}", classes)
    return Candidate(network, arch, array, interleave, pipeline)


def _suggest_int(trial: optuna.trial.BaseTrial, name: str, space: tuple[int, ...] | IntRange) -> int:
    """A categorical choice from a tuple, an int from a range (with its step)."""
    if isinstance(space, IntRange):
        return trial.suggest_int(name, space.min, space.max, step=space.step)
    return trial.suggest_categorical(name, list(space))


def _fixed_or_suggest(trial: optuna.trial.BaseTrial, name: str, space: tuple[Any, ...] | IntRange) -> Any:
    """The one value of a fixed choice (no parameter: the default space samples what it always did), or a draw."""
    values = choices(space) if isinstance(space, IntRange) else space
    if len(values) == 1:
        return values[0]
    return (
        _suggest_int(trial, name, space)
        if isinstance(space, IntRange)
        else trial.suggest_categorical(name, list(values))
    )


def _prod(shape: tuple[int, ...]) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


def build_torch(network: NetworkSpec) -> Any:
    """The fp32 torch model of a network description (ReLU between layers, flatten before a Linear)."""
    from torch import nn

    modules: list[Any] = []
    shapes = network.shapes()
    for i, (layer, (shape_in, _)) in enumerate(zip(network.layers, shapes)):
        if i:
            modules.append(nn.ReLU())
        if layer.kind == "Linear":
            if len(shape_in) != 1:
                modules.append(nn.Flatten())
            modules.append(nn.Linear(_prod(shape_in), layer.out))
        else:
            modules.append(
                nn.Conv2d(
                    shape_in[0],
                    layer.out,
                    layer.kernel,
                    stride=layer.stride,
                    padding=layer.padding,
                    dilation=layer.dilation,
                    groups=layer.groups,
                )
            )
    return nn.Sequential(*modules)


def precision_config(network: NetworkSpec, model: Any, seed: int) -> Any:
    """A :class:`LayerPrecision` override per GEMM layer: operands, accumulator and rounding, as mpsim's presets.

    An element operand format quantizes weights and activations (gradients in e5m2 beside e4m3, as the FP8
    presets, else in the operand format) and every GEMM accumulates in the layer's format and rounding; an MX
    operand format blocks every GEMM's operands (tensors stay fp32), the backward GEMMs' errors in the MX format
    the MX preset of that forward format uses (:func:`mx_backward`).
    """
    from torch import nn

    from mpsim.mx import is_mx_spec
    from mpsim.precision import GemmConfig, LayerPrecision, PrecisionConfig, TensorQuant

    names = [name for name, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    overrides = []
    for name, layer in zip(names, network.layers):
        mul, acc, rounding = layer.mul or "e4m3", layer.acc or "fp32", layer.rounding or "nearest"
        if is_mx_spec(mul):
            backward, elements = mx_backward(mul)
            precision = LayerPrecision(
                forward=GemmConfig(mul=mul, acc=acc, rounding=rounding),
                grad_input=GemmConfig(mul=f"{backward},{mul}", acc=acc, rounding=rounding, mul_rounding=elements),
                grad_weight=GemmConfig(mul=f"{mul},{backward}", acc=acc, rounding=rounding, mul_rounding=elements),
            )
        else:
            tensor = TensorQuant(mul, "nearest")
            grad = TensorQuant("e5m2" if mul == "e4m3" else mul, rounding)  # FP8 training: e5m2 gradients
            gemm = GemmConfig(mul=None, acc=acc, rounding=rounding)
            precision = LayerPrecision(
                weight=tensor, activation=tensor, grad=grad, forward=gemm, grad_input=gemm, grad_weight=gemm
            )
        overrides.append((name, precision))
    return PrecisionConfig(overrides=tuple(overrides), seed=seed)


def mx_backward(fmt: str) -> tuple[str, str]:
    """(MX format of the errors, rounding of the backward GEMMs' elements) for MX forward format ``fmt``: those of
    the MX preset whose forward GEMM is ``fmt`` (``mxfp8_e4m3`` -> ``mxfp8_e5m2``), else ``fmt`` and nearest."""
    from mpsim.mx import parse_mx_format
    from mpsim.precision import PRECISION_PRESETS

    mine = parse_mx_format(fmt)
    for preset in PRECISION_PRESETS.values():
        forward, grad_input = preset.default.forward, preset.default.grad_input
        if forward.mx_formats is not None and forward.mx_formats[0] == mine and grad_input.mx_formats is not None:
            return str(grad_input.mx_formats[0]), str(grad_input.mul_rounding)
    return fmt, "nearest"


def train_accuracy(network: NetworkSpec, config: NASConfig, data: Any) -> tuple[float, int, float]:
    """Test accuracy after short emulated training: (accuracy, epochs run, seconds). Seeded."""
    import numpy as np
    import torch
    from torch import nn

    from mpsim.nn import quantize_model
    from mpsim.optim import QSGD, OptimPrecision

    start = time.perf_counter()
    torch.manual_seed(config.seed)
    model = build_torch(network)
    model, _ = quantize_model(model, precision_config(network, model, config.seed), strict=True)
    optimizer = QSGD(model.parameters(), lr=config.lr, momentum=0.9, precision=OptimPrecision(seed=config.seed))
    x_train = torch.from_numpy(data.x_train.reshape(len(data.x_train), *network.input_shape))
    x_test = torch.from_numpy(data.x_test.reshape(len(data.x_test), *network.input_shape))
    y_train, y_test = torch.from_numpy(data.y_train), torch.from_numpy(data.y_test)
    shuffler = np.random.default_rng(config.seed)
    accuracy, epochs = 0.0, 0
    for epoch in range(config.epochs):
        model.train()
        order = torch.from_numpy(shuffler.permutation(len(x_train)))
        for first in range(0, len(order), config.batch_size):
            index = order[first : first + config.batch_size]
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x_train[index]), y_train[index]).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            accuracy = float((model(x_test).argmax(1) == y_test).float().mean())
        epochs = epoch + 1
        # the cheap proxy: one epoch tells a network that will not learn from one that might
        if epoch == 0 and config.proxy_threshold is not None and accuracy < config.proxy_threshold:
            break
    return accuracy, epochs, time.perf_counter() - start


def array_for(candidate: Candidate, space: SearchSpace | None = None) -> ArrayConfig:
    """The array that runs every layer of the candidate: per operand format, the widest accumulator of its layers,
    stochastic (with the most random bits) if any of them is; one mode per operand format (``space`` is unused,
    kept for callers)."""
    from hls_gen.emit import ArrayConfig
    from hls_gen.modes import ArithMode
    from mpsim.formats import parse_format

    groups: dict[str, list[int]] = {}
    for i, layer in enumerate(candidate.network.layers):
        groups.setdefault(layer.mul or "e4m3", []).append(i)
    modes = []
    for mul, members in groups.items():
        layers = [candidate.network.layers[i] for i in members]
        accs = [layer.acc or "fp32" for layer in layers]
        widest = max(accs, key=lambda f: (parse_format(f).bits, parse_format(f).man_bits))
        stochastic = [layer.rounding for layer in layers if layer.rounding and layer.rounding.startswith("stochastic")]
        rounding = max(stochastic, key=lambda r: int(r.partition(":")[2] or 0)) if stochastic else "nearest"
        modes.append(
            ArithMode(a_format=mul, acc_format=widest, rounding=rounding, uses=tuple(f"layer {i}" for i in members))
        )
    rows, cols = candidate.array
    geometry = dict(rows=rows, cols=cols, interleave=candidate.interleave, pipeline=candidate.pipeline)
    if len(modes) == 1:
        mode = modes[0]
        return ArrayConfig(a_format=mode.a_format, acc_format=mode.acc_format, rounding=mode.rounding, **geometry)
    return ArrayConfig(modes=tuple(modes), **geometry)  # type: ignore[arg-type]


def hardware_cost(candidate: Candidate, config: NASConfig, cache: Any = None) -> tuple[Any, dict[str, Any]]:
    """(:class:`~hls_gen.perf_model.NetworkCost`, synthesis facts) of the candidate on its array."""
    from hls_gen.perf_model import estimate

    array = array_for(candidate, config.space)
    facts: dict[str, Any] = {"array_config": array.name}
    fmax, source = config.fmax_mhz, "nominal"
    if config.synth:
        from hls_gen.synth import SynthOptions, synthesize

        report = synthesize(array, SynthOptions(pnr=True), cache=cache)
        fmax, source = report.fmax_mhz, "nextpnr-ecp5 " + report.part
        facts.update(luts=report.luts, ffs=report.ffs, dsps=report.dsps)
    cost = estimate(
        candidate.network, array, fmax_mhz=fmax, fmax_source=source, batch=config.batch, sram_bytes=config.sram_bytes
    )
    return cost, facts


def _objective(config: NASConfig, data: dict[str, Any], cache: Any) -> Any:
    def objective(trial: optuna.trial.Trial) -> tuple[float, float, float]:
        arch_probe = trial.suggest_categorical("arch", list(config.space.archs))
        dataset = data[arch_probe]
        candidate = sample(trial, config.space, dataset.input_shape, dataset.num_classes)
        cost, facts = hardware_cost(candidate, config, cache)
        accuracy, epochs, seconds = train_accuracy(candidate.network, config, dataset)
        trial.set_user_attr("network", candidate.network.to_dict())
        trial.set_user_attr("array", f"{candidate.array[0]}x{candidate.array[1]}")
        trial.set_user_attr("epochs", epochs)
        trial.set_user_attr("train_seconds", round(seconds, 2))
        trial.set_user_attr("cycles", cost.cycles)
        trial.set_user_attr("utilisation", cost.utilisation)
        trial.set_user_attr("macs", cost.macs)
        trial.set_user_attr("fmax_mhz", cost.fmax_mhz)
        trial.set_user_attr("fmax_source", cost.fmax_source)
        for key, value in facts.items():
            trial.set_user_attr(key, value)
        return accuracy, cost.latency_us, cost.energy_uj

    return objective


def _datasets(config: NASConfig) -> dict[str, Any]:
    from mpsim.data import load_dataset

    # the same seeded split, flat for MLPs and as 1x8x8 images for CNNs
    return {"mlp": load_dataset("digits", seed=config.seed), "cnn": load_dataset("digits-image", seed=config.seed)}


def storage_url(config: NASConfig, out: str | Path) -> str:
    """Where the study lives: ``config.storage``, or SQLite in ``OUT/study.db``."""
    return config.storage or f"sqlite:///{Path(out) / 'study.db'}"


def open_study(config: NASConfig, out: str | Path) -> optuna.Study:
    """The study of ``config`` (created, or loaded to resume); a ``ValueError`` naming the settings it differs in."""
    import optuna

    Path(out).mkdir(parents=True, exist_ok=True)
    storage = storage_url(config, out)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress bar reports; per-trial INFO lines bury it
    sampler = optuna.samplers.NSGAIISampler(seed=config.seed, population_size=min(20, max(4, config.trials // 3)))
    study = optuna.create_study(
        study_name=config.study_name, storage=storage, directions=list(DIRECTIONS), sampler=sampler, load_if_exists=True
    )
    stored = study.user_attrs.get("nas_config")
    mine = _config_dict(config)
    if stored is None:
        study.set_user_attr("nas_config", mine)
        return study
    differ = _differences({**stored, "space": _stored_space(stored.get("space", {}))}, mine)
    if differ:
        raise ValueError(
            f"study {config.study_name!r} in {storage} was run with other settings ({differ}); "
            "use another --out or --study-name"
        )
    return study


def _stored_space(space: dict[str, Any]) -> dict[str, Any]:
    """A stored study's space in today's fields: a study stored before the space grew held one operand format in
    ``mul`` and none of the later fields, which were then what their defaults are now."""
    out = {**_config_dict(NASConfig())["space"], **space}
    if isinstance(out["mul"], str):
        out["mul"] = [out["mul"]]
    return out


def _differences(stored: dict[str, Any], mine: dict[str, Any]) -> str:
    """``"epochs 4 there, 1 here; ..."`` for every setting but ``trials`` (more trials continue a study)."""
    flat = [({**a, **a.get("space", {})}) for a in (stored, mine)]
    keys = sorted((flat[0].keys() | flat[1].keys()) - {"trials", "space"})
    return "; ".join(
        f"{k} {flat[0].get(k)!r} there, {flat[1].get(k)!r} here" for k in keys if flat[0].get(k) != flat[1].get(k)
    )


def run_name(config: NASConfig) -> str:
    """A folder name for the study of ``config``: benchmark, seed, and each setting that differs from the defaults.

    ``trials``, ``storage`` and ``study_name`` are left out: more trials continue the same study.
    """
    default = _config_dict(NASConfig())
    mine = _config_dict(config)
    parts, space_parts = [], []
    for here, there, into in ((mine, default, parts), (mine["space"], default["space"], space_parts)):
        for key, value in here.items():
            if key in ("benchmark", "seed", "trials", "storage", "study_name", "space") or value == there[key]:
                continue
            if isinstance(value, list):
                text = "+".join(map(str, value))
            elif isinstance(value, dict):  # an IntRange
                text = f"{value['min']}..{value['max']}" + (f"s{value['step']}" if value["step"] != 1 else "")
            else:
                text = str(value)
            into.append(f"{key.replace('_', '-')}={text}")
    if len(",".join(space_parts)) > 80:
        # a space file's wide space would make a folder name of hundreds of characters: its digest stands for it
        digest = hashlib.sha256(json.dumps(mine["space"], sort_keys=True).encode()).hexdigest()[:10]
        space_parts = [f"space={digest}"]
    parts += space_parts
    name = f"{config.benchmark}_s{config.seed}" + ("_" + ",".join(parts) if parts else "")
    return re.sub(r"[^A-Za-z0-9.=+,_-]+", "-", name)


def run_nas(
    config: NASConfig,
    out: str | Path,
    *,
    progress: bool = True,
    cache: Any = None,
    study: optuna.Study | None = None,
) -> optuna.Study:
    """Run (or resume) the study until it holds ``config.trials`` finished trials; write the results to ``out``.

    ``study`` is :func:`open_study`'s (opened here when None). Ctrl-C during a
    trial marks that trial pruned (``interrupted`` set; a rerun does it again,
    it is not counted as finished); Ctrl-C at any point writes the results
    so far and raises ``KeyboardInterrupt``.
    """
    from tqdm import tqdm

    from hls_gen.nas_space import check_hardware

    check_hardware(config.space)  # every array the space can produce is one the generator builds: before any trial
    out = Path(out)
    study = study or open_study(config, out)
    done = finished_trials(study)
    data = _datasets(config)
    interrupted: list[int] = []
    objective = _interruptible(_objective(config, data, cache), interrupted)
    try:
        with tqdm(
            total=config.trials, initial=min(done, config.trials), desc="NAS trials", unit="trial", disable=not progress
        ) as bar:
            while finished_trials(study) < config.trials and not interrupted:
                study.optimize(objective, n_trials=1, catch=(ValueError, RuntimeError))
                bar.n = min(finished_trials(study), config.trials)
                bar.set_postfix(front=len(study.best_trials))
                bar.refresh()
        if interrupted:
            raise KeyboardInterrupt
    finally:
        write_results(study, out)  # Ctrl-C included: the files hold every finished trial
    return study


def _interruptible(objective: Any, interrupted: list[int]) -> Any:
    """``objective``, turning Ctrl-C into a pruned trial (Optuna would store it as failed, counted as finished)."""
    import optuna

    def run(trial: optuna.trial.Trial) -> tuple[float, float, float]:
        try:
            return objective(trial)
        except KeyboardInterrupt:
            interrupted.append(trial.number)
            trial.set_user_attr("interrupted", True)
            raise optuna.TrialPruned("interrupted") from None

    return run


def finished_trials(study: optuna.Study) -> int:
    """Trials that ran to the end (complete, or failed with an error); pruned and interrupted ones do not count."""
    import optuna

    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)
    )


def _config_dict(config: NASConfig) -> dict[str, Any]:
    data = asdict(config)
    data["space"] = {k: list(v) if isinstance(v, tuple) else v for k, v in data["space"].items()}
    return json.loads(json.dumps(data))


def pareto_front(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows not dominated in (accuracy up, latency down, energy down)."""

    def dominates(a: dict[str, Any], b: dict[str, Any]) -> bool:
        ge = a["accuracy"] >= b["accuracy"] and a["latency_us"] <= b["latency_us"] and a["energy_uj"] <= b["energy_uj"]
        gt = a["accuracy"] > b["accuracy"] or a["latency_us"] < b["latency_us"] or a["energy_uj"] < b["energy_uj"]
        return ge and gt

    return [r for r in rows if not any(dominates(o, r) for o in rows if o is not r)]


def _rows(study: optuna.Study) -> list[dict[str, Any]]:
    import optuna

    rows = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        accuracy, latency, energy = t.values
        net = t.user_attrs.get("network", {})
        layers = net.get("layers", [])
        rows.append(
            {
                "trial": t.number,
                "accuracy": accuracy,
                "latency_us": latency,
                "energy_uj": energy,
                "arch": t.params.get("arch"),
                "array": t.user_attrs.get("array"),
                "array_config": t.user_attrs.get("array_config"),
                "layers": " ".join(_layer_token(layer) for layer in layers),
                # the sampled precision of each layer, in order
                "muls": " ".join(str(layer.get("mul")) for layer in layers),
                "accs": " ".join(str(layer.get("acc")) for layer in layers),
                "roundings": " ".join(str(layer.get("rounding")) for layer in layers),
                "cycles": t.user_attrs.get("cycles"),
                "utilisation": t.user_attrs.get("utilisation"),
                "macs": t.user_attrs.get("macs"),
                "fmax_mhz": t.user_attrs.get("fmax_mhz"),
                "epochs": t.user_attrs.get("epochs"),
                "train_seconds": t.user_attrs.get("train_seconds"),
                "network": net,
            }
        )
    return rows


def _layer_token(layer: dict[str, Any]) -> str:
    shape = (
        f"L{layer['out_features']}" if layer["kind"] == "Linear" else f"C{layer['out_channels']}k{layer['kernel'][0]}"
    )
    rounding = "sr" if str(layer.get("rounding", "")).startswith("stochastic") else "rn"
    return f"{shape}/{layer.get('acc')}/{rounding}"


def write_results(study: optuna.Study, out: str | Path) -> dict[str, Path]:
    """``pareto.json``, ``pareto.csv``, ``trials.csv`` and ``pareto.png`` (accuracy vs latency and vs energy)."""
    out = Path(out)
    rows = _rows(study)
    front = sorted(pareto_front(rows), key=lambda r: r["latency_us"])
    paths = {
        "pareto_json": out / "pareto.json",
        "pareto_csv": out / "pareto.csv",
        "trials_csv": out / "trials.csv",
        "plot": out / "pareto.png",
    }
    summary = {
        "study": study.study_name,
        "objectives": dict(zip(OBJECTIVES, DIRECTIONS)),
        "trials": len(rows),
        "front": front,
        "config": study.user_attrs.get("nas_config"),
    }
    paths["pareto_json"].write_text(json.dumps(summary, indent=1) + "\n")
    flat = [c for c in (rows[0] if rows else {}) if c != "network"]
    for path, table in ((paths["pareto_csv"], front), (paths["trials_csv"], sorted(rows, key=lambda r: r["trial"]))):
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=flat, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(table)
    if rows:
        plot_pareto(rows, front, paths["plot"])
    return paths


def plot_pareto(rows: list[dict[str, Any]], front: list[dict[str, Any]], path: Path) -> None:
    """Two panels: accuracy vs latency (colour: energy) and accuracy vs energy (colour: latency), front marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), layout="constrained")
    on_front = {r["trial"] for r in front}
    low = min(r["accuracy"] for r in rows)
    ylim = (max(0.0, low - 0.03), min(1.0, max(r["accuracy"] for r in rows) + 0.02))
    for ax, x, colour, label in (
        (axes[0], "latency_us", "energy_uj", "energy (µJ)"),
        (axes[1], "energy_uj", "latency_us", "latency (µs)"),
    ):
        xs = [r[x] for r in rows]
        ys = [r["accuracy"] for r in rows]
        cs = [r[colour] for r in rows]
        points = ax.scatter(xs, ys, c=cs, cmap="viridis", norm=matplotlib.colors.LogNorm(), s=28, alpha=0.8)
        ax.scatter(
            [r[x] for r in front],
            [r["accuracy"] for r in front],
            facecolors="none",
            edgecolors="red",
            s=80,
            linewidths=1.3,
            label="Pareto front",
        )
        for r in front:
            if r["trial"] in on_front:
                ax.annotate(r["array"], (r[x], r["accuracy"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # decade labels only; minor ones overlap
        xlabel = (
            "latency of one inference (µs, log scale)"
            if x == "latency_us"
            else "energy of one inference (µJ, log scale)"
        )
        ax.set(xlabel=xlabel, ylabel="test accuracy (fraction correct)", ylim=ylim)
        ax.grid(alpha=0.3, which="both")
        fig.colorbar(points, ax=ax, label=label)
        ax.legend(loc="lower right")
    fig.suptitle(
        f"hardware-aware NAS: {len(rows)} trials, {len(front)} on the accuracy/latency/energy front "
        "(red; labels: array size)"
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)
