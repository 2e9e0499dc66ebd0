"""The compiled-statement executor: statements of statements.py run on the DBAPI cursor.

Why: a dispatch round and a SubmitJob run many small statements, and SQLAlchemy's
per-execution work (cache keys, execution contexts, result metadata, parameter processing)
cost more than SQLite's; it was ~10% of SubmitJob's profile. So a module-level statement is
compiled once per dialect (and key set, and IN-list length) and its SQL run on the DBAPI
cursor, with plain tuples back. What it buys and the bench scenarios that guard it:
docs/performance.md, ledger of optimisations. `Connection.execute` is the plain equivalent,
and the store contract suite runs every statement through here.

What it keeps of SQLAlchemy's behaviour: cursor-execute listeners (before_cursor_execute may
rewrite the statement and parameters; after_cursor_execute sees them) fire as under
`Connection.execute`, and DBAPI errors are raised as SQLAlchemy's (IntegrityError, ...);
tests/unit/store/test_sql_fastpath.py holds both. The SQLAlchemy internals it relies on, to check
on an upgrade: `SQLCompiler.bind_names`, `positional`/`positiontup`, `BindParameter.required`
and `.effective_value`, `construct_expanded_state`, `connection.dispatch.before_cursor_execute`
/ `after_cursor_execute`, `DBAPIError.instance`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.compiler import SQLCompiler


@dataclass(frozen=True, slots=True)
class Form:
    """A statement compiled for one dialect (and key set, and IN-list length)."""

    sql: str
    names: tuple[str, ...] | None  # the order of positional parameters; None: named ones
    defaults: dict[str, Any]  # values the statement binds itself (literals, OFFSET)

    def bind(self, params: Mapping[str, Any]) -> Any:
        values = {**self.defaults, **params} if self.defaults else params
        if self.names is None:
            return values
        return tuple([values[name] for name in self.names])


_forms: dict[tuple[str, Any, tuple[str, ...], int], Form] = {}


def form_of(
    connection: Connection,
    statement: sa.ClauseElement,
    keys: tuple[str, ...] = (),
    expanding: tuple[str, int] | None = None,
) -> Form:
    """The compiled form of a module-level statement (the cache holds them by identity)."""
    dialect = connection.dialect
    cache_key = (dialect.name, statement, keys, -1 if expanding is None else expanding[1])
    found = _forms.get(cache_key)
    if found is not None:
        return found
    compiled = statement.compile(dialect=dialect, column_keys=list(keys) if keys else None)
    assert isinstance(compiled, SQLCompiler)
    binds = {name: bind for bind, name in compiled.bind_names.items()}
    defaults = {name: bind.effective_value for name, bind in binds.items() if not bind.required}
    sql = str(compiled)
    names = tuple(compiled.positiontup or ()) if compiled.positional else None
    if any(bind.expanding for bind in binds.values()):
        # IN lists: the statement's own (literal) ones and the one `expanding` names.
        values = dict(defaults)
        if expanding is not None:
            values[expanding[0]] = [None] * expanding[1]
        state = compiled.construct_expanded_state(values, escape_names=False)
        sql = state.statement
        names = tuple(state.positiontup or ()) if compiled.positional else None
        prefix = "" if expanding is None else f"{expanding[0]}_"
        defaults = {
            key: value
            for key, value in state.parameters.items()
            if not (prefix and key.startswith(prefix))
        }
    if len(_forms) >= 4096:  # IN lists of many lengths
        _forms.clear()
    found = _forms[cache_key] = Form(sql, names, defaults)
    return found


def _cursor(connection: Connection, form: Form, args: Any, *, many: bool) -> Any:
    """Run a compiled form on the DBAPI cursor, telling cursor-execute listeners as SQLAlchemy
    would, and raising SQLAlchemy's exceptions."""
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    sql = form.sql
    for listener in connection.dispatch.before_cursor_execute:
        sql, args = listener(connection, cursor, sql, args, None, many)
    dbapi = connection.dialect.loaded_dbapi
    try:
        if many:
            cursor.executemany(sql, args)
        else:
            cursor.execute(sql, args)
    except dbapi.Error as exc:
        cursor.close()
        raise sa.exc.DBAPIError.instance(sql, args, exc, dbapi.Error) from exc
    for listener in connection.dispatch.after_cursor_execute:
        listener(connection, cursor, sql, args, None, many)
    return cursor


def fetch(
    connection: Connection,
    statement: sa.ClauseElement,
    params: Mapping[str, Any] | None = None,
    *,
    ids: tuple[str, Sequence[str]] | None = None,
) -> list[Any]:
    """Rows of a hot statement, as plain tuples.

    A dispatch round runs small statements; SQLAlchemy's per-execution work (cache keys,
    execution contexts, result metadata) costs more than the database's, so these are
    compiled once and run on the DBAPI cursor. ids fills an expanding IN parameter. What it
    buys and the SQLAlchemy internals it relies on: docs/performance.md#ledger-of-optimisations.
    """
    values = dict(params or {})
    expanding = None
    if ids is not None:
        name, items = ids
        expanding = (name, len(items))
        for index, item in enumerate(items, start=1):
            values[f"{name}_{index}"] = item
    form = form_of(connection, statement, expanding=expanding)
    cursor = _cursor(connection, form, form.bind(values), many=False)
    try:
        return cursor.fetchall() if cursor.description is not None else []
    finally:
        cursor.close()


def execute_rows(
    connection: Connection,
    statement: sa.ClauseElement,
    keys: tuple[str, ...],
    rows: list[tuple[Any, ...]],
) -> None:
    """execute_many with each row a tuple of the values of `keys`, in that order: a bulk
    insert need not build a dict per row."""
    if not rows:
        return
    form = form_of(connection, statement, keys=keys)
    if form.names != keys or form.defaults:
        execute_many(connection, statement, [dict(zip(keys, row, strict=True)) for row in rows])
        return
    _cursor(connection, form, rows, many=True).close()


def execute_many(
    connection: Connection, statement: sa.ClauseElement, rows: Sequence[Mapping[str, Any]]
) -> None:
    """executemany of a hot statement without SQLAlchemy's per-row parameter processing.

    Every value is already a plain str/int/bool/None, so nothing needs processing. The rows
    must all have the same keys; they pick the columns an INSERT or UPDATE sets.
    """
    if not rows:
        return
    form = form_of(connection, statement, keys=tuple(rows[0]))
    _cursor(connection, form, [form.bind(row) for row in rows], many=True).close()
