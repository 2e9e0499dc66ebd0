"""The fixtures of the store contract: `store`, each test run on a MemoryStore and on a SqlStore
over a fresh SQLite file, and `db_url`, a fresh SQLite file's URL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from batchyard.store.memory import MemoryStore
from batchyard.store.sql import SqlStore
from tests.contract.store.steps import AnyStore


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AnyStore]:
    opened: AnyStore
    if request.param == "memory":
        opened = MemoryStore()
    else:
        opened = SqlStore(f"sqlite:///{tmp_path / 'batchyard.db'}")
    yield opened
    opened.close()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'batchyard.db'}"
