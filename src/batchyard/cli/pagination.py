"""Whole lists from the paginated Describe* and List* calls the commands show."""

from __future__ import annotations

from typing import Any

from batchyard.client import BatchClient


def paginate(batch: BatchClient, operation: str, key: str, **request: Any) -> list[dict[str, Any]]:
    """Every item under `key` in every page of `operation`."""
    items: list[dict[str, Any]] = []
    for page in batch.client.get_paginator(operation).paginate(**request):
        items.extend(page[key])
    return items
