"""The package uses no private attribute or module of another library (``obj._name`` outside its own classes)."""

import ast
import pathlib

import openmm_nnbias

PACKAGE = pathlib.Path(openmm_nnbias.__file__).parent
#: namedtuple's public methods carry an underscore so as not to clash with field names
PUBLIC_UNDERSCORED = {"_fields", "_asdict", "_replace", "_make"}


def _own(base: ast.expr) -> bool:
    """``self.x``, ``cls.x`` and ``super().x`` reach the package's own attributes."""
    if isinstance(base, ast.Name):
        return base.id in ("self", "cls")
    return isinstance(base, ast.Call) and isinstance(base.func, ast.Name) and base.func.id == "super"


def private_accesses(source: str) -> list:
    """``(line, expression)`` of every ``x._name`` whose ``x`` is not the object's own."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            if node.attr not in PUBLIC_UNDERSCORED and not _own(node.value):
                found.append((node.lineno, ast.unparse(node)))
        modules = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
        for module in modules:
            parts = module.split(".")
            if parts[0] != "openmm_nnbias" and any(p.startswith("_") and not p.startswith("__") for p in parts):
                found.append((node.lineno, ast.unparse(node)))
    return found


def test_the_scan_finds_a_private_attribute():
    source = "q = state.getPotentialEnergy()._value\nself._cache = None\nimport sevenn._keys as keys\n"
    assert sorted(private_accesses(source)) == [(1, "state.getPotentialEnergy()._value"), (3, "import sevenn._keys as keys")]


def test_no_private_attribute_of_another_library():
    found = [f"{path.relative_to(PACKAGE)}:{line}: {expr}"
             for path in sorted(PACKAGE.rglob("*.py")) for line, expr in private_accesses(path.read_text())]
    assert not found, "private attributes of other objects:\n" + "\n".join(found)
