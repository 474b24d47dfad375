"""The cluster test's topology, started once for the module (:mod:`tests.support.cluster`), and its figures.

The figures each test records go to the terminal summary and to ``cluster-figures.json`` in the topology's
folder, for the README.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.cluster import Cluster

FIGURES = pytest.StashKey[dict[str, Any]]()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, figures: dict[str, Any]) -> Iterator[Cluster]:
    """PostgreSQL, Redis, Ray Serve, the fake Discord with 2 shards and one bot process per shard, all running."""
    root = tmp_path_factory.mktemp("cluster")
    started = Cluster(root)
    try:
        yield started.start()
    finally:
        started.stop()
        (root / "cluster-figures.json").write_text(json.dumps(figures, indent=1))


@pytest.fixture(scope="module")
def ledger() -> dict[str, Any]:
    """What the tests found and the last test checks again once the bots have exited: ``exactly_once`` (bursts),
    ``never`` (message ids no bot may classify) and ``at_most_once`` (message ids, some lost to a kill)."""
    return {"exactly_once": [], "never": set(), "at_most_once": set()}


@pytest.fixture(scope="session")
def figures(pytestconfig: pytest.Config) -> dict[str, Any]:
    """What the cluster tests measured, by test; printed at the end of the run."""
    return pytestconfig.stash.setdefault(FIGURES, {})


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    measured = config.stash.get(FIGURES, {})
    if measured:
        terminalreporter.section("cluster test figures")
        terminalreporter.write_line(json.dumps(measured, indent=1))

