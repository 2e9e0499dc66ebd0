"""Shared fixtures (see tests/fixtures.py), and which tests coverage does not measure."""

import pytest
from hypothesis import is_hypothesis_test

from tests.fixtures import batch, server
from tests.fuzz.harness import seed_line

__all__ = ["batch", "server"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Property tests run the planner and the stores on thousands of random snapshots: traced by
    # coverage (`make unit`, `make test`) they about doubled the unit tier's CPU time, for
    # lines the example tests reach anyway. They run unmeasured, so the coverage floor of
    # domain/ and scheduling/ is met by example tests, each of which shows a rule.
    for item in items:
        if isinstance(item, pytest.Function) and is_hypothesis_test(item.obj):
            item.add_marker(pytest.mark.no_cover)


def pytest_report_header() -> str:
    """The fuzz tier's seed, so that a failure it finds can be run again."""
    return seed_line()
