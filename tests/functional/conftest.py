"""Fixtures for functional tests: a ``network`` of real ``fcd`` processes per test, and
the tail of every node's log attached to the report of a failing test. Before the first
test, the regtest lottery model is derived into the shared test store, so nodes started
side by side only load it."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from framework import Network

from tests.exactwork import tiny_lottery

NETWORK_KEY = pytest.StashKey[Network]()


@pytest.fixture(scope="session", autouse=True)
def lottery_model() -> None:
    """Derive the tiny model into ``tests.exactwork.TEST_STORE`` once (~5 s), before any
    ``fcd`` loads it from there."""
    tiny_lottery()


@pytest.fixture
def network(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Network]:
    net = Network(tmp_path)
    request.node.stash[NETWORK_KEY] = net
    try:
        yield net
    finally:
        net.shutdown()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    net = item.stash.get(NETWORK_KEY, None)
    if net is not None and report.failed and net.nodes:
        report.sections.append(("fcd logs", net.logs()))
    return report
