"""The house keeps its shape (docs/architecture.md): one folder per concern, few top-level modules, helpers that
import no stage, and no import cycle between modules or between folders."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

VGAN = REPO / "vgan"
MAX_TOP_LEVEL_MODULES = 8


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(VGAN.rglob("*.py"))}


def folder(module: str) -> str:
    """The folder (sub-package) a module lives in, or the module itself for a top-level one."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and (VGAN / parts[1]).is_dir() else module


def module_level_imports(tree: ast.Module):
    """The import statements run when the module is imported: top level, inside module-level if/try/with blocks,
    but not under ``if TYPE_CHECKING``."""
    pending = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            pending.extend(node.orelse)
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            for block in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, block, []):
                    pending.extend(child.body if isinstance(child, ast.ExceptHandler) else [child])


def imported(node, known) -> set[str]:
    """The vgan modules an import statement names (``from a import b`` names ``a`` and, when it is one, ``a.b``)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif node.level == 0 and node.module:
        names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    else:
        raise AssertionError(f"relative import at line {node.lineno}: vgan uses absolute imports")
    return {name for name in names if name in known}


def graph(level_of=lambda module: module, everywhere: bool = False) -> dict[str, set[str]]:
    """``level_of(module)`` -> the ``level_of`` of what it imports: at module level, or ``everywhere`` (inside
    functions too)."""
    known, edges = modules(), {}
    for module, path in known.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        nodes = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))] if everywhere \
            else module_level_imports(tree)
        targets = {level_of(other) for node in nodes for other in imported(node, known)}
        edges.setdefault(level_of(module), set()).update(targets - {level_of(module)})
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Each cycle as the path that closes it (depth-first search), empty when the graph is acyclic."""
    found, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for other in sorted(edges.get(node, ())):
            if state.get(other) == "open":
                found.append(path[path.index(other):] + [other])
            elif other not in state:
                visit(other, path + [other])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


def test_at_most_eight_top_level_modules():
    top = sorted(path.name for path in VGAN.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, f"vgan/ has {len(top)} top-level modules {top}: put new ones in a folder"


def test_no_import_cycle_between_modules_at_module_level():
    assert cycles(graph()) == []


def test_no_import_cycle_between_folders_at_module_level():
    # a folder's lazy imports (inside functions) may reach up, e.g. train/run.py logs its run through tracking
    assert cycles(graph(folder)) == []


def test_util_imports_nothing_but_util():
    edges = graph(everywhere=True)
    outside = {module: sorted(other for other in targets if folder(other) != "util")
               for module, targets in edges.items() if folder(module) == "util"}
    assert {module: others for module, others in outside.items() if others} == {}


def test_every_folder_says_what_lives_there_and_what_it_may_import():
    for init in sorted(VGAN.glob("*/__init__.py")):
        docstring = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "Imports:" in docstring, f"{init.relative_to(REPO)}: its docstring states no import rule (Imports: ...)"


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_two_modules_share_a_file_name():
    # a name says which module it is without its folder (before: model_registry.py vs models/registry.py,
    # summary.py vs models/summary.py, report.py vs anomaly_report.py, train/run.py vs rating/run.py)
    files = [path for path in VGAN.rglob("*.py") if path.name != "__init__.py"]
    names = [path.name for path in files]
    assert sorted({str(p.relative_to(REPO)) for p in files if names.count(p.name) > 1}) == []


MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
LONG_REASON = "Long because"  # a function over MAX_FUNCTION_LINES says why in its docstring, with these words


def long_functions(source: str) -> list[tuple[str, int]]:
    """(name, lines) of every function over MAX_FUNCTION_LINES whose docstring gives no reason."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_FUNCTION_LINES and LONG_REASON not in (ast.get_docstring(node) or ""):
                found.append((node.name, lines))
    return found


def test_modules_and_functions_stay_short():
    too_long = {}
    for path in sorted([*VGAN.rglob("*.py"), *(REPO / "flows").rglob("*.py")]):
        source = path.read_text()
        name = str(path.relative_to(REPO))
        if source.count("\n") > MAX_MODULE_LINES:
            too_long[name] = f"{source.count(chr(10))} lines"
        for function, lines in long_functions(source):
            too_long[f"{name}::{function}"] = f"{lines} lines"
    assert too_long == {}, f"split these (or say '{LONG_REASON} ...' in a long function's docstring): {too_long}"


def test_the_length_check_finds_a_long_function():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    assert long_functions(f"def f():\n{body}\n") == [("f", MAX_FUNCTION_LINES + 1)]
    assert long_functions(f'def f():\n    """{LONG_REASON}: one table."""\n{body}\n') == []


def unchecked_tests(source: str) -> list[str]:
    """Test functions in ``source`` with no ``assert``, no ``pytest.raises``/``warns``/``fail`` and no call of an
    ``assert*`` helper (``torch.testing.assert_close``, the suite's own): such a test passes whatever the code does."""
    lonely = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            def named(call):
                return getattr(call.func, "attr", None) or getattr(call.func, "id", "")

            checks = any(isinstance(inner, ast.Assert) for inner in ast.walk(node)) or any(
                isinstance(inner, ast.Call) and (named(inner) in ("raises", "warns", "fail")
                                                 or named(inner).lstrip("_").startswith("assert"))
                for inner in ast.walk(node))
            if not checks:
                lonely.append(node.name)
    return lonely


def test_every_test_asserts_something():
    found = {path.name: unchecked_tests(path.read_text()) for path in sorted((REPO / "tests").glob("test_*.py"))}
    assert {name: tests for name, tests in found.items() if tests} == {}
    assert unchecked_tests("def test_smoke():\n    build()\n\ndef test_fine():\n    assert build()\n\n"
                           "def test_close():\n    torch.testing.assert_close(a, b)\n") == ["test_smoke"]
