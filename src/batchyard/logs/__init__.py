"""Where attempt output is kept, behind the `LogStore` protocol of `base`.

This package exports the protocol and its values only. The stores are imported by their module
path, and only by `server.py` (the composition root; an import-linter contract holds it):
`file_store` keeps streams in append-only files (`FileLogStore`, and `FileLogStoreReader` for
API-only processes), `memory` in a dict for unit tests and the simulator.
"""

from batchyard.logs.base import EVENT_OVERHEAD_BYTES, LogEvent, LogStore, StreamInfo

__all__ = ["EVENT_OVERHEAD_BYTES", "LogEvent", "LogStore", "StreamInfo"]
