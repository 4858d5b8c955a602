"""The package's shape, held by tests: data flows one way (no import circle, counting imports inside
functions, TYPE_CHECKING imports aside), one engine is one module (up to 700 lines; any other module 400), no
function body over 60 lines, and no engine is named outside ``kvsize/engines/``: code asks the engine instead."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "kvsize"
MAX_MODULE_LINES = 400
MAX_ENGINE_MODULE_LINES = 700
MAX_FUNCTION_LINES = 60


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(path: Path, modules: set[str]) -> set[str]:
    """Every kvsize module ``path`` imports at run time (module level or inside functions), not under TYPE_CHECKING."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(child) for child in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kvsize"):
            # "from kvsize.cli import options" imports the submodule; "from kvsize.cli.app import app" the module
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & modules
            found |= submodules or {node.module}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("kvsize")}
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = {target for target in _runtime_imports(path, set(modules)) if target in modules and target != name}
        # A package's __init__ is a face, not a room: importing kvsize.x.y runs kvsize/x/__init__, which we skip
        # unless it is imported by name.
        graph[name] = targets
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if state.get(target) is None and (found := visit(target)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_circle():
    graph = _graph()
    graph.pop("kvsize", None)  # the public face re-exports everything; nothing inside imports it for a name
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def _engine_module(path: Path) -> bool:
    """A module of one engine: under engines/, named after an engine in the registry (``lmcache_settings``)."""
    from kvsize.engines.registry import ENGINE_NAMES

    stems = {name.replace("-", "_") for name in ENGINE_NAMES}
    return path.parent.name == "engines" and any(path.stem == s or path.stem.startswith(s + "_") for s in stems)


def test_one_engine_one_module_and_no_module_over_400_lines():
    long = {}
    for path in PACKAGE.rglob("*.py"):
        lines = len(path.read_text().splitlines())
        if lines > (MAX_ENGINE_MODULE_LINES if _engine_module(path) else MAX_MODULE_LINES):
            long[str(path.relative_to(PACKAGE))] = lines
    assert long == {}


def _engine_names_outside_engines() -> list[str]:
    """``engine == ...`` compares and engine names as string literals in kvsize/, outside kvsize/engines/."""
    from kvsize.engines.registry import ENGINE_NAMES

    found = []
    for path in PACKAGE.rglob("*.py"):
        if "engines" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            where = f"{path.relative_to(PACKAGE)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Constant) and node.value in ENGINE_NAMES:
                found.append(f"{where}: the literal {node.value!r}")
            if isinstance(node, ast.Compare) and "engine" in ast.unparse(node.left).lower():
                comparators = [ast.unparse(c) for c in node.comparators]
                if any(isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn)) for op in node.ops):
                    found.append(f"{where}: {ast.unparse(node.left)} compared with {', '.join(comparators)}")
    return found


def test_no_engine_is_named_outside_the_engines():
    assert _engine_names_outside_engines() == []


def test_the_engine_name_finder_finds_them(tmp_path, monkeypatch):
    module = PACKAGE / "_structure_probe.py"
    module.write_text('def f(layout):\n    return layout.engine == "vllm" or layout.name in ("sglang",)\n', encoding="utf-8")
    try:
        found = _engine_names_outside_engines()
    finally:
        module.unlink()
    assert any("the literal 'vllm'" in line for line in found)
    assert any("layout.engine compared with" in line for line in found)
    assert any("the literal 'sglang'" in line for line in found)


def test_no_function_body_over_60_lines():
    long = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body[1:] if isinstance(node.body[0], ast.Expr) and len(node.body) > 1 else node.body
                lines = (node.end_lineno or 0) - body[0].lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(PACKAGE)}:{node.name}"] = lines
    assert long == {}


def test_no_submodule_shadows_a_library_call():
    import kvsize

    calls = {"size", "check", "capacity", "probe", "replay"}
    assert not {path.stem for path in PACKAGE.glob("*.py")} & calls
    assert not {path.name for path in PACKAGE.iterdir() if path.is_dir()} & calls
    assert all(callable(getattr(kvsize, name)) for name in calls)
