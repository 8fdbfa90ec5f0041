"""The package's import graph: no cycles, and few imports hidden inside functions.

The graph is read from the source with ``ast`` (nothing is imported): an edge for every
``import``/``from ... import`` of a jaxnet module, at module level or inside a function, plus
the packages that importing a module runs first (``jaxnet.train.step`` runs
``jaxnet/train/__init__.py``) unless the importer already lives in that package.
"""

import ast
from pathlib import Path

import pytest

import jaxnet

ROOT = Path(jaxnet.__file__).parent
MAX_FUNCTION_LEVEL_IMPORTS = 15  # optional dependencies and real load-time costs only


def _modules() -> dict[str, Path]:
    modules = {}
    for path in ROOT.rglob("*.py"):
        parts = ["jaxnet", *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _imports(name: str, path: Path):
    """``(target module, inside a function?)`` for every jaxnet import in ``path``."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    nested = {
        id(node)
        for function in ast.walk(tree)
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
        for node in ast.walk(function)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([base] if base else [])])
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                       for a in node.names]  # fmt: skip
        else:
            continue
        for target in targets:
            if target.split(".")[0] != "jaxnet":
                continue
            while target not in MODULES and "." in target:
                target = target.rsplit(".", 1)[0]
            yield target, id(node) in nested


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        edges = set()
        for target, _ in _imports(name, path):
            parts = target.split(".")
            parents = [".".join(parts[:i]) for i in range(1, len(parts))]
            for module in [target, *parents]:
                inside = name == module or name.startswith(module + ".")
                if module in MODULES and not inside:
                    edges.add(module)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_a_cycle_when_there_is_one():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_reads_function_level_and_package_imports(tmp_path):
    module = tmp_path / "example.py"
    module.write_text("from jaxnet import core\ndef f():\n    from jaxnet.train import step\n")
    found = sorted(_imports("jaxnet.example", module))
    assert found == [("jaxnet.core", False), ("jaxnet.train.step", True)]
    graph = import_graph()
    assert {"jaxnet.train.many", "jaxnet.train"} <= graph["jaxnet.studies.run"]  # + its package
    assert "jaxnet.train" not in graph["jaxnet.train.fit"]  # a package's own modules


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_few_imports_inside_functions():
    hidden = [
        f"{name} -> {target}"
        for name, path in MODULES.items()
        for target, inside in _imports(name, path)
        if inside
    ]
    assert len(hidden) <= MAX_FUNCTION_LEVEL_IMPORTS, "\n".join(hidden)


@pytest.mark.parametrize("name", ["jaxnet.description", "jaxnet.core", "jaxnet.registry"])
def test_the_description_imports_no_layer_module_and_no_layer_imports_it(name):
    graph = import_graph()
    layer_modules = {m for m in MODULES if m.startswith("jaxnet.layers.")}
    if name == "jaxnet.description":
        assert not graph[name] & layer_modules - {"jaxnet.layers.recurrent"}
    else:
        assert "jaxnet.description" not in graph[name]
    assert not any("jaxnet.description" in graph[m] for m in layer_modules)
    assert graph["jaxnet.registry"] <= {"jaxnet.errors"}


def test_no_module_imports_another_modules_private_names():
    found = []
    for name, path in MODULES.items():
        package = name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith("jaxnet"):
                continue
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                same_package = submodule in MODULES and submodule.startswith(package + ".")
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                if private and not same_package:
                    found.append(f"{name}: from {node.module} import {alias.name}")
    assert found == []
