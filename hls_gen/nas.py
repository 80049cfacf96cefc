"""Hardware-aware architecture search: network shape, per-layer precision and array size, on Optuna.

Every trial samples, from a :class:`~hls_gen.nas_space.SearchSpace` (the
default, or one a space file declares), a network (an MLP or a small CNN:
depth, widths, kernel sizes), a per-layer operand format, accumulator format
and rounding, and a MAC array (size, interleave, pipeline); it scores

* **accuracy** by an :class:`Estimator`: short real training with mpsim's
  emulated arithmetic at the trial's per-layer precision
  (:class:`mpsim.nn.PrecisionConfig` with one override per layer; the layer's
  operands, accumulator and rounding in all three GEMMs, seeded), optionally
  stopped after a one-epoch proxy when it is hopeless (``full``); the same
  training stopped at an epoch by Optuna's Hyperband or successive-halving
  pruner (``pruned``) or when its extrapolated learning curve leaves it
  dominated (``curve``); or no training, the gradient norm of the initialised
  network through the same emulated GEMMs (``proxy``);
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
import math
import os
import re
import signal
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hls_gen.nas_config import (
    BENCHMARKS,
    DIRECTIONS,
    OBJECTIVES,
    SURROGATE_KAPPA,
    SURROGATE_WARMUP,
    Estimator,
    NASConfig,
    Pruner,
    check_choice,
    config_dict,
    population_size,
)
from hls_gen.nas_hw import check_predictable, measured_arrays, predicted_hardware, synthesize_front, with_measurements
from hls_gen.nas_model import (
    Candidate,
    build_torch,
    datasets,
    gradient_norm,
    precision_config,
    sample,
    train_accuracy,
)
from hls_gen.nas_space import IntRange, SearchSpace
from hls_gen.nas_surrogate import prediction_error, surrogate_training
from hls_gen.network import NetworkSpec
from hls_gen.pareto import dominates, front_rows, pareto_front
from hls_gen.supernet import record, train_supernets

if TYPE_CHECKING:
    import optuna

    from hls_gen.cost_surrogate import Surrogate
    from hls_gen.emit import ArrayConfig
    from hls_gen.synth import SynthCache

__all__ = [
    "BENCHMARKS",
    "DIRECTIONS",
    "OBJECTIVES",
    "Candidate",
    "Estimator",
    "IntRange",
    "NASConfig",
    "NetworkSpec",
    "Pruner",
    "SearchSpace",
    "build_torch",
    "check_choice",
    "config_dict",
    "datasets",
    "dominates",
    "extrapolate",
    "finished_trials",
    "front_rows",
    "gradient_norm",
    "hardware_cost",
    "kendall_tau",
    "open_fidelity_study",
    "open_study",
    "pareto_front",
    "population_size",
    "precision_config",
    "rdb_storage",
    "run_name",
    "run_nas",
    "sample",
    "train_accuracy",
    "write_results",
]


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b between two scorings of the same items (ties in either counted as tau-b does), in [-1, 1].

    What ranks the proxy against training: 1 when both order every pair alike, -1 when they order every pair
    oppositely. ``nan`` when either scoring gives all items one value (no order to compare).
    """
    if len(x) != len(y):
        raise ValueError(f"kendall_tau needs two scorings of the same items, not {len(x)} and {len(y)} values")
    concordant = discordant = ties_x = ties_y = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue  # tied in both: in neither count
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif (dx > 0) == (dy > 0):
                concordant += 1
            else:
                discordant += 1
    pairs_x, pairs_y = concordant + discordant + ties_y, concordant + discordant + ties_x
    if pairs_x == 0 or pairs_y == 0:
        return math.nan
    return (concordant - discordant) / math.sqrt(pairs_x * pairs_y)


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


def hardware_cost(
    candidate: Candidate, config: NASConfig, cache: Any = None, surrogate: Surrogate | None = None
) -> tuple[Any, dict[str, Any]]:
    """(:class:`~hls_gen.perf_model.NetworkCost`, hardware facts) of the candidate on its array: at the nominal
    clock, at the Fmax ``surrogate`` predicts (``config.predict``), or at the one synthesis measures."""
    from hls_gen.perf_model import estimate
    from hls_gen.synth import config_record

    array = array_for(candidate, config.space)
    facts: dict[str, Any] = {"array_config": array.name, "array_spec": config_record(array), "hw_source": "nominal"}
    fmax, source = config.fmax_mhz, "nominal"
    if config.synth:
        from hls_gen.synth import SynthOptions, synthesize

        report = synthesize(array, SynthOptions(pnr=True), cache=cache)
        if report.fmax_mhz is None:
            raise RuntimeError(f"{array.name}: place and route gave no Fmax")
        fmax, source = report.fmax_mhz, "nextpnr-ecp5 " + report.part
        facts.update(luts=report.luts, ffs=report.ffs, dsps=report.dsps, carry=report.carry, hw_source="synthesized")
    elif config.predict:
        if surrogate is None:
            raise ValueError("predict needs the cost surrogate, and none was given")
        fmax, predicted = predicted_hardware(array, surrogate)
        source = f"cost surrogate ({surrogate.reports} reports)"
        facts.update(predicted, hw_source="predicted")
    cost = estimate(
        candidate.network, array, fmax_mhz=fmax, fmax_source=source, batch=config.batch, sram_bytes=config.sram_bytes
    )
    return cost, facts


def _objective(
    config: NASConfig,
    data: dict[str, Any],
    cache: Any,
    fidelity: optuna.Study | None,
    *,
    surrogate: list[Surrogate] | None = None,
    supernets: Any = None,
) -> Any:
    """The trial function; ``surrogate`` holds the cost surrogate of ``config.predict`` (refitted between trials),
    ``supernets`` the supernet estimator's trained supernets."""
    import optuna

    def objective(trial: optuna.trial.Trial) -> tuple[float, float, float]:
        arch_probe = trial.suggest_categorical("arch", list(config.space.archs))
        dataset = data[arch_probe]
        candidate = sample(trial, config.space, dataset.input_shape, dataset.num_classes)
        cost, facts = hardware_cost(candidate, config, cache, surrogate[0] if surrogate else None)
        if config.estimator == Estimator.PROXY:
            (accuracy, seconds), epochs, pruned = gradient_norm(candidate.network, config, dataset), 0, False
        elif config.estimator == Estimator.PRUNED:
            assert fidelity is not None
            accuracy, epochs, seconds, pruned = _pruned_training(candidate.network, config, dataset, trial, fidelity)
        elif config.estimator == Estimator.CURVE:
            objectives = (cost.latency_us, cost.energy_uj)
            accuracy, epochs, seconds, pruned = _curve_training(candidate.network, config, dataset, trial, objectives)
        elif config.estimator == Estimator.SUPERNET:
            assert supernets is not None
            accuracy, seconds = supernets.accuracy(candidate.network, candidate.arch, dataset)
            epochs, pruned = 0, False
            trial.set_user_attr("supernet_epochs", config.supernet_epochs)
        elif config.estimator == Estimator.SURROGATE:
            objectives = (cost.latency_us, cost.energy_uj)
            accuracy, epochs, seconds, pruned = surrogate_training(candidate, config, dataset, trial, objectives)
        else:
            (accuracy, epochs, seconds), pruned = train_accuracy(candidate.network, config, dataset), False
        trial.set_user_attr("network", candidate.network.to_dict())
        trial.set_user_attr("array", f"{candidate.array[0]}x{candidate.array[1]}")
        trial.set_user_attr("estimator", str(config.estimator))
        trial.set_user_attr("epochs", epochs)  # the training budget the trial spent
        trial.set_user_attr("pruned", pruned)
        trial.set_user_attr("train_seconds", round(seconds, 2))
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")  # which of the study's workers ran it
        trial.set_user_attr("cycles", cost.cycles)
        trial.set_user_attr("utilisation", cost.utilisation)
        trial.set_user_attr("macs", cost.macs)
        trial.set_user_attr("fmax_mhz", cost.fmax_mhz)
        trial.set_user_attr("fmax_source", cost.fmax_source)
        for key, value in facts.items():
            trial.set_user_attr(key, value)
        if pruned:
            # a multi-objective trial stores no values when pruned: the objectives it reached go in its attributes
            trial.set_user_attr("accuracy", accuracy)
            trial.set_user_attr("latency_us", cost.latency_us)
            trial.set_user_attr("energy_uj", cost.energy_uj)
            raise optuna.TrialPruned(f"pruned after epoch {epochs} of {config.epochs}")
        return accuracy, cost.latency_us, cost.energy_uj

    return objective


def _pruned_training(
    network: NetworkSpec, config: NASConfig, data: Any, trial: optuna.trial.Trial, fidelity: optuna.Study
) -> tuple[float, int, float, bool]:
    """Training whose epoch accuracies go to a trial of the fidelity study, whose pruner may stop it:
    (accuracy, epochs run, seconds, pruned).

    Optuna prunes single-objective studies only (``Trial.report`` refuses a multi-objective one), so each NAS
    trial has a twin in :func:`open_fidelity_study` that holds its learning curve and asks that study's pruner.
    """
    import optuna

    twin = fidelity.ask()
    twin.set_user_attr("nas_trial", trial.number)
    trial.set_user_attr("fidelity_trial", twin.number)
    stopped: list[int] = []

    def stop(accuracy: float, epoch: int) -> bool:
        twin.report(accuracy, epoch)
        # after the last epoch the training is done: a pruning decision would only throw its result away
        if epoch < config.epochs and twin.should_prune():
            stopped.append(epoch)
            return True
        return False

    try:
        accuracy, epochs, seconds = train_accuracy(network, config, data, stop)
    except BaseException:
        fidelity.tell(twin, state=optuna.trial.TrialState.FAIL)  # Ctrl-C or an error: the twin does not linger
        raise
    if stopped:
        fidelity.tell(twin, state=optuna.trial.TrialState.PRUNED)
    else:
        fidelity.tell(twin, accuracy)
    return accuracy, epochs, seconds, bool(stopped)


def extrapolate(curve: Sequence[float], epoch: int) -> float:
    """The accuracy at ``epoch`` of ``a - b / e`` fitted by least squares to ``curve`` (the accuracy after epochs
    1, 2, ...; two or more), clipped to [0, 1]: the power-law learning curve with its exponent fixed at 1, whose
    fit is a straight line in ``1 / e`` (closed form, no optimiser, nothing to seed)."""
    if len(curve) < 2:
        raise ValueError(f"extrapolating a learning curve needs 2 epochs or more, not {len(curve)}")
    xs = [1 / e for e in range(1, len(curve) + 1)]
    mean_x, mean_y = sum(xs) / len(xs), sum(curve) / len(curve)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, curve)) / sum((x - mean_x) ** 2 for x in xs)
    return min(1.0, max(0.0, mean_y + slope * (1 / epoch - mean_x)))


def _curve_training(
    network: NetworkSpec, config: NASConfig, data: Any, trial: optuna.trial.Trial, cost: tuple[float, float]
) -> tuple[float, int, float, bool]:
    """Training stopped after epoch ``k`` (2 <= k < epochs) when the accuracy :func:`extrapolate` predicts for the
    last epoch, at the candidate's (latency, energy) ``cost``, would be dominated by a complete trial of the study
    (as it stood when the trial began): (accuracy, epochs run, seconds, stopped). The learning curve and the
    last prediction go in the trial's ``curve`` and ``predicted_accuracy`` attributes."""
    import optuna

    done = [tuple(t.values) for t in trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
    curve: list[float] = []
    stopped: list[int] = []

    def stop(accuracy: float, epoch: int) -> bool:
        curve.append(accuracy)
        if epoch < 2 or epoch >= config.epochs:
            return False
        predicted = extrapolate(curve, config.epochs)
        trial.set_user_attr("predicted_accuracy", predicted)
        if any(dominates(values, (predicted, *cost)) for values in done):
            stopped.append(epoch)
            return True
        return False

    accuracy, epochs, seconds = train_accuracy(network, config, data, stop)
    trial.set_user_attr("curve", curve)
    return accuracy, epochs, seconds, bool(stopped)


def open_fidelity_study(config: NASConfig, out: str | Path) -> optuna.Study:
    """The single-objective sibling of the NAS study (``STUDY/fidelity``, same storage) that owns the pruner.

    Its trial ``n`` holds the per-epoch test accuracy of the NAS trial named in its ``nas_trial`` attribute. The
    pruner is built from ``config`` (pruners are not stored): Hyperband with brackets from 1 epoch to
    ``config.epochs`` and reduction factor 3, or successive halving from 1 epoch with reduction factor 4 (Optuna's
    defaults); both decide from the stored curves alone, so the same sequence of trials prunes the same ones.
    """
    import optuna

    if config.pruner == Pruner.HYPERBAND:
        pruner: optuna.pruners.BasePruner = optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=config.epochs, reduction_factor=3
        )
    else:
        pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=4)
    return optuna.create_study(
        study_name=f"{config.study_name}/fidelity",
        storage=rdb_storage(storage_url(config, out)),
        direction="maximize",
        pruner=pruner,
        sampler=optuna.samplers.RandomSampler(seed=config.seed),  # samples nothing: the NAS study's sampler does
        load_if_exists=True,
    )


def storage_url(config: NASConfig, out: str | Path) -> str:
    """Where the study lives: ``config.storage``, or SQLite in ``OUT/study.db``."""
    return config.storage or f"sqlite:///{Path(out) / 'study.db'}"


SQLITE_TIMEOUT_S = 20  # how long a SQLite writer waits for another worker's lock before "database is locked"


def rdb_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage of ``url``; for SQLite with a busy timeout of :data:`SQLITE_TIMEOUT_S`, so that
    workers on one machine sharing a study file wait for each other's writes instead of failing, and created
    under a lock of the file's folder (POSIX), so that two of them starting at once do not both set it up."""
    import optuna

    if not url.startswith("sqlite"):
        return optuna.storages.RDBStorage(url)
    from sqlalchemy.engine import make_url

    engine = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
    database = make_url(url).database
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        fcntl = None  # type: ignore[assignment]
    if fcntl is None or not database or database == ":memory:":
        return optuna.storages.RDBStorage(url, engine_kwargs=engine)
    # two workers opening a new file at once would both create its tables and both stamp its schema version:
    # the first to lock the file's folder does, the other then finds them
    folder = os.open(Path(database).resolve().parent, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        return optuna.storages.RDBStorage(url, engine_kwargs=engine)
    finally:
        os.close(folder)  # and the lock with it


def open_study(config: NASConfig, out: str | Path) -> optuna.Study:
    """The study of ``config`` (created, or loaded to resume); a ``ValueError`` naming the settings it differs in."""
    import optuna

    Path(out).mkdir(parents=True, exist_ok=True)
    storage = storage_url(config, out)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress bar reports; per-trial INFO lines bury it
    sampler = optuna.samplers.NSGAIISampler(seed=config.seed, population_size=population_size(config))
    study = optuna.create_study(
        study_name=config.study_name,
        storage=rdb_storage(storage),
        directions=list(DIRECTIONS),
        sampler=sampler,
        load_if_exists=True,
    )
    stored = study.user_attrs.get("nas_config")
    mine = config_dict(config)
    if stored is None:
        study.set_user_attr("nas_config", mine)
        return study
    differ = _differences(_stored_config(stored), mine)
    if differ:
        raise ValueError(
            f"study {config.study_name!r} in {storage} was run with other settings ({differ}); "
            "use another --out or --study-name"
        )
    return study


def _stored_config(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored study's settings in today's fields: a study stored before the estimators trained fully, one
    stored before the cost surrogate did not predict, and one stored before the surrogate estimator held its
    defaults."""
    before = {"estimator": "full", "pruner": None, "predict": False, "synth_front": False}
    before |= {"surrogate_warmup": SURROGATE_WARMUP, "surrogate_kappa": SURROGATE_KAPPA}
    return {**before, **stored, "space": _stored_space(stored.get("space", {}))}


def _stored_space(space: dict[str, Any]) -> dict[str, Any]:
    """A stored study's space in today's fields: a study stored before the space grew held one operand format in
    ``mul`` and none of the later fields, which were then what their defaults are now."""
    out = {**config_dict(NASConfig())["space"], **space}
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
    default = config_dict(NASConfig())
    mine = config_dict(config)
    parts, space_parts = [], []
    # the one-epoch stop is the full estimator's: the others hold None there, which says nothing new
    implied = ("proxy_threshold",) if config.estimator != Estimator.FULL else ()
    for here, there, into in ((mine, default, parts), (mine["space"], default["space"], space_parts)):
        for key, value in here.items():
            if key in ("benchmark", "seed", "trials", "storage", "study_name", "space", *implied):
                continue
            if value == there[key]:
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

    from hls_gen.cost_surrogate import surrogate_for
    from hls_gen.nas_space import check_hardware
    from hls_gen.synth import SynthCache

    check_hardware(config.space)  # every array the space can produce is one the generator builds: before any trial
    store = cache if isinstance(cache, SynthCache) else SynthCache(cache)
    surrogate: list[Surrogate] = []
    if config.predict:
        surrogate.append(surrogate_for(store))  # NoData (one line naming the cache) before any trial
        check_predictable(config.space, surrogate[0])
    out = Path(out)
    study = study or open_study(config, out)
    done = finished_trials(study)
    data = datasets(config)
    fidelity = open_fidelity_study(config, out) if config.estimator == Estimator.PRUNED else None
    supernets = _supernets(config, data, out, study, progress) if config.estimator == Estimator.SUPERNET else None
    ctrl_c = _CtrlC()
    objective = _interruptible(
        _objective(config, data, store, fidelity, surrogate=surrogate, supernets=supernets), ctrl_c
    )
    generation = population_size(config)
    generations = done // generation
    try:
        with (
            tqdm(
                total=config.trials,
                initial=min(done, config.trials),
                desc="NAS trials",
                unit="trial",
                disable=not progress,
            ) as bar,
            ctrl_c.deferred(),
        ):
            while finished_trials(study) < config.trials and not ctrl_c.pressed:
                study.optimize(objective, n_trials=1, catch=(ValueError, RuntimeError))
                finished = finished_trials(study)
                # after each generation, the next ranks with a surrogate that has learnt this one's front
                new_generation = finished // generation > generations and finished < config.trials
                generations = finished // generation
                if config.synth_front and new_generation and not ctrl_c.pressed:
                    with ctrl_c.raising():  # only reads the study: Ctrl-C may stop it anywhere
                        if _synthesize_front(study, store, progress=False):
                            surrogate[0] = surrogate_for(store)
                bar.n = min(finished, config.trials)
                bar.set_postfix(front=len(study.best_trials))
                bar.refresh()
        if ctrl_c.pressed:
            raise KeyboardInterrupt
        if config.synth_front:
            _synthesize_front(study, store, progress=progress)
    finally:
        write_results(study, out)  # Ctrl-C included: the files hold every finished trial
    return study


def _synthesize_front(study: optuna.Study, cache: SynthCache, *, progress: bool) -> list[str]:
    """:func:`hls_gen.nas_hw.synthesize_front` on this study's rows, front and stored arrays."""
    from hls_gen.cost_surrogate import config_from_dict

    def arrays_of(numbers: Any) -> dict[str, ArrayConfig]:
        by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
        trials = [by_number[n] for n in numbers]
        return {t.user_attrs["array_config"]: config_from_dict(t.user_attrs["array_spec"]) for t in trials}

    return synthesize_front(study, _trial_rows, front_rows, arrays_of, cache, progress=progress)


def _supernets(config: NASConfig, data: dict[str, Any], out: Path, study: optuna.Study, progress: bool) -> Any:
    """The supernet estimator's supernets, trained once (or loaded from ``OUT/supernet.pt``); their cost recorded."""
    supernets = train_supernets(config, data, out, progress=progress)
    record(study, supernets)
    return supernets


class _CtrlC:
    """Where Ctrl-C may stop a search. Inside a trial (or another step that only reads the study) it raises
    ``KeyboardInterrupt`` at once; anywhere else in the trial loop, Optuna may be writing the study, and a
    ``KeyboardInterrupt`` there breaks Optuna's own bookkeeping (an ``UnboundLocalError`` from its ``_run_trial``),
    so it is only recorded and the loop stops after that write."""

    def __init__(self) -> None:
        self.pressed = False
        self._raise = [False]  # a list item: setting it runs no bytecode where Python delivers signals

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Ctrl-C in this block sets ``pressed``; it raises only inside :meth:`raising`. Outside the main thread
        (where Python delivers no signal) a no-op."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGINT, self._handle)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    @contextmanager
    def raising(self) -> Iterator[None]:
        """Ctrl-C in this block raises ``KeyboardInterrupt``."""
        self._raise[0] = True
        try:
            yield
        finally:
            self._raise[0] = False

    def _handle(self, signum: int, frame: Any) -> None:
        self.pressed = True
        if self._raise[0]:
            self._raise[0] = False  # a second Ctrl-C while the interrupted trial is stored waits for the store
            raise KeyboardInterrupt


def _interruptible(objective: Any, ctrl_c: _CtrlC) -> Any:
    """``objective``, turning Ctrl-C into a pruned trial (Optuna would store it as failed, counted as finished)."""
    import optuna

    def run(trial: optuna.trial.Trial) -> tuple[float, float, float]:
        try:
            with ctrl_c.raising():
                return objective(trial)
        except KeyboardInterrupt:
            ctrl_c.pressed = True  # also when the Ctrl-C came from elsewhere (a test, another handler)
            trial.set_user_attr("interrupted", True)
            raise optuna.TrialPruned("interrupted") from None

    return run


def finished_trials(study: optuna.Study) -> int:
    """Trials that ran to the end (complete, failed with an error, or stopped by the pruned estimator's pruner);
    interrupted ones (stored as pruned, without the ``pruned`` attribute) do not count."""
    import optuna

    State = optuna.trial.TrialState
    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if t.state in (State.COMPLETE, State.FAIL) or (t.state == State.PRUNED and t.user_attrs.get("pruned"))
    )


def _rows(study: optuna.Study) -> list[dict[str, Any]]:
    """A row per complete trial and per trial an estimator stopped (interrupted trials are left out), with the
    measured hardware figures of every array the study has synthesized (:func:`hls_gen.nas_hw.with_measurements`)."""
    return with_measurements(_trial_rows(study), measured_arrays(study))


def _trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """:func:`_rows` as the trials recorded them."""
    import optuna

    rows = []
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    for t in study.get_trials(deepcopy=False, states=states):
        pruned = t.state == optuna.trial.TrialState.PRUNED
        if pruned and not t.user_attrs.get("pruned"):
            continue  # interrupted: it runs again
        if pruned:
            accuracy, latency, energy = (t.user_attrs[k] for k in OBJECTIVES)
        else:
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
                # where Fmax and resources come from: nominal (a given clock, no resources), predicted, synthesized
                "hw_source": t.user_attrs.get("hw_source", "synthesized" if "luts" in t.user_attrs else "nominal"),
                **{k: t.user_attrs.get(k) for k in ("luts", "ffs", "dsps", "carry")},
                "estimator": t.user_attrs.get("estimator", "full"),  # trials stored before estimators: full
                "epochs": t.user_attrs.get("epochs"),
                "pruned": pruned,
                "train_seconds": t.user_attrs.get("train_seconds"),
                # the surrogate estimator's (and curve's prediction): what was predicted, from how many trials
                "predicted_accuracy": t.user_attrs.get("predicted_accuracy"),
                "predicted_std": t.user_attrs.get("predicted_std"),
                "surrogate_fitted_on": t.user_attrs.get("surrogate_fitted_on"),
                "worker": t.user_attrs.get("worker"),
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
    on_front = front_rows(rows)
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
        # the budget the accuracy estimates spent: training epochs in all, and trials the pruner stopped
        "epochs_spent": sum(r["epochs"] or 0 for r in rows),
        "pruned": sum(r["pruned"] for r in rows),
        **({"supernet": study.user_attrs["supernet"]} if "supernet" in study.user_attrs else {}),  # its one-off cost
        # predicted vs trained accuracy over the trials that trained after a prediction (None without any)
        "prediction_error": prediction_error(rows),
        "front": on_front,
        "config": study.user_attrs.get("nas_config"),
    }
    # each file written aside and moved into place: workers sharing the study never leave a torn file
    _staged(paths["pareto_json"]).write_text(json.dumps(summary, indent=1) + "\n")
    _staged(paths["pareto_json"]).replace(paths["pareto_json"])
    flat = [c for c in (rows[0] if rows else {}) if c != "network"]
    for path, table in (
        (paths["pareto_csv"], on_front),
        (paths["trials_csv"], sorted(rows, key=lambda r: r["trial"])),
    ):
        with open(_staged(path), "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=flat, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(table)
        _staged(path).replace(path)
    plotted = [r for r in rows if not r["pruned"]]
    if plotted:
        proxy = (study.user_attrs.get("nas_config") or {}).get("estimator") == Estimator.PROXY
        plot_pareto(plotted, on_front, paths["plot"], proxy=proxy)
    return paths


def _staged(path: Path) -> Path:
    """Where this process writes ``path`` before moving it into place."""
    return path.with_name(f".{path.name}.{os.getpid()}")


def plot_pareto(rows: list[dict[str, Any]], front: list[dict[str, Any]], path: Path, *, proxy: bool = False) -> None:
    """Two panels: accuracy vs latency (colour: energy) and accuracy vs energy (colour: latency), front marked.

    ``proxy``: the accuracy objective holds the gradient-norm proxy's score, not a fraction correct.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), layout="constrained")
    on_front = {r["trial"] for r in front}
    low, high = min(r["accuracy"] for r in rows), max(r["accuracy"] for r in rows)
    ylim = (max(0.0, low - 0.03), min(1.0, high + 0.02)) if not proxy else (0.0, 1.05 * high or 1.0)
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
        ylabel = "proxy score (gradient norm at initialisation)" if proxy else "test accuracy (fraction correct)"
        ax.set(xlabel=xlabel, ylabel=ylabel, ylim=ylim)
        ax.grid(alpha=0.3, which="both")
        fig.colorbar(points, ax=ax, label=label)
        ax.legend(loc="lower right")
    fig.suptitle(
        f"hardware-aware NAS: {len(rows)} trials, {len(front)} on the accuracy/latency/energy front "
        "(red; labels: array size)"
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)
