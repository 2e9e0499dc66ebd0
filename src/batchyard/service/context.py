"""What every service function is given: the store, the log store, the identity ARNs are
minted in, a clock, and the clientTokens UpdateConsumableResource has seen."""

from __future__ import annotations

from dataclasses import dataclass, field

from batchyard.domain.clock import Clock
from batchyard.domain.model import Identity
from batchyard.logs import LogStore
from batchyard.service.client_tokens import ClientTokens
from batchyard.store.base import Store


@dataclass(frozen=True, slots=True)
class ServiceContext:
    store: Store
    clock: Clock
    identity: Identity = field(default_factory=Identity)
    default_runtime: str = "process"
    log_group: str = "/aws/batch/job"
    logs: LogStore | None = None  # None: the CloudWatch Logs operations have nothing to read
    # One per server (per API process): kept with the context, not per module, so that two
    # stores in one process (tests, the simulator) each have their own.
    client_tokens: ClientTokens = field(default_factory=ClientTokens, compare=False, repr=False)
