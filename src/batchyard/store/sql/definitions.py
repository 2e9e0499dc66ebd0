"""Job definitions: revisions of a name, each a document with its status in a column.

Part of SqlStore (see parts.py).
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from batchyard.domain.model import JobDefinition
from batchyard.store import apply_rules, codec
from batchyard.store.base import ConflictError
from batchyard.store.sql.fastpath import fetch
from batchyard.store.sql.parts import StorePart
from batchyard.store.sql.schema import job_definitions
from batchyard.store.sql.statements import (
    BUMP_CHANGES,
    SELECT_DEFINITION,
    SELECT_LATEST_DEFINITION,
)


class JobDefinitions(StorePart):
    def add_job_definition(self, build: Callable[[int], JobDefinition]) -> JobDefinition:
        name = apply_rules.definition_name(build)
        for _ in range(5):
            try:
                with self._db.writing() as connection:
                    highest = connection.execute(
                        sa.select(sa.func.max(job_definitions.c.revision)).where(
                            job_definitions.c.name == name
                        )
                    ).scalar()
                    revision = (highest or 0) + 1
                    definition = build(revision)
                    if definition.name != name or definition.revision != revision:
                        raise ValueError("build must return the given revision of one name")
                    connection.execute(
                        job_definitions.insert().values(
                            name=name,
                            revision=revision,
                            status=definition.status,
                            doc=codec.dumps(codec.job_definition_document(definition)),
                        )
                    )
                    fetch(connection, BUMP_CHANGES)
                self._notify()
                return definition
            except IntegrityError:
                # Another process took this revision between our read and insert.
                continue
        raise ConflictError(f"could not allocate a revision of job definition {name}")

    def put_job_definition(self, definition: JobDefinition) -> None:
        with self._db.writing() as connection:
            updated = connection.execute(
                job_definitions.update()
                .where(
                    job_definitions.c.name == definition.name,
                    job_definitions.c.revision == definition.revision,
                )
                .values(
                    status=definition.status,
                    doc=codec.dumps(codec.job_definition_document(definition)),
                )
            )
            if updated.rowcount == 0:
                raise ConflictError(
                    f"JobDefinition {definition.name}:{definition.revision} does not exist"
                )
            fetch(connection, BUMP_CHANGES)
        self._notify()

    def get_job_definition(self, name: str, revision: int) -> JobDefinition | None:
        with self._db.reading() as connection:
            rows = fetch(connection, SELECT_DEFINITION, {"b_name": name, "b_revision": revision})
        found: JobDefinition | None = (
            self._caches.decoded(job_definitions.name, rows[0][0]) if rows else None
        )
        return found

    def latest_job_definition(self, name: str, *, active_only: bool) -> JobDefinition | None:
        with self._db.reading() as connection:
            rows = fetch(connection, SELECT_LATEST_DEFINITION[active_only], {"b_name": name})
        found: JobDefinition | None = (
            self._caches.decoded(job_definitions.name, rows[0][0]) if rows else None
        )
        return found

    def list_job_definitions(self) -> list[JobDefinition]:
        query = sa.select(job_definitions.c.doc).order_by(
            job_definitions.c.name, job_definitions.c.revision
        )
        with self._db.reading() as connection:
            texts = connection.execute(query).scalars()
            found = [self._caches.decoded(job_definitions.name, text) for text in texts]
        return [definition for definition in found if definition is not None]
