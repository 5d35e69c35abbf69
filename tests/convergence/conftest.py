"""Convergence tests: fault matrix, model-based test, process kills. Their rig is their own (`world.rig`)."""

from __future__ import annotations

import pytest

from tests.convergence.world import Rig, World, rig


@pytest.fixture(scope="session")
def convergence_rig() -> Rig:
    return rig()


@pytest.fixture
def world(convergence_rig: Rig):
    made = World(convergence_rig)
    yield made
    made.cleanup()


def pytest_sessionfinish(session) -> None:
    from tests.convergence import matrix

    matrix.shutdown()  # before the rig's Azurite stops (at exit)


def pytest_terminal_summary(terminalreporter) -> None:
    from tests.convergence import matrix

    for line in matrix.SIZE:
        terminalreporter.write_line(line)
