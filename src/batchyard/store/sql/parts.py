"""What every part of SqlStore is given: the database (connection.py), the decode caches
(caches.py), and change notification. Each module of the package that implements a concept of
the Store protocol is a mixin on this class (see the package docstring for why).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from batchyard.store.sql.caches import DecodeCaches
from batchyard.store.sql.connection import Database

_log = logging.getLogger("batchyard.store.sql")


class StorePart:
    _db: Database
    _caches: DecodeCaches
    _listeners: list[Callable[[], None]]

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call listener (outside any lock or transaction) after every committed write.

        A write stores a job version or a resource; clearing evaluation flags alone is not one.
        Only writes made through this SqlStore object are seen; other processes' writes show
        in change_counter().
        """
        self._listeners.append(listener)

    def _notify(self) -> None:
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                _log.exception("store change listener failed")
