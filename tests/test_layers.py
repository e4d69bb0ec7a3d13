"""The package's layers, checked by reading each module's imports: the model is shared, the
COCO wire format and the database never import each other, and the transforms an export
applies on request work on COCO records without the database (see README, "Development")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "repo"

# What each layer may import from the package (besides itself).
ALLOWED = {
    "model": {"repo.errors"},
    "coco": {"repo.errors", "repo.model"},
    "store": {"repo.errors", "repo.model"},
    "transforms": {"repo.errors", "repo.model", "repo.coco"},
}


def imported_modules(path: Path) -> set[str]:
    """Every `repo...` module a file imports, at any level (also inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return {name for name in found if name == "repo" or name.startswith("repo.")}


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_layer_imports_only_what_it_may(layer):
    own = f"repo.{layer}"
    allowed = ALLOWED[layer] | {own}
    offending = {
        f"{path.relative_to(PACKAGE.parent)} imports {module}"
        for path in sorted((PACKAGE / layer).rglob("*.py"))
        for module in imported_modules(path)
        if not any(module == prefix or module.startswith(prefix + ".") for prefix in allowed)
    }
    assert not offending, sorted(offending)


def test_the_check_sees_imports():
    """The scan is not vacuous: a top-level action imports both the store and the COCO format."""
    modules = imported_modules(PACKAGE / "labels.py")
    assert "repo.store.versions" in modules and "repo.coco.writer" in modules
