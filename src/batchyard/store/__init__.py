"""Durable state of every Batch object behind the `Store` protocol of `base`.

`sql` is the real store (a package: SQLAlchemy Core on SQLite, schema by the Alembic
migrations in `migrations/`), `memory` an in-memory twin with the same semantics for unit tests
and the simulator; `apply_rules` holds the rules both stores apply alike (which updates of a
plan apply, what a status change implies, consumable-resource and share-usage bookkeeping), so
each store keeps only its storage mechanics; `codec` turns objects into stored documents and
back; `quarantine` says what records that cannot be read become. A store saves and applies plans
(versions, evaluation flags, child counts, consumable-resource counts); it never decides.
"""
