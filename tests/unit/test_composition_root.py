"""Concrete log stores are named only by server.py, the composition root.

import-linter's protected contract (pyproject.toml) keeps the concrete stores and runtimes out of
every module but server.py. It names modules, and the concrete log stores share logs.py with the
LogStore protocol that every layer imports, so this test checks the class names instead: no
module of src/batchyard but logs.py and server.py mentions them (docstrings and comments aside).
When logs.py becomes a package with a module per store, the contract takes this over.
"""

from __future__ import annotations

import ast
from pathlib import Path

import batchyard
from batchyard import logs

SOURCE = Path(batchyard.__file__).resolve().parent
CONCRETE_LOG_STORES = frozenset({"FileLogStore", "FileLogStoreReader", "MemoryLogStore"})
DEFINED_IN = Path(logs.__file__).resolve()
COMPOSITION_ROOT = SOURCE / "server.py"


def mentions(path: Path) -> list[str]:
    """Each use of a concrete log store's name in the module's code, as `path:line name`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Name):
            name = node.id
        elif isinstance(node, ast.Attribute):
            name = node.attr
        elif isinstance(node, ast.alias):
            name = node.name.rpartition(".")[2]
        else:
            continue
        if name in CONCRETE_LOG_STORES:
            found.append(f"{path.relative_to(SOURCE.parent)}:{node.lineno} {name}")
    return found


def test_the_names_are_the_concrete_log_stores_of_logs_py() -> None:
    for name in CONCRETE_LOG_STORES:
        assert isinstance(getattr(logs, name), type)


def test_no_module_but_server_py_names_a_concrete_log_store() -> None:
    modules = sorted(SOURCE.rglob("*.py"))
    offending = [
        mention
        for path in modules
        if path.resolve() not in (DEFINED_IN, COMPOSITION_ROOT)
        for mention in mentions(path)
    ]
    assert offending == []
    # The scan sees them where they are named: the server builds the file log store.
    assert any(mention.endswith(" FileLogStore") for mention in mentions(COMPOSITION_ROOT))
