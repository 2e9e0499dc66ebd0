"""Fair-share policies in the service layer (service/scheduling_policies.py): which pairs of
shareDistribution entries overlap, worked out by hand from AWS's rule that a trailing `*`
matches every identifier with that prefix."""

from __future__ import annotations

import pytest

from batchyard.domain.errors import ClientException
from batchyard.service import scheduling_policies
from batchyard.service.context import ServiceContext
from batchyard.store.memory import MemoryStore
from tests.builders import FixedClock


def create(first: str, second: str) -> None:
    ctx = ServiceContext(store=MemoryStore(), clock=FixedClock())
    scheduling_policies.create_scheduling_policy(
        ctx,
        name="sp",
        fairshare_policy={
            "shareDistribution": [{"shareIdentifier": first}, {"shareIdentifier": second}]
        },
    )


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("UserA", "UserA"),  # the same identifier twice
        ("UserA*", "UserA1"),  # the prefix matches the identifier
        ("UserA1", "UserA*"),  # in either order
        ("UserA*", "UserA"),  # a prefix matches itself with nothing after it
        ("User*", "UserA*"),  # UserA1 would match both
        ("UserA*", "User*"),
        ("UserA*", "UserA*"),
    ],
)
def test_overlapping_shares_are_refused(first: str, second: str) -> None:
    with pytest.raises(ClientException) as info:
        create(first, second)
    assert info.value.message == f"shareDistribution entries {first} and {second} overlap."


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("UserA", "UserB"),
        ("UserA", "UserA1"),  # no * on either: different identifiers
        ("UserA*", "UserB"),
        ("UserA*", "UserB*"),
        ("UserA1*", "UserA"),  # UserA lacks the prefix UserA1
    ],
)
def test_disjoint_shares_are_accepted(first: str, second: str) -> None:
    create(first, second)
