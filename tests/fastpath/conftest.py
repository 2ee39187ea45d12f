"""Fixtures for the fast-path tests: one real snmpd shared by the live tests of a run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .agents import Snmpd, running_snmpd


@pytest.fixture(scope="session")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    with running_snmpd(tmp_path_factory.mktemp("snmpd")) as agent:
        yield agent
