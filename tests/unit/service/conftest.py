"""The `clock` and `ctx` fixtures of the service tests (see context.py)."""

from tests.unit.service.context import clock, ctx

__all__ = ["clock", "ctx"]
