"""Durable state of every Batch object behind the `Store` protocol of `base`.

`sql` is the real store (SQLAlchemy Core on SQLite, schema by the Alembic migrations in
`migrations/`), `memory` an in-memory twin with the same semantics for unit tests and the
simulator; `codec` turns objects into stored documents and back, and `accounting` holds the
bookkeeping rules both stores share. A store saves and applies plans (versions, evaluation
flags, child counts, consumable-resource counts); it never decides.
"""
