"""Fixtures shared by the suite: one nsd upstream per session, a sinkdns process per test."""

from __future__ import annotations

import pytest

from tests.support.nsd import Nsd
from tests.support.process import Sinkdns


@pytest.fixture(scope="session")
def nsd(tmp_path_factory):
    server = Nsd(tmp_path_factory.mktemp("nsd")).start()
    yield server
    server.stop()


@pytest.fixture
def start_sinkdns(tmp_path):
    """Start sinkdns with the given flags; every process started is stopped after the test."""
    started: list[Sinkdns] = []

    def start(*args: str, listen: tuple[str, ...] = ("127.0.0.1:0",), name: str = "sinkdns") -> Sinkdns:
        proc = Sinkdns(tmp_path / f"{name}{len(started)}", *args, listen=listen).start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
