"""The clientTokens UpdateConsumableResource has seen: a repeat of a request with the same
token within 8 hours changes nothing and answers what the first one did (AWS: "the update will
only happen once").

One registry per ServiceContext, so per store and per process: like AWS, a token is not
remembered across a restart. Each API process of `--api-processes N` has its own.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from batchyard.domain.errors import ClientException
from batchyard.domain.model import ConsumableResource

CLIENT_TOKEN_TTL_MS = 8 * 60 * 60 * 1000
MAX_CLIENT_TOKENS = 10_000


@dataclass(frozen=True, slots=True)
class _TokenUse:
    expires_at: int
    request: tuple[str, str, int]
    result: ConsumableResource


class ClientTokens:
    """UpdateConsumableResource clientTokens seen in the last 8 hours (at most
    MAX_CLIENT_TOKENS, the oldest forgotten first)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: OrderedDict[str, _TokenUse] = OrderedDict()

    def once(
        self,
        token: str,
        request: tuple[str, str, int],
        now: int,
        apply: Callable[[], ConsumableResource],
    ) -> ConsumableResource:
        """apply()'s result, or the result of the first request with this token; a token used
        before with a different request is a ClientException. A failed apply() spends no
        token."""
        with self._lock:
            while self._seen:
                oldest = next(iter(self._seen.values()))
                if oldest.expires_at > now and len(self._seen) < MAX_CLIENT_TOKENS:
                    break
                self._seen.popitem(last=False)
            use = self._seen.get(token)
            if use is not None:
                if use.request != request:
                    raise ClientException(
                        f"clientToken {token} was already used with a different request."
                    )
                return use.result
            result = apply()
            self._seen[token] = _TokenUse(now + CLIENT_TOKEN_TTL_MS, request, result)
            return result
