"""Hardware cost of NAS trials before synthesis: the cost surrogate ranks, only the predicted front is synthesized.

With ``mpsim nas --predict`` every trial's array is costed by the surrogate
fitted on the synthesis cache (:mod:`hls_gen.cost_surrogate`: LUT4, FF, DSP,
carry and Fmax in microseconds), so the search ranks thousands of arrays
without running a tool. ``--synth-front`` then synthesizes only the arrays of
trials on the Pareto front, with the measured clock where an array has been
synthesized and the predicted one elsewhere, until every trial on that front
is measured (a measured clock can move a trial off the front and let another
on, which is then synthesized in turn). It does so after every generation of
the sampler and at the end of the run; each report lands in the cache, so the
surrogate refits on it for the trials that follow.

The measurements are study attributes (``measured:<array name>``, one per
array, written once: workers that share a study never overwrite each other's),
since a finished trial's attributes are frozen. Latency is ``cycles / Fmax``
(the cost model's); energy does not depend on the clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

    from hls_gen.cost_surrogate import Surrogate
    from hls_gen.emit import ArrayConfig
    from hls_gen.nas_space import SearchSpace
    from hls_gen.synth import SynthCache

__all__ = [
    "MEASURED_PREFIX",
    "Measured",
    "check_predictable",
    "measured_arrays",
    "predicted_hardware",
    "synthesize_front",
    "with_measurements",
]

MEASURED_PREFIX = "measured:"
RESOURCE_KEYS = ("luts", "ffs", "dsps", "carry")


@dataclass(frozen=True)
class Measured:
    """What place and route measured of one array (ECP5 85k): resources and Fmax."""

    luts: int
    ffs: int
    dsps: int
    carry: int
    fmax_mhz: float

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in (*RESOURCE_KEYS, "fmax_mhz")}


def check_predictable(space: SearchSpace, surrogate: Surrogate) -> None:
    """A ``ValueError`` naming the format unless ``surrogate`` can cost every array of ``space``: an MX format
    needs MX arrays among its reports (the MX terms are learnt from them alone)."""
    from mpsim.mx import is_mx_spec

    mx = [f for f in space.mul if is_mx_spec(f)]
    if mx and not surrogate.mx_reports:
        raise ValueError(
            f"--predict: the cost surrogate has learnt from no MX array ({surrogate.reports} reports, none MX), and "
            f"the space holds {', '.join(mx)}: synthesize MX arrays into the cache (benchmarks/synth_dataset.py "
            "--mx), drop them from the space, or cost every trial by synthesis (--synth) or at a nominal clock"
        )


def predicted_hardware(array: ArrayConfig, surrogate: Surrogate) -> tuple[float, dict[str, Any]]:
    """(predicted Fmax in MHz, the trial's facts: predicted resources, the report count) of ``array``."""
    predicted = surrogate.predict(array)
    if "fmax_mhz" not in predicted:
        raise ValueError(f"the cost surrogate has no Fmax model (none of its {surrogate.reports} reports was routed)")
    facts: dict[str, Any] = {k: int(predicted[k]) for k in RESOURCE_KEYS if k in predicted}
    facts["surrogate_reports"] = surrogate.reports
    return float(predicted["fmax_mhz"]), facts


def measured_arrays(study: optuna.Study) -> dict[str, Measured]:
    """The arrays the study has synthesized, by array name."""
    return {
        key[len(MEASURED_PREFIX) :]: Measured(**value)
        for key, value in study.user_attrs.items()
        if key.startswith(MEASURED_PREFIX)
    }


def with_measurements(rows: Sequence[dict[str, Any]], measured: dict[str, Measured]) -> list[dict[str, Any]]:
    """``rows`` (one per trial) with the best-known hardware figures.

    A row whose array has been synthesized gets the measured Fmax, resources and latency (``cycles / Fmax``), and
    ``hw_source`` ``"synthesized"``; the figures it had before stay in ``*_predicted`` columns. Other rows keep
    theirs, with ``hw_source`` as the trial recorded it.
    """
    out = []
    for row in rows:
        row = dict(row)
        found = measured.get(row.get("array_config") or "")
        if found is not None and row.get("hw_source") != "synthesized":
            row["fmax_mhz_predicted"], row["latency_us_predicted"] = row.get("fmax_mhz"), row["latency_us"]
            for key in RESOURCE_KEYS:
                row[f"{key}_predicted"] = row.get(key)
                row[key] = getattr(found, key)
            row["fmax_mhz"] = found.fmax_mhz
            row["latency_us"] = row["cycles"] / found.fmax_mhz
            row["hw_source"] = "synthesized"
        out.append(row)
    return out


def synthesize_front(
    study: optuna.Study,
    rows_of: Callable[[optuna.Study], list[dict[str, Any]]],
    front_of: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
    arrays_of: Callable[[Iterable[int]], dict[str, ArrayConfig]],
    cache: SynthCache,
    *,
    progress: bool = False,
) -> list[str]:
    """Synthesize the arrays of the study's front until every trial on it is measured; the arrays synthesized.

    ``rows_of(study)``: a row per finished trial (with ``array_config``, ``cycles``, ``latency_us``, ...);
    ``front_of(rows)``: the front of such rows; ``arrays_of(trial numbers)``: their arrays by name. Each
    measurement is stored in the study as it comes (a killed run keeps the arrays it finished; the cache keeps
    the tool runs).
    """
    from tqdm import tqdm

    from hls_gen.synth import SynthOptions, synthesize

    done: list[str] = []
    while True:
        measured = measured_arrays(study)
        front = front_of(with_measurements(rows_of(study), measured))
        todo = [r for r in front if r.get("hw_source") != "synthesized"]
        if not todo:
            return done
        arrays = arrays_of(r["trial"] for r in todo)
        for name, array in tqdm(arrays.items(), desc="synthesizing the front", unit="array", disable=not progress):
            report = synthesize(array, SynthOptions(pnr=True), cache=cache)
            if report.fmax_mhz is None:
                raise RuntimeError(f"{name}: place and route gave no Fmax")
            found = Measured(report.luts, report.ffs, report.dsps, report.carry, float(report.fmax_mhz))
            study.set_user_attr(MEASURED_PREFIX + name, found.to_dict())
            done.append(name)
