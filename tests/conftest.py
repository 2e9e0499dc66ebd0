"""Shared fixtures (see tests/fixtures.py)."""

from tests.fixtures import batch, server

__all__ = ["batch", "server"]
