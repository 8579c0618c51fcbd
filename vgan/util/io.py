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

from vgan.util.errors import DataError

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


def is_url(location: str | Path) -> bool:
    """True for ``s3://…``, ``http(s)://…`` and other fsspec URLs; False for local paths."""
    return "://" in str(location)


def join_location(location: str | Path, name: str) -> str:
    """``name`` inside a folder or under a URL prefix."""
    return f"{str(location).rstrip('/')}/{name}" if is_url(location) else str(Path(location) / name)


def read_manifest(out_dir: str | Path) -> dict:
    """The manifest `vgan shards` wrote in ``out_dir`` (a folder, or a URL prefix the shards were uploaded
    to); a missing one is a one-line error."""
    if is_url(out_dir):
        return _read_remote_manifest(join_location(out_dir, MANIFEST_FILE))
    path = Path(out_dir) / MANIFEST_FILE
    if not path.exists():
        raise DataError(f"no {path}; run `vgan shards` first (or it was interrupted)")
    return json.loads(path.read_text())


def manifest_channels(manifest: dict) -> int:
    """The channels a model of these shards' clips paints: 1 when the manifest says every clip is grey, else the
    clips' own (the last of ``clip_shape``). A manifest written before vgan recorded ``grey`` counts as colour."""
    return 1 if manifest.get("grey") is True else int(manifest["clip_shape"][-1])


def _read_remote_manifest(url: str) -> dict:
    import fsspec

    try:
        with fsspec.open(url, "rb") as stream:
            return json.load(stream)
    except FileNotFoundError:
        raise DataError(f"no {url}: upload the whole shards folder (manifest.json and the .tar files) there") from None
    except Exception as err:  # botocore and aiohttp errors share no base class with OSError
        raise DataError(f"cannot read {url}: {err.__class__.__name__}: {err}") from None
