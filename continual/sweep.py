"""Grids of runs: expand, execute (sequentially, in a local process pool or on Dask), resume, report.

Every finished run is written at once, atomically (a temporary file, then
``os.replace``), to ``OUT/runs/RUN_ID.json``. Starting a sweep again skips
every run whose file exists with the same configuration, so a killed sweep
loses only the runs that were in flight and repeats none that finished; a
file holding another configuration is an error, never overwritten.

Backends: ``workers=1`` runs in this process; ``workers>1`` a local pool of
spawned processes (no server); ``dask="local"`` a Dask ``LocalCluster`` and
``dask="tcp://host:8786"`` an existing Dask scheduler (one that does not
answer within :data:`DASK_CONNECT_S` seconds is an ``OSError`` naming it).
With Dask the workers return results and this process writes them, so the
workers need the data (MNIST files) but not the output folder. Ctrl-C stops
the pool's workers at once (they ignore SIGINT themselves, so no worker
prints a traceback) and raises ``KeyboardInterrupt`` here; the finished
runs stay.

Nothing here imports torch or Avalanche until a run starts: :func:`expand`
checks every run of a grid quickly.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from continual.config import RunConfig, run_id
from continual.policies import DEFAULT_HIGH
from continual.report import write_report

__all__ = ["DASK_CONNECT_S", "SweepSpec", "expand", "finished_runs", "run_sweep", "write_json_atomic"]

#: Seconds to wait for a Dask scheduler to answer before giving up, naming its address.
DASK_CONNECT_S = 5.0


@dataclass(frozen=True)
class SweepSpec:
    """A grid: benchmarks x scenarios x strategies x precisions x policies x seeds, over common settings."""

    benchmarks: tuple[str, ...] = ("split-digits",)
    scenarios: tuple[str, ...] = ("class",)
    strategies: tuple[str, ...] = ("naive",)
    precisions: tuple[str, ...] = ("fp32",)
    policies: tuple[str, ...] = ("fixed",)
    seeds: int = 1  # how many seeds: first_seed, first_seed + 1, ...
    base: RunConfig = field(default_factory=RunConfig)  # epochs, lr, model size, ...
    first_seed: int = 0

    def __post_init__(self) -> None:
        for name in ("benchmarks", "scenarios", "strategies", "precisions", "policies"):
            value = getattr(self, name)
            if isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty list, not {value!r}")
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise ValueError(f"seeds must be a positive integer (seeds 0..N-1), not {self.seeds!r}")
        if isinstance(self.first_seed, bool) or not isinstance(self.first_seed, int) or self.first_seed < 0:
            raise ValueError(f"first seed must be an integer >= 0, not {self.first_seed!r}")


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
                        for seed in range(spec.first_seed, spec.first_seed + spec.seeds):
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


def _saved_config(path: Path) -> dict[str, Any] | None:
    """The configuration of the finished run in ``path``, or None (no file, or not a result of ours: run it again)."""
    try:
        return dict(json.loads(path.read_text())["config"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def finished_runs(configs: Sequence[RunConfig], out_dir: str | Path) -> list[RunConfig]:
    """The ``configs`` whose run is finished under ``out_dir/runs``.

    A file there holding a run of other settings is a ``ValueError`` naming
    the settings that differ and how many runs they concern, never overwritten.
    """
    runs = Path(out_dir) / "runs"
    finished, clashes = [], []
    for config in configs:
        saved = _saved_config(runs / f"{run_id(config)}.json")
        if saved is None:
            continue
        mine = asdict(config)
        if saved == mine:
            finished.append(config)
        else:
            clashes.append((run_id(config), {k: (saved.get(k), mine.get(k)) for k in saved.keys() | mine.keys()}))
    if clashes:
        first, values = clashes[0]
        diff = "; ".join(f"{k} {a!r} there, {b!r} here" for k, (a, b) in sorted(values.items()) if a != b)
        raise ValueError(
            f"{out_dir} holds {len(clashes)} of these runs with other settings ({diff}; e.g. runs/{first}.json): "
            "give another --out, or delete those files to run them again"
        )
    return finished


def _execute(task: tuple[dict[str, Any], str]) -> tuple[str, str | None]:
    """Worker side of the local pool: run, write; (run id, None) or (run id, the error)."""
    config, path = task
    try:
        result = _run()(RunConfig.from_dict(config), progress=False)
        write_json_atomic(Path(path), result)
    except Exception as err:  # noqa: BLE001 -- a failed run is recorded and the others go on
        return run_id(RunConfig.from_dict(config)), f"{type(err).__name__}: {err}"
    return str(result["run_id"]), None


def _execute_remote(config: dict[str, Any]) -> dict[str, Any]:
    """Worker side of Dask: run and hand the result back (the driver writes it)."""
    return _run()(RunConfig.from_dict(config), progress=False)


def _run() -> Callable[..., dict[str, Any]]:
    from continual.runner import run  # torch and Avalanche: loaded when a run starts, not to check a grid

    return run


def _exit_quietly(signum: int, frame: Any) -> None:
    """A pool worker told to stop: exit, releasing its semaphores (an abrupt end leaks them, with a warning)."""
    raise SystemExit(0)


def _init_worker() -> None:
    import numba
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle: it stops the pool
    signal.signal(signal.SIGTERM, _exit_quietly)  # the pool's terminate(): exit through the finalizers
    torch.set_num_threads(1)  # one core per worker: the pool is the parallelism
    numba.set_num_threads(1)


def run_sweep(
    configs: Sequence[RunConfig],
    out_dir: str | Path,
    *,
    workers: int = 1,
    dask: str | None = None,
    progress: bool = True,
    run_fn: Callable[..., dict[str, Any]] | None = None,
    report: bool = True,
) -> dict[str, list[str]]:
    """Run every config not finished yet under ``out_dir/runs``; then rebuild the report from all runs there.

    Returns the run ids already ``finished`` before, those ``ran`` now, and those that ``failed``
    (id -> error; a failed run writes nothing and runs again next time).
    ``run_fn`` (sequential backend only) replaces :func:`continual.runner.run`, for tests.
    A file holding a run of other settings stops the sweep before any run (see :func:`finished_runs`).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, not {workers!r}")
    runs = Path(out_dir) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    finished = finished_runs(configs, out_dir)
    pending = [c for c in configs if c not in finished]
    ran: list[str] = []
    failed: dict[str, str] = {}  # a failing run is reported, and the others go on
    # closed on the way out, Ctrl-C included: the interrupted note prints under a finished bar
    with tqdm(total=len(configs), initial=len(finished), desc="sweep", disable=not progress, file=sys.stderr) as bar:
        if dask is not None:
            _run_dask(pending, runs, dask, workers, ran, failed, bar)
        elif workers == 1:
            run_one = run_fn or _run()
            for config in pending:
                bar.set_postfix_str(run_id(config))
                try:
                    result = run_one(config, progress=progress)
                except Exception as err:  # noqa: BLE001 -- a failed run is recorded and the others go on
                    failed[run_id(config)] = f"{type(err).__name__}: {err}"
                else:
                    write_json_atomic(runs / f"{run_id(config)}.json", result)
                    ran.append(run_id(config))
                bar.update()
        elif pending:
            _run_pool(pending, runs, workers, ran, failed, bar)
    if report:
        write_report(Path(out_dir))
    return {"finished": [run_id(c) for c in finished], "ran": ran, "failed": failed}


def _run_pool(
    pending: list[RunConfig], runs: Path, workers: int, ran: list[str], failed: dict[str, str], bar: Any
) -> None:
    """Run ``pending`` in a pool of spawned processes; Ctrl-C stops them (the runs in flight are lost)."""
    import multiprocessing

    pool = multiprocessing.get_context("spawn").Pool(min(workers, len(pending)), initializer=_init_worker)
    try:
        tasks = [(asdict(c), str(runs / f"{run_id(c)}.json")) for c in pending]
        for name, error in pool.imap_unordered(_execute, tasks):
            if error is None:
                ran.append(name)
            else:
                failed[name] = error
            bar.update()
    except BaseException:
        pool.terminate()
        raise
    else:
        pool.close()
    finally:
        pool.join()


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
        try:
            cluster, client = None, Client(address, timeout=DASK_CONNECT_S)
        except (OSError, TimeoutError):
            raise OSError(
                f"no Dask scheduler answers at {address} within {DASK_CONNECT_S:g} s: "
                "start one (dask scheduler) or check --dask"
            ) from None
        except Exception as error:  # noqa: BLE001 -- whatever answers there is no Dask scheduler
            raise OSError(f"no Dask scheduler at {address} ({type(error).__name__}): check --dask") from None
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
