"""Files every stage shares: atomic writes (a temp name, then a rename), file hashes, the shards' manifest.

A reader never sees a half-written file: each writer fills a temp file beside the target and renames it
into place only when it is complete; on any failure the temp file is removed and the target is untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vgan.errors import DataError

MANIFEST_FILE = "manifest.json"  # written by `vgan shards` next to the shards it lists


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temp name beside ``path`` (same suffix) to write to; renamed onto ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj, indent: int = 2, sort_keys: bool = False) -> None:
    write_text(path, json.dumps(obj, indent=indent, sort_keys=sort_keys) + "\n")


def sha256_file(path: str | Path, digest=None):
    """The sha256 object of a file's bytes (read in 1 MiB blocks); pass ``digest`` to continue one."""
    digest = digest or hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest


def read_manifest(out_dir: str | Path) -> dict:
    """The manifest `vgan shards` wrote in ``out_dir``; a missing one is a one-line error."""
    path = Path(out_dir) / MANIFEST_FILE
    if not path.exists():
        raise DataError(f"no {path}; run `vgan shards` first (or it was interrupted)")
    return json.loads(path.read_text())
