"""Grids of runs: expand, execute (sequentially, in a local process pool or on Dask), resume, report.

Every finished run is written at once, atomically (a temporary file, then
``os.replace``), to ``OUT/runs/RUN_ID.json``. Starting a sweep again skips
every run whose file exists with the same configuration, so a killed sweep
loses only the runs that were in flight and repeats none that finished; a
file holding another configuration is an error, never overwritten.

Backends: ``workers=1`` runs in this process; ``workers>1`` a local
``ProcessPoolExecutor`` (no server); ``dask="local"`` a Dask ``LocalCluster``
and ``dask="tcp://host:8786"`` an existing Dask scheduler. With Dask the
workers return results and this process writes them, so the workers need
the data (MNIST files) but not the output folder.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from continual.config import RunConfig, run_id
from continual.policies import DEFAULT_HIGH
from continual.report import write_report
from continual.runner import run

__all__ = ["SweepSpec", "expand", "run_sweep", "write_json_atomic"]


@dataclass(frozen=True)
class SweepSpec:
    """A grid: benchmarks x scenarios x strategies x precisions x policies x seeds, over common settings."""

    benchmarks: tuple[str, ...] = ("split-digits",)
    scenarios: tuple[str, ...] = ("class",)
    strategies: tuple[str, ...] = ("naive",)
    precisions: tuple[str, ...] = ("fp32",)
    policies: tuple[str, ...] = ("fixed",)
    seeds: int = 1
    base: RunConfig = field(default_factory=RunConfig)  # epochs, lr, model size, ...

    def __post_init__(self) -> None:
        for name in ("benchmarks", "scenarios", "strategies", "precisions", "policies"):
            value = getattr(self, name)
            if isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty list, not {value!r}")
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise ValueError(f"seeds must be a positive integer (seeds 0..N-1), not {self.seeds!r}")


def expand(spec: SweepSpec) -> tuple[list[RunConfig], list[str]]:
    """The runs of a grid, and a note for each combination skipped (invalid or a duplicate)."""
    configs: dict[str, RunConfig] = {}
    skipped: list[str] = []
    for bench in spec.benchmarks:
        for scenario in spec.scenarios:
            for strategy in spec.strategies:
                if strategy == "packnet" and scenario != "task":
                    skipped.append(f"{bench}/{scenario}/packnet: packnet needs task labels (scenario task)")
                    continue
                for precision in spec.precisions:
                    for policy in spec.policies:
                        prec = precision
                        if policy.startswith("schedule:"):
                            prec = policy.split(":", 1)[1].split(",")[-1].strip()  # the schedule names its precisions
                        elif policy != "fixed" and prec == (policy.partition(":")[2] or DEFAULT_HIGH):
                            skipped.append(f"{bench}/{scenario}/{strategy}/{policy}({prec}): would never switch")
                            continue
                        for seed in range(spec.seeds):
                            config = replace(
                                spec.base,
                                benchmark=bench,
                                scenario=scenario,
                                strategy=strategy,
                                precision=prec,
                                policy=policy,
                                seed=seed,
                            )
                            configs.setdefault(run_id(config), config)
    return list(configs.values()), skipped


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that a kill leaves either the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def _finished(path: Path, config: RunConfig) -> bool:
    if not path.exists():
        return False
    try:
        saved = json.loads(path.read_text())["config"]
    except (json.JSONDecodeError, KeyError):
        return False  # not a result of ours: run it again
    if saved != asdict(config):
        diff = sorted(k for k in saved.keys() | asdict(config).keys() if saved.get(k) != asdict(config).get(k))
        raise ValueError(
            f"{path} holds a run with other settings ({', '.join(diff)}); use another output folder or delete it"
        )
    return True


def _execute(config: dict[str, Any], path: str) -> str:
    """Worker side of the local pool: run, write, return the run id."""
    result = run(RunConfig.from_dict(config), progress=False)
    write_json_atomic(Path(path), result)
    return str(result["run_id"])


def _execute_remote(config: dict[str, Any]) -> dict[str, Any]:
    """Worker side of Dask: run and hand the result back (the driver writes it)."""
    return run(RunConfig.from_dict(config), progress=False)


def _init_worker() -> None:
    import numba
    import torch

    torch.set_num_threads(1)  # one core per worker: the pool is the parallelism
    numba.set_num_threads(1)


def run_sweep(
    configs: Sequence[RunConfig],
    out_dir: str | Path,
    *,
    workers: int = 1,
    dask: str | None = None,
    progress: bool = True,
    run_fn: Callable[..., dict[str, Any]] = run,
    report: bool = True,
) -> dict[str, list[str]]:
    """Run every config not finished yet under ``out_dir/runs``; then rebuild the report from all runs there.

    Returns the run ids already ``finished`` before, those ``ran`` now, and those that ``failed``
    (id -> error; a failed run writes nothing and runs again next time).
    ``run_fn`` (sequential backend only) replaces :func:`continual.runner.run`, for tests.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, not {workers!r}")
    runs = Path(out_dir) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    finished, pending = [], []
    for config in configs:
        (finished if _finished(runs / f"{run_id(config)}.json", config) else pending).append(config)
    ran: list[str] = []
    failed: dict[str, str] = {}  # a failing run is reported, and the others go on
    bar = tqdm(total=len(configs), initial=len(finished), desc="sweep", disable=not progress, file=sys.stderr)
    if dask is not None:
        _run_dask(pending, runs, dask, workers, ran, failed, bar)
    elif workers == 1:
        for config in pending:
            bar.set_postfix_str(run_id(config))
            try:
                result = run_fn(config, progress=progress)
            except Exception as err:  # noqa: BLE001 -- a failed run is recorded and the others go on
                failed[run_id(config)] = f"{type(err).__name__}: {err}"
            else:
                write_json_atomic(runs / f"{run_id(config)}.json", result)
                ran.append(run_id(config))
            bar.update()
    else:
        import multiprocessing

        with ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker
        ) as pool:
            futures = {pool.submit(_execute, asdict(c), str(runs / f"{run_id(c)}.json")): run_id(c) for c in pending}
            for future in as_completed(futures):
                try:
                    ran.append(future.result())
                except Exception as err:  # noqa: BLE001 -- a failed run is recorded and the others go on
                    failed[futures[future]] = f"{type(err).__name__}: {err}"
                bar.update()
    bar.close()
    if report:
        write_report(Path(out_dir))
    return {"finished": [run_id(c) for c in finished], "ran": ran, "failed": failed}


def _run_dask(
    pending: list[RunConfig], runs: Path, address: str, workers: int, ran: list[str], failed: dict[str, str], bar: Any
) -> None:
    try:
        from distributed import Client, LocalCluster
        from distributed import as_completed as dask_completed
    except ImportError:
        raise ValueError("the Dask backend needs the optional dependency: pip install 'mpsim[dask]'") from None
    if address == "local":
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    else:
        cluster, client = None, Client(address)
    try:
        futures = {client.submit(_execute_remote, asdict(c), pure=False): run_id(c) for c in pending}
        for future in dask_completed(list(futures)):
            try:
                result = future.result()
            except Exception as err:  # noqa: BLE001 -- a failed run is recorded and the others go on
                failed[futures[future]] = f"{type(err).__name__}: {err}"
            else:
                write_json_atomic(runs / f"{result['run_id']}.json", result)
                ran.append(str(result["run_id"]))
            bar.update()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
