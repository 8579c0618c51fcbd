"""The code each DVC stage runs, derived from the import graph; keeps dvc.yaml's code deps in step with it.

    python scripts/stage_deps.py            # print each stage's modules
    python scripts/stage_deps.py --check    # exit 1 and name the difference when dvc.yaml's deps drift
    python scripts/stage_deps.py --write    # rewrite the vgan/*.py deps of every stage in dvc.yaml

A stage ``vgan <stage>`` runs ``vgan/cli.py`` (its module level, ``main`` and helpers, and the
``cmd_<stage>`` function) and everything that reaches by import, including imports inside functions
(the CLI and the libraries import lazily) and modules named by a string (the model registry imports
architectures by name). The closure is static, so it covers every branch a stage can take; a module a
stage never imports is not a dependency, and changing it leaves the stage up to date.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "vgan"
CLI = "vgan.cli"


def module_file(name: str) -> Path | None:
    """The source file of a module of ours (``vgan.*`` or ``flows.*``), or None when the name is not one."""
    if not all(name.split(".")):
        return None
    base = ROOT / Path(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def builders(package: str) -> list[str]:
    """The modules of a package that a registry can import by name: those defining ``build`` (the registry's
    contract, ``vgan.models.zoo``)."""
    folder = ROOT / Path(*package.split("."))
    if not (folder / "__init__.py").is_file():
        return []

    def defines_build(path: Path) -> bool:
        return any(isinstance(node, ast.FunctionDef) and node.name == "build" for node in ast.parse(path.read_text()).body)

    return [f"{package}.{path.stem}" for path in sorted(folder.glob("*.py")) if defines_build(path)]


def _imports(nodes, module: str, packages=(PACKAGE,)) -> set[str]:
    """Package modules that these AST nodes import (absolute or relative) or name in a string."""
    found = set()
    package = module if module_file(module).name == "__init__.py" else module.rpartition(".")[0]
    for node in (n for top in nodes for n in ast.walk(top)):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names = [node.value]  # importlib.import_module("vgan.models.x") and the like
            if node.value.endswith(".py") and (module_file(module).parent / node.value).is_file():
                names = [f"{package}.{node.value[:-3]}"]  # a sibling file run by path (MLflow's models from code)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            prefix = node.args[0].values[0] if node.args and isinstance(node.args[0], ast.JoinedStr) else None
            if isinstance(prefix, ast.Constant) and str(prefix.value).endswith("."):
                names = builders(prefix.value[:-1])  # import_module(f"vgan.models.{name}"): any architecture
        for name in names:
            if any(name == p or name.startswith(p + ".") for p in packages) and module_file(name):
                found.add(name)
    return found


def _parents(name: str) -> set[str]:
    """Importing ``a.b.c`` runs ``a/__init__.py`` and ``a/b/__init__.py`` first."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def _tree(name: str) -> ast.Module:
    return ast.parse(module_file(name).read_text(), filename=str(module_file(name)))


def cli_stages() -> list[str]:
    """The stage names ``vgan/cli.py`` dispatches (its ``cmd_<stage>`` functions)."""
    return [node.name[4:] for node in _tree(CLI).body if isinstance(node, ast.FunctionDef)
            and node.name.startswith("cmd_")]


def _cli_nodes(stage: str | None) -> list[ast.AST]:
    """The part of the CLI one stage runs: everything but the other stages' ``cmd_`` functions."""
    return [node for node in _tree(CLI).body if not (isinstance(node, ast.FunctionDef) and node.name.startswith("cmd_")
                                                      and node.name != f"cmd_{stage}")]


def closure(stage: str) -> list[str]:
    """Every package module ``vgan <stage>`` can import, as repository-relative file paths, sorted."""
    seen: set[str] = set()
    todo = _imports(_cli_nodes(stage), CLI) | {CLI} | _parents(CLI)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        # a module importing the CLI gets only its shared part (a library must not pull in every stage)
        nodes = _cli_nodes(None) if name == CLI else [_tree(name)]
        todo |= (_imports(nodes, name) | _parents(name)) - seen
    return sorted({str(module_file(name).relative_to(ROOT)) for name in seen})


def import_graph(packages=(PACKAGE, "flows")) -> dict[str, set[str]]:
    """Module -> the modules of ours it imports (anywhere in it, lazily or not), for every module of ``packages``."""
    graph = {}
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            tree = ast.parse(path.read_text(), filename=str(path))
            graph[name] = {other for other in _imports([tree], name, packages) if other != name} - _parents(name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph``: its strongly connected components with more than one module."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(module):  # Tarjan's algorithm
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in sorted(graph.get(module, ())):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while not component or component[-1] != module:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def _dvc_yaml():
    from ruamel.yaml import YAML

    yaml = YAML()  # round trip: comments and layout survive --write
    yaml.preserve_quotes = True
    yaml.width = 120
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def _code_deps(deps) -> list[str]:
    return [d for d in deps if isinstance(d, str) and d.startswith(PACKAGE + "/")]


def expected_deps(stages) -> dict[str, list[str]]:
    """For each dvc.yaml stage whose command is ``vgan <stage>``: the code files it runs."""
    out = {}
    for name, stage in stages.items():
        words = str(stage.get("cmd", "")).split()
        if len(words) >= 2 and words[0] == PACKAGE:
            out[name] = closure(words[1])
    return out


def drift(dvc_file: Path = ROOT / "dvc.yaml") -> list[str]:
    """One line per stage whose code deps differ from its import closure; empty when none does."""
    stages = _dvc_yaml().load(dvc_file)["stages"]
    lines = []
    for name, files in expected_deps(stages).items():
        listed = set(_code_deps(stages[name].get("deps", [])))
        missing, extra = sorted(set(files) - listed), sorted(listed - set(files))
        if missing or extra:
            lines.append(f"stage {name}: missing {missing or 'nothing'}; not imported {extra or 'nothing'}")
    return lines


def write(dvc_file: Path = ROOT / "dvc.yaml") -> None:
    yaml = _dvc_yaml()
    document = yaml.load(dvc_file)
    stages = document["stages"]
    for name, files in expected_deps(stages).items():
        deps = stages[name].setdefault("deps", [])
        for dep in _code_deps(deps):
            deps.remove(dep)
        deps.extend(files)
    tmp = dvc_file.with_name(f".{dvc_file.name}.tmp")
    with tmp.open("w") as handle:
        yaml.dump(document, handle)
    tmp.replace(dvc_file)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true", help="exit 1 when dvc.yaml's code deps drift")
    group.add_argument("--write", action="store_true", help="rewrite dvc.yaml's code deps")
    args = parser.parse_args(argv)
    if args.write:
        write()
    if args.check or args.write:
        problems = drift()
        for line in problems:
            print(line, file=sys.stderr)
        return 1 if problems else 0
    for stage in cli_stages():
        print(f"{stage}: {' '.join(closure(stage))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
