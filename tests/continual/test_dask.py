"""The Dask backend gives the same results as a run in this process (the dev extra installs Dask)."""

from __future__ import annotations

import json
from dataclasses import replace

import distributed
import pytest

from continual.config import RunConfig, run_id
from continual.runner import run
from continual.sweep import run_sweep


@pytest.mark.slow  # starts a local Dask cluster (worker processes)
def test_dask_sweep_matches_in_process_runs(tmp_path):
    configs = [replace(RunConfig(epochs=1, hidden=8, precision="e5m2-sr"), seed=s) for s in range(2)]
    # an in-process cluster (one worker thread): cheap, and the same code path as a remote scheduler
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        done = run_sweep(configs, tmp_path, dask=cluster.scheduler_address, progress=False, report=False)
    assert sorted(done["ran"]) == sorted(run_id(c) for c in configs) and done["failed"] == {}
    for config in configs:
        saved = json.loads((tmp_path / "runs" / f"{run_id(config)}.json").read_text())
        here = json.loads(json.dumps(run(config, progress=False)))
        saved.pop("wall_seconds"), here.pop("wall_seconds")
        assert saved == here
