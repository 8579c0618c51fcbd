"""Answers of a rating session: the schema a posted answer and a stored one must meet, the strict reading of a
request body, and the append-only ``answers.jsonl`` (one fsynced line per answer, never rewritten).

Every number is bounded, so no answer can make the session unscorable later (a 400-digit ``ms`` once did).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vgan.util.errors import DataError

MAX_MS = 86_400_000  # a day: an answer time beyond it is not a time
MAX_ROUND = 1_000_000
MAX_DEPTH = 1  # an answer is one flat object
MAX_DIGITS = 12


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class PostedAnswer(_Schema):
    """What the page posts: the round it shows, the side chosen and the milliseconds the pair was on screen."""
    round: int = Field(ge=0, le=MAX_ROUND)
    choice: Literal["left", "right"]
    ms: int | float | None = Field(None, ge=0, le=MAX_MS)


class StoredAnswer(_Schema):
    """One line of ``answers.jsonl``."""
    round: int = Field(ge=0, le=MAX_ROUND)
    choice: Literal["left", "right"]
    chosen: str = Field(max_length=64)
    chosen_source: str = Field(max_length=8192)
    other_source: str = Field(max_length=8192)
    ms: int | None = Field(ge=0, le=MAX_MS)
    time: str = Field(max_length=64)


def _first_problem(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err["loc"]) or "answer"
    shown = repr(err.get("input"))
    return f"{where} = {shown[:40]}{'...' if len(shown) > 40 else ''}: {err['msg'][:1].lower()}{err['msg'][1:]}"


def posted_answer(fields: dict) -> PostedAnswer:
    """``fields`` checked against the schema; a ValueError with a one-line reason otherwise."""
    try:
        return PostedAnswer.model_validate(fields)
    except ValidationError as exc:
        raise ValueError(_first_problem(exc)) from None


def _depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` outside strings (counted before parsing: a parser recurses)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _small_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise ValueError(f"a number of {len(text.lstrip('-'))} digits")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or abs(value) > 10.0 ** MAX_DIGITS:
        raise ValueError(f"the number {text[:20]} is out of range")
    return value


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number")


def parse_body(body: bytes) -> dict:
    """A request body as a flat JSON object with bounded numbers; a ValueError with a one-line reason otherwise."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("the body is not UTF-8 text") from None
    if _depth(text) > MAX_DEPTH:
        raise ValueError("expected one flat JSON object, got nested values")
    try:
        parsed = json.loads(text, parse_int=_small_int, parse_float=_finite_float, parse_constant=_no_constant)
    except json.JSONDecodeError as err:
        raise ValueError(f"not JSON ({err.msg} at character {err.pos})") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"expected a JSON object, got {type(parsed).__name__}")
    return parsed


def read_answers(path: Path, pairs: int) -> list[dict]:
    """The answers of ``answers.jsonl``, each checked; a torn last line (a crash mid-write: it was never
    acknowledged to the page) is cut off. A line that fails the schema is a one-line DataError naming it."""
    if not path.exists():
        return []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as stream:
            stream.truncate(data.rfind(b"\n") + 1)
        data = data[: data.rfind(b"\n") + 1]
    answers = []
    for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            answer = StoredAnswer.model_validate(json.loads(line, parse_constant=_no_constant)).model_dump()
        except (ValueError, ValidationError) as exc:
            reason = _first_problem(exc) if isinstance(exc, ValidationError) else str(exc)[:80]
            raise DataError(f"{path} line {number} is not a valid answer ({reason}); fix or delete that line") from None
        if answer["round"] != len(answers) or answer["round"] >= pairs:
            raise DataError(f"{path} line {number} answers round {answer['round']}, expected round {len(answers)} "
                            f"of {pairs}; fix or delete that line")
        answers.append(answer)
    return answers


def append_answer(path: Path, answer: dict) -> dict:
    """Check ``answer`` against the schema, then append it as one line and fsync (the file, and the folder when
    the file is new) before returning: an acknowledged answer survives a crash or a power cut."""
    try:
        record = StoredAnswer.model_validate(answer).model_dump()
    except ValidationError as exc:
        raise ValueError(_first_problem(exc)) from None
    line = (json.dumps(record, allow_nan=False) + "\n").encode()
    created = not path.exists()
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = 0
        while written < len(line):
            written += os.write(descriptor, line[written:])
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    if created:
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    return record
