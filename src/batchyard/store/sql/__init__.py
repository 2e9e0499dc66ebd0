"""SQL Store on SQLAlchemy Core: SQLite (WAL). PostgreSQL is planned: the dialect branches
here are written, but no test runs them yet.

Saves and applies only: versions, evaluation flags, array child counts and dependents,
consumable resources' in-use counts and share usage; the rules both stores apply alike are
store/apply_rules.py's: here they are loaded for, called and written. The schema comes from
the Alembic migrations in store/migrations, applied on open; a file that is not a Batchyard
database is refused and never written to.

The package, one concept a module (Django's database backends are the model):

- schema.py       the tables (they mirror the migrations; tests/unit/store/test_schema.py compares)
- rows.py         a job row <-> a Job, by named column positions; the columns a write sets
- statements.py   the statements run often, built once and named by what they select
- fastpath.py     the compiled-statement executor on the DBAPI cursor, and why
- connection.py   the database file, the engine, held connections, locks, transactions
- caches.py       what is kept decoded between transactions, and why it is never stale
- parts.py        what each part below is given: the database, the caches, notification
- resources.py    compute environments, job queues, scheduling policies
- definitions.py  job definitions
- consumables.py  consumable resources and their in-use counts
- jobs.py         inserting, reading, listing, mutating and deleting jobs
- scheduling.py   snapshot, commit, quarantine, share usage
- store.py        SqlStore: the parts composed, opening and closing

The parts are mixins of one class rather than objects SqlStore forwards to: each Store method
is a method of SqlStore either way, and the protocol's 40 methods would each need a forwarding
method (and an extra call on paths a dispatch round runs thousands of times) for no gain in
what a part can see. A part reaches the others only through module-level functions taking the
connection and the caches (`store_pairs`, `account_pairs`, ...), never through `self`.
"""

from batchyard.store.sql.store import SqlStore

__all__ = ["SqlStore"]
