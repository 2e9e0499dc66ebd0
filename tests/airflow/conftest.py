"""Fixtures of the real-Airflow tests: the Airflow virtualenv and a Batchyard server per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.airflow.environment import ensure_venv
from tests.fixtures import ServerProcess


@pytest.fixture(scope="session")
def airflow_bin() -> Path:
    return ensure_venv()


@pytest.fixture(scope="module")
def batchyard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("batchyard") / "data", "--stop-timeout", "2")
    server.start()
    yield server
    server.stop()
