"""Params as plain trees: reading a params file, `--set key.path=value` overrides, merging a file over the
defaults, flattening to dotted keys, the one-line description of a bad value, and the checks every group shares
(numbers that are numbers, paths that can exist, outputs that stay in the project). ``vgan.params`` holds the schema
and builds validated params with these.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import yaml
from pydantic import BaseModel

from vgan.util.errors import ParamsError


def _shown(value, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters: a 10,000-character value stays a readable one-line message."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 5]}...{text[-4:]} ({len(str(value))} characters)"


def describe_error(err: dict) -> str:
    key = ".".join(str(part) for part in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"unknown parameter {key!r} (value {_shown(err['input'])}); check the spelling against params.yaml"
    if err["type"] == "missing":  # only where the defaults (the repository's params.yaml) lack it too
        return f"parameter {key} is missing (params.yaml lists every key; start from the repository's)"
    return f"parameter {key} = {_shown(err['input'])}: {err['msg'].lower()}"


# -- checks every group shares: numbers that are numbers, paths that can exist, outputs that stay home -------
PATH_NAMES = ("folder", "generator", "checkpoint", "resume_from", "filename")
PATH_MAX, NAME_MAX = 4096, 255  # Linux's limits: longer fails deep inside a stage with an OSError
# what each stage writes, by parameter (a stage absent here writes only fixed paths: metrics/, reports/, models/)
STAGE_OUTPUTS = {"fetch": ("data.raw_dir", "data.download_dir"), "shards": ("shards.out_dir",),
                 "train": ("train.checkpoint_dir",), "sample": ("sample.out_dir",),
                 "evaluator": ("evaluate.evaluator_path",), "evaluate": ("evaluate.cache_dir",),
                 "rate": ("rate.out_dir",), "anomaly": ("anomaly.out_dir",)}


def _is_path_key(key: str) -> bool:
    name = key.rsplit(".", 1)[-1]
    return name.endswith(("_dir", "_path", "_weights")) or name in PATH_NAMES


def _path_problem(value: str) -> str | None:
    if "\0" in value:
        return "a path cannot contain a NUL character"
    if len(value.encode()) > PATH_MAX:
        return f"a path of {len(value.encode())} bytes is longer than the {PATH_MAX} a path can have"
    longest = max((len(part.encode()) for part in re.split(r"[/\\]", value)), default=0)
    if longest > NAME_MAX:
        return f"a path part of {longest} bytes is longer than the {NAME_MAX} a file or folder name can have"
    return None


def _leaves(raw, validated, key: str = ""):
    """(dotted key, value as given, value as validated) for every scalar of the validated tree; the given value
    is None where the tree did not hold one (a default, or a group passed as an object)."""
    if isinstance(validated, BaseModel):
        for name in type(validated).model_fields:
            given = raw.get(name) if isinstance(raw, dict) else None
            yield from _leaves(given, getattr(validated, name), f"{key}.{name}" if key else name)
    elif isinstance(validated, (list, tuple)):
        given = raw if isinstance(raw, (list, tuple)) and len(raw) == len(validated) else [None] * len(validated)
        for index, (item, value) in enumerate(zip(given, validated)):
            yield from _leaves(item, value, f"{key}[{index}]")
    else:
        yield key, raw, validated


def check_values(params, tree: dict | None = None) -> None:
    """Refuse what the per-field schema lets through (numbers given as booleans, non-finite numbers, paths no
    file system can hold) in every group, the model group's options included; ParamsError names the key."""
    for key, given, value in _leaves(tree or {}, params):
        if isinstance(given, bool) and isinstance(value, (int, float)) and not isinstance(value, bool):
            raise ParamsError(f"parameter {key} = {given!r}: expected a number, not a boolean")
        if isinstance(value, float) and not math.isfinite(value):
            raise ParamsError(f"parameter {key} = {_shown(given if given is not None else value)}: "
                              "expected a finite number")
        if isinstance(value, str) and _is_path_key(key) and (problem := _path_problem(value)):
            raise ParamsError(f"parameter {key} = {_shown(value)}: {problem}")


def outputs_outside(params, stage: str, root: str | Path = ".") -> list[tuple[str, str]]:
    """(key, path) of each output of ``stage`` that lies outside ``root`` (the project: the current folder).
    Judged as written, without following symlinks: a ``data`` link to a bigger disk is the user's own choice."""
    home = os.path.abspath(root)
    outside = []
    for key in STAGE_OUTPUTS.get(stage, ()):
        group, name = key.split(".")
        value = getattr(getattr(params, group), name)
        if value and os.path.commonpath([home, os.path.abspath(value)]) != home:
            outside.append((key, value))
    return outside


def apply_override(tree: dict, assignment: str) -> None:
    if "=" not in assignment:
        raise ParamsError(f"--set {assignment!r}: expected key.path=value, e.g. train.steps=100")
    path, raw_value = assignment.split("=", 1)
    keys = path.strip().split(".")
    if not all(keys):
        raise ParamsError(f"--set {assignment!r}: empty key in {path!r}")
    try:
        value = yaml.safe_load(raw_value) if raw_value.strip() else ""
    except yaml.YAMLError:
        value = raw_value
    node = tree
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ParamsError(f"--set {assignment!r}: {key!r} is a value, not a group")
        node = child
    node[keys[-1]] = value


def dotted(tree: dict, prefix: str = "") -> dict:
    """A nested mapping as one level keyed by dotted paths (``{"train": {"steps": 5}}`` -> ``{"train.steps": 5}``);
    the leaves are kept as they are. The one flattener of params, metrics and tables."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(dotted(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """'line L, column C: what is wrong' (1-based, as editors count) where the parser says where."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is None:
        return problem
    context = getattr(exc, "context", None)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" + (f" ({context})" if context else "")


def read_tree(path: Path) -> dict:
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from None
    if not isinstance(tree, dict):
        raise ParamsError(f"{path}: expected a mapping of parameter groups, got {type(tree).__name__}")
    return tree


def merged(defaults, given):
    """``given`` over ``defaults``: mappings merge key by key, all the way down; any other value replaces."""
    if isinstance(defaults, dict) and isinstance(given, dict):
        return {**defaults, **{key: merged(defaults.get(key), value) for key, value in given.items()}}
    return given
