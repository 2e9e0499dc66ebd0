"""The test suite's own layout (CONTRIBUTING.md, Writing tests): shared code lives in the library
(tests/builders.py, tests/fixtures.py and the other non-test modules), never in a test module,
so no module of tests/ imports a test module; and test files stay small enough to read."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
# About 700 lines is where the test files here began to hold several subjects each; the check
# leaves some room before it asks for a split by concept.
MAX_TEST_FILE_LINES = 800


def module_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def imported(source: str, module: str) -> Iterator[str]:
    """Every module that `source` (the text of `module`) imports, and every `from X import name`
    as X.name (the name may be a module), relative imports resolved against its package."""
    package = module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            found = ".".join([*base, *([node.module] if node.module else [])])
            yield found
            yield from (f"{found}.{alias.name}" for alias in node.names)


def is_test_module(module: str) -> bool:
    parts = module.split(".")
    return parts[-1].startswith("test_") and ROOT.joinpath(*parts).with_suffix(".py").is_file()


def test_no_module_of_the_suite_imports_a_test_module() -> None:
    sources = sorted(TESTS.rglob("*.py"))
    imports = {path: list(imported(path.read_text(), module_of(path))) for path in sources}
    # The walk sees the library: a walk that found nothing would pass for the wrong reason.
    assert "tests.builders" in imports[TESTS / "unit" / "planner" / "test_placement.py"]
    offenders = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path, modules in imports.items()
        for module in modules
        if is_test_module(module)
    ]
    assert offenders == [], "move what they share into the library (CONTRIBUTING.md)"


def test_is_test_module_tells_a_test_module_from_the_library() -> None:
    assert is_test_module("tests.unit.test_suite_layout")
    assert is_test_module("tests.unit.planner.test_placement")
    assert not is_test_module("tests.builders")
    assert not is_test_module("tests.unit.planner.plans")
    assert not is_test_module("tests.unit.test_no_such_module")


def test_relative_imports_are_resolved_against_the_package() -> None:
    source = "from .test_evaluation import a\nfrom . import test_properties\nfrom .. import x\n"
    found = set(imported(source, "tests.unit.planner.test_placement"))
    assert {
        "tests.unit.planner.test_evaluation",
        "tests.unit.planner.test_properties",
        "tests.unit.x",
    } <= found


def test_no_test_file_is_longer_than_a_reader_can_hold() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for path in sorted(TESTS.rglob("test_*.py"))
        if (lines := len(path.read_text().splitlines())) > MAX_TEST_FILE_LINES
    }
    assert long == {}, "split these by concept (one subject per file)"
