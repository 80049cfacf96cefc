"""What defines a continual-learning run: :class:`RunConfig`, the benchmarks, the strategies, the run's file name.

Kept free of torch and Avalanche imports: ``mpsim cl`` checks every run of a
grid with these before anything slow loads, and ``mpsim --help`` stays quick.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any

from continual.policies import make_policy
from continual.precision import parse_cl_precision
from mpsim.backend_registry import check_backend_name

__all__ = [
    "BENCHMARKS",
    "SCENARIOS",
    "STRATEGIES",
    "STRATEGY_FAMILY",
    "BenchmarkInfo",
    "RunConfig",
    "check_data_root",
    "run_id",
]


@dataclass(frozen=True)
class BenchmarkInfo:
    """What a benchmark is built from: the :mod:`mpsim.data` dataset, how experiences differ, the class count."""

    dataset: str
    kind: str  # "split": the classes in equal groups; "permuted": every class, features permuted per experience
    classes: int = 10

    def experience_counts(self) -> tuple[int, ...]:
        """The experience counts this benchmark can be cut into (split: the divisors of its class count)."""
        if self.kind == "permuted":
            return ()  # any
        return tuple(n for n in range(1, self.classes + 1) if self.classes % n == 0)


#: Benchmark name -> what it is built from (see :mod:`continual.benchmarks`).
BENCHMARKS: dict[str, BenchmarkInfo] = {
    "split-digits": BenchmarkInfo("digits", "split"),
    "permuted-digits": BenchmarkInfo("digits", "permuted"),
    "split-mnist1d": BenchmarkInfo("mnist1d", "split"),
    "permuted-mnist1d": BenchmarkInfo("mnist1d", "permuted"),
    "split-mnist": BenchmarkInfo("mnist", "split"),
    "permuted-mnist": BenchmarkInfo("mnist", "permuted"),
}
SCENARIOS = ("class", "task")

#: Strategy families: lower bound, replay, regularization, parameter isolation, upper bound.
STRATEGIES = ("naive", "replay", "gem", "agem", "ewc", "si", "lwf", "packnet", "joint")
STRATEGY_FAMILY = {
    "naive": "lower bound",
    "replay": "replay",
    "gem": "replay",
    "agem": "replay",
    "ewc": "regularization",
    "si": "regularization",
    "lwf": "regularization",
    "packnet": "parameter isolation",
    "joint": "upper bound",
}


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run (saved with its results; a finished run is found again by it)."""

    benchmark: str = "split-digits"
    scenario: str = "class"
    strategy: str = "naive"
    precision: str = "fp32"
    policy: str = "fixed"
    seed: int = 0
    epochs: int = 3
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    hidden: int = 64
    layers: int = 1
    n_experiences: int = 5
    mem_size: int = 200  # Replay: buffer size; GEM/AGEM: mem_size / n_experiences patterns per experience
    gem_strength: float = 0.5
    agem_sample_size: int = 64
    ewc_lambda: float = 100.0
    si_lambda: float = 1.0
    lwf_alpha: float = 1.0
    lwf_temperature: float = 2.0
    packnet_post_prune_epochs: int = 1
    data_root: str | None = None
    backend: str = "emulator"  # what computes the GEMMs (mpsim.nn.backends.backend_names)
    hardware: str | None = None  # the manifest of the array a hardware backend runs

    def __post_init__(self) -> None:
        if self.benchmark not in BENCHMARKS:
            raise ValueError(f"unknown benchmark {self.benchmark!r}: expected one of {', '.join(BENCHMARKS)}")
        if self.scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.scenario!r}: expected one of {', '.join(SCENARIOS)}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}: expected one of {', '.join(STRATEGIES)}")
        for name in ("epochs", "batch_size", "hidden", "layers", "n_experiences", "mem_size", "agem_sample_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, not {self.seed!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"lr must be positive, not {self.lr!r}")
        counts = BENCHMARKS[self.benchmark].experience_counts()
        if counts and self.n_experiences not in counts:
            raise ValueError(
                f"{self.benchmark} has {BENCHMARKS[self.benchmark].classes} classes, which {self.n_experiences} "
                f"experiences do not divide: experiences must be one of {', '.join(map(str, counts))}"
            )
        if self.strategy == "packnet":
            if self.scenario != "task":
                raise ValueError(
                    "strategy 'packnet' selects a sub-network per task and needs task labels: use scenario 'task'"
                )
            if self.epochs <= self.packnet_post_prune_epochs:
                raise ValueError(
                    "strategy 'packnet' needs epochs > packnet_post_prune_epochs "
                    f"({self.packnet_post_prune_epochs}), not {self.epochs}"
                )
        parse_cl_precision(self.precision)
        make_policy(self.policy, self.precision)
        check_backend_name(self.backend)
        if (self.backend == "emulator") != (self.hardware is None):
            raise ValueError(
                f"backend {self.backend!r} with hardware {self.hardware!r}: the emulator runs no hardware, and the "
                "others need the manifest of an array (mpsim emit ... --out DIR: DIR/NAME.json)"
            )

    @property
    def label(self) -> str:
        """The precision column of results tables: the precision, or ``policy(precision)``."""
        if self.policy == "fixed":
            return self.precision
        if self.policy.startswith("schedule:"):
            return self.policy
        return f"{self.policy}({self.precision})"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown RunConfig keys {unknown}; known: {sorted(known)}")
        return cls(**data)


def run_id(config: RunConfig) -> str:
    """File-safe name of a run from its grid coordinates."""
    label = re.sub(r"[^A-Za-z0-9.=+-]+", "-", config.label).strip("-")
    on = "" if config.backend == "emulator" else f"_{config.backend}"
    return f"{config.benchmark}_{config.scenario}_{config.strategy}_{label}{on}_s{config.seed}"


def check_data_root(benchmark: str, data_root: str | None) -> None:
    """Refuse, before any run starts, an MNIST benchmark whose files are not in ``data_root`` (``--data-root``)."""
    from mpsim.data import check_data_root as check_files

    if BENCHMARKS[benchmark].dataset != "mnist":
        return
    if data_root is None:
        raise ValueError(
            f"benchmark {benchmark!r} reads local MNIST files, nothing is downloaded: give the folder with "
            "the four IDX files (train-images-idx3-ubyte, ... [.gz]) or mnist.npz with --data-root DIR"
        )
    try:
        check_files("mnist", data_root)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"--data-root: {error}") from None
