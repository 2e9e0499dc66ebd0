"""The fuzz tier: requests generated from botocore's models for every operation Batchyard serves,
against one server, before and after a restart on the same data dir.

Each operation gets raw HTTP requests (valid-shaped with hostile leaves, invalid, malformed) and
valid-shaped boto3 calls; every answer must be a success or a 4xx in AWS's shape. Between the
phases and at the end the server must be healthy (a normal job succeeds) and the objects created
before fuzzing unchanged, also after each restart: poison that only shows when the stored data is
read again is caught there. The tests of this module run in order on one server.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, seed

from tests.fixtures import ServerProcess
from tests.fuzz.harness import FUZZ_SETTINGS, SEED, FuzzedServer
from tests.fuzz.strategies import Operation, Requests, served_operations

pytestmark = [pytest.mark.fuzz, pytest.mark.slow]


def _order(operation: Operation) -> tuple[int, str]:
    """Creations first and deletions last, so that each operation meets the objects the others
    make (a deleted target cannot be updated)."""
    for rank, prefixes in enumerate(
        (("Create", "Register"), ("Describe", "List", "Get", "Filter"), ("Delete", "Deregister"))
    ):
        if operation.name.startswith(prefixes):
            return (rank * 2, operation.name)
    return (3, operation.name)


OPERATIONS = sorted(served_operations(), key=_order)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzedServer]:
    server = ServerProcess(tmp_path_factory.mktemp("fuzz") / "data", "--stop-timeout", "1")
    server.start()
    target = FuzzedServer(server)
    try:
        target.populate()
        yield target
    finally:
        target.close()
        server.stop()


def fuzz_raw(fuzzed: FuzzedServer, operation: Operation) -> None:
    requests = Requests(fuzzed.vocabulary(operation), fuzzed.examples())

    @FUZZ_SETTINGS
    @seed(SEED)
    @given(request=requests.raw(operation))
    def answered(request: Any) -> None:
        fuzzed.send_raw(operation, request)

    answered()


def fuzz_boto3(fuzzed: FuzzedServer, operation: Operation) -> None:
    requests = Requests(fuzzed.vocabulary(operation), fuzzed.examples())

    @FUZZ_SETTINGS.__class__(FUZZ_SETTINGS, max_examples=max(1, FUZZ_SETTINGS.max_examples // 2))
    @seed(SEED)
    @given(params=requests.valid(operation))
    def answered(params: dict[str, Any]) -> None:
        fuzzed.call_boto3(operation, params)

    answered()


def check_properties(fuzzed: FuzzedServer) -> None:
    fuzzed.assert_healthy()
    existing = fuzzed.assert_kept_unchanged()
    read = fuzzed.assert_everything_readable()
    print(
        f"{fuzzed.summary()}\n{existing} of {len(fuzzed.kept)} kept objects still exist; "
        f"{read} objects listed and described"
    )


@pytest.mark.parametrize("operation", OPERATIONS, ids=repr)
def test_raw_requests(fuzzed: FuzzedServer, operation: Operation) -> None:
    fuzz_raw(fuzzed, operation)


@pytest.mark.parametrize("operation", OPERATIONS, ids=repr)
def test_boto3_requests(fuzzed: FuzzedServer, operation: Operation) -> None:
    fuzz_boto3(fuzzed, operation)


def test_healthy_and_kept_objects_unchanged_after_fuzzing(fuzzed: FuzzedServer) -> None:
    check_properties(fuzzed)


def test_healthy_and_kept_objects_unchanged_after_a_restart(fuzzed: FuzzedServer) -> None:
    fuzzed.restart()
    check_properties(fuzzed)
    fuzzed.add_targets()


@pytest.mark.parametrize("operation", OPERATIONS, ids=repr)
def test_raw_requests_after_the_restart(fuzzed: FuzzedServer, operation: Operation) -> None:
    fuzz_raw(fuzzed, operation)


@pytest.mark.parametrize("operation", OPERATIONS, ids=repr)
def test_boto3_requests_after_the_restart(fuzzed: FuzzedServer, operation: Operation) -> None:
    fuzz_boto3(fuzzed, operation)


def test_healthy_and_kept_objects_unchanged_after_a_second_restart(fuzzed: FuzzedServer) -> None:
    check_properties(fuzzed)
    fuzzed.restart()
    check_properties(fuzzed)
