"""One build cache and one directory of emitted designs per pytest session (builds are the slow part).

Under pytest-xdist (``--dist loadgroup``) every test here runs on one worker,
so each design is built once, not once per worker.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.xdist_group("cosim"))


@pytest.fixture(scope="session")
def cosim_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cosim-cache")


@pytest.fixture(scope="session")
def designs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("designs")
