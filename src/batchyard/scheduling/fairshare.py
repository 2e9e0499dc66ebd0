"""Fair-share arithmetic (SPEC §7.4): decay window, share weights, usage, compute reservation.

Pure functions of a scheduling policy's `fairsharePolicy` document and of times in epoch ms.
The planner orders shares with them; the store applies a plan's usage accruals with `decayed`.
"""

from __future__ import annotations

import math

from batchyard.domain.model import Document

DEFAULT_DECAY_SECONDS = 600
"""`shareDecaySeconds: 0` (or absent) means AWS's default minimum window of 600 s (SPEC §13.7)."""


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
