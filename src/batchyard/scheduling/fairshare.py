"""Fair-share arithmetic: decay window, share weights, usage, compute reservation
(docs/aws-behaviour.md#fair-share).

Pure functions of a scheduling policy's `fairsharePolicy` document and of times in epoch ms.
The planner orders shares with them; the store applies a plan's usage accruals with `decayed`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable

from batchyard.domain.model import Document

DEFAULT_DECAY_SECONDS = 600
"""`shareDecaySeconds: 0` (or absent) means AWS's default minimum window of 600 s
(docs/aws-behaviour.md#fair-share)."""


def decay_window_ms(fairshare_policy: Document | None) -> int:
    """The window over which past usage fades, in ms."""
    seconds = int(fairshare_policy.get("shareDecaySeconds", 0)) if fairshare_policy else 0
    return (seconds or DEFAULT_DECAY_SECONDS) * 1000


def decayed(value: float, since: int, until: int, window_ms: int) -> float:
    """`value` valued at `since`, decayed to `until`: it falls to 1/e over one window."""
    if value == 0.0 or until <= since:
        return value
    return value * math.exp(-(until - since) / window_ms)


def attempt_usage(vcpus: float, started: int, until: int, window_ms: int) -> float:
    """The usage at `until` of an attempt that held `vcpus` from `started` to `until`.

    The vCPU-time, each instant weighted by how far it has decayed, divided by the window:
    an attempt held for many windows approaches `vcpus`.
    """
    if until <= started:
        return 0.0
    return vcpus * -math.expm1(-(until - started) / window_ms)


def compute_reservation(fairshare_policy: Document | None) -> int:
    """computeReservation (0..99): the percentage kept back for shares not yet active."""
    return int(fairshare_policy.get("computeReservation", 0) or 0) if fairshare_policy else 0


def usable_fraction(compute_reservation: int, active_shares: int) -> float:
    """The fraction of a queue's maximum vCPUs its active shares may hold together.

    AWS reserves `(computeReservation/100) ** activeShares` of it for shares to come.
    """
    if compute_reservation <= 0:
        return 1.0
    return 1.0 - (compute_reservation / 100) ** active_shares


def share_weights(
    fairshare_policy: Document | None, shares: Iterable[str], active: Collection[str]
) -> dict[str, float]:
    """The weight factor of each share: lower weights get more capacity.

    An exact shareDistribution entry gives its weightFactor; a prefix entry `P*` gives every
    share starting with P its weightFactor times the number of active shares matching it, so
    the group as a whole weighs like one share; anything else weighs 1.0.
    """
    exact: dict[str, float] = {}
    prefixes: list[tuple[str, float]] = []
    for entry in (fairshare_policy or {}).get("shareDistribution") or ():
        identifier = str(entry["shareIdentifier"])
        weight = float(entry.get("weightFactor", 1.0) or 1.0)
        if identifier.endswith("*"):
            prefixes.append((identifier[:-1], weight))
        else:
            exact[identifier] = weight
    weights: dict[str, float] = {}
    for share in shares:
        if share in exact:
            weights[share] = exact[share]
            continue
        weights[share] = 1.0
        for prefix, weight in prefixes:
            if share.startswith(prefix):
                members = sum(1 for other in active if other.startswith(prefix))
                weights[share] = weight * max(1, members)
                break
    return weights
