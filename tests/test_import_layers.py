"""Imports run downward only: every import of the package (inside functions too) against its layers,
and no circle of imports between the modules of one package."""

import ast
import os

import pytest

import openmm_nnbias

ROOT = os.path.dirname(openmm_nnbias.__file__)

#: Bottom to top; a module may import its own layer and the layers below. The methods (``ves``, ``metad``,
#: ``diffsim``) know no system; ``systems`` holds the molecules and materials, ``recipes`` the per-system
#: settings and the one registry of systems, ``runners`` the run loops and the input file, ``cli`` parses.
LAYERS = [
    {"_units", "_io", "io", "_ext"},
    {"cvs"},
    {"bias"},
    {"platforms", "analysis"},
    {"ves", "metad", "diffsim"},
    {"systems"},
    {"recipes"},
    {"runners"},
    {"cli", "<root>"},
]


def layer_of(unit: str) -> int:
    for i, names in enumerate(LAYERS):
        if unit in names:
            return i
    raise KeyError(f"openmm_nnbias.{unit} is in no layer of tests/test_import_layers.py: add it to LAYERS")


def modules():
    """{dotted module name: path} of every module of the package."""
    found = {}
    for folder, _, files in os.walk(ROOT):
        for name in files:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, name), os.path.dirname(ROOT))[:-3].split(os.sep)
                if rel[-1] == "__init__":
                    rel = rel[:-1]
                found[".".join(rel)] = os.path.join(folder, name)
    return found


def imports_of(module: str, path: str, source: str = None):
    """(line, imported dotted name) of every package import in the module, at any depth of its code."""
    is_package = path.endswith("__init__.py")
    tree = ast.parse(source if source is not None else open(path).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # ``from .. import cvs`` / ``from openmm_nnbias import cvs`` import the sub-package, not the root
            names = ([target] if node.module and target != "openmm_nnbias" else []) + \
                [f"{target}.{a.name}" for a in node.names]
            for name in names:
                if name.split(".")[0] == "openmm_nnbias":
                    yield node.lineno, name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "openmm_nnbias":
                    yield node.lineno, alias.name


def unit_of(dotted: str) -> str:
    """The layer unit of a dotted name: the sub-package or top-level module under openmm_nnbias."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else "<root>"


def upward_imports(all_modules):
    problems = []
    for module, path in sorted(all_modules.items()):
        here = layer_of(unit_of(module))
        for line, target in imports_of(module, path):
            unit = unit_of(target)
            if unit not in {u for layer in LAYERS for u in layer} and target not in all_modules:
                continue  # a name imported from a module, e.g. openmm_nnbias.io.read_colvar: its module is checked
            if layer_of(unit) > here:
                problems.append(f"{path}:{line}: {module} imports {target} (layer {unit} is above {unit_of(module)})")
    return problems


def test_imports_run_downward_only():
    problems = upward_imports(modules())
    assert not problems, "upward imports:\n" + "\n".join(problems)


def test_a_planted_upward_import_is_found(tmp_path):
    """The check itself: ``cvs`` importing ``ves`` inside a function is reported."""
    source = "def f():\n    from ..ves import DeepVESUpdater\n    return DeepVESUpdater\n"
    found = [t for _, t in imports_of("openmm_nnbias.cvs.base", os.path.join(ROOT, "cvs", "base.py"), source)]
    assert "openmm_nnbias.ves" in found
    assert layer_of(unit_of("openmm_nnbias.ves")) > layer_of(unit_of("openmm_nnbias.cvs.base"))


def test_no_import_circle_between_modules_of_a_package():
    all_modules = modules()
    graph = {}
    for module, path in all_modules.items():
        if path.endswith("__init__.py"):
            continue  # a package's __init__ re-exports its modules; its imports are not edges of a circle
        graph[module] = {t for _, t in imports_of(module, path) if t in all_modules and t != module
                         and not all_modules[t].endswith("__init__.py") and unit_of(t) == unit_of(module)}
    state, circles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for nxt in graph.get(node, ()):
            if state.get(nxt) == "open":
                circles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles)


@pytest.mark.parametrize("unit", sorted({unit_of(m) for m in modules()}))
def test_every_package_unit_has_a_layer(unit):
    layer_of(unit)
