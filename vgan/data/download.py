"""Verified downloads: stream to `<name>.partial`, resume with HTTP Range, retry, check sha256, rename."""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from vgan.util.errors import DataError
from vgan.util.io import sha256_file
from vgan.util.retry import retry

CHUNK = 1 << 20
USER_AGENT = "vgan-fetch/0.1"


class _Retryable(Exception):
    """A network failure worth another try (dropped connection, timeout, 5xx)."""


def _over_cap(url: str, size: int, max_bytes: int, partial: Path, how: str) -> DataError:
    partial.unlink(missing_ok=True)
    return DataError(f"download failed: {url}: {how} {size:,} bytes, over the cap of {max_bytes:,} "
                     f"(data.max_download_gb); nothing was kept (raise the cap if this file is trusted)")


def _declared_length(url: str, value: str | None) -> int | None:
    """The response's Content-Length as a number (None when absent); a malformed one is a one-line error."""
    if value is None:
        return None
    if not value.strip().isascii() or not value.strip().isdigit():
        raise DataError(f"download failed: {url}: the server sent a malformed Content-Length {value[:40]!r}")
    return int(value)


def _http_attempt(url: str, partial: Path, digest, timeout_s: float, progress: bool, max_bytes: int | None = None):
    """One HTTP request continuing `partial`; returns the running digest. Stops at ``max_bytes`` in all."""
    have = partial.stat().st_size if partial.exists() else 0
    headers = {"User-Agent": USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:
            return digest  # nothing left to fetch: the checksum decides whether the file is whole
        if err.code >= 500 or err.code == 429:
            raise _Retryable(f"HTTP {err.code} {err.reason}") from None
        raise DataError(f"download failed: {url}: HTTP {err.code} {err.reason}") from None
    except urllib.error.URLError as err:
        if isinstance(err.reason, socket.gaierror):
            host = urllib.parse.urlsplit(url).hostname
            raise DataError(f"download failed: {url}: cannot resolve host {host!r} (DNS; check the URL "
                            "and the network)") from None
        raise _Retryable(str(err.reason)) from None
    except (http.client.HTTPException, ValueError) as err:  # a status line or headers no HTTP client can read
        raise DataError(f"download failed: {url}: malformed response from the server ({err.__class__.__name__}: "
                        f"{' '.join(str(err).split())[:80]})") from None
    with response:
        if have and response.status != 206:
            # the server ignored our Range header: start over
            have, digest = 0, hashlib.sha256()
        length = _declared_length(url, response.headers.get("Content-Length"))
        total = have + length if length is not None else None
        if max_bytes is not None and total is not None and total > max_bytes:
            raise _over_cap(url, total, max_bytes, partial, "the server announces")
        mode = "ab" if have else "wb"
        name = Path(urllib.parse.urlsplit(url).path).name or url
        with open(partial, mode) as out, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                              desc=name, disable=None if progress else True) as bar:
            try:
                for block in iter(lambda: response.read(CHUNK), b""):
                    if max_bytes is not None and out.tell() + len(block) > max_bytes:
                        arrived = out.tell() + len(block)
                        out.close()  # before _over_cap deletes it
                        raise _over_cap(url, arrived, max_bytes, partial, "more than")
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
            except (OSError, http.client.HTTPException) as err:
                raise _Retryable(f"connection lost after {out.tell()} bytes ({err.__class__.__name__})") from None
        if total is not None and partial.stat().st_size < total:
            raise _Retryable(f"connection closed at {partial.stat().st_size} of {total} bytes")
    return digest


def _fetch_http(url: str, partial: Path, retries: int, timeout_s: float, progress: bool, max_bytes: int | None):
    def attempt():
        # resume from what is on disk; the digest must cover exactly those bytes
        digest = sha256_file(partial) if partial.exists() else hashlib.sha256()
        return _http_attempt(url, partial, digest, timeout_s, progress, max_bytes)

    try:
        return retry(attempt, attempts=retries + 1, retry_if=lambda err: isinstance(err, _Retryable),
                     base_delay=0.5, max_delay=30.0)
    except _Retryable as err:
        raise DataError(f"download failed: {url}: {err} (gave up after {retries + 1} attempts)") from None


def _fetch_file(url: str, partial: Path, max_bytes: int | None):
    source = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
    if not source.is_file():
        raise DataError(f"download failed: {url}: no such file {source}")
    if max_bytes is not None and source.stat().st_size > max_bytes:
        raise _over_cap(url, source.stat().st_size, max_bytes, partial, "the file holds")
    shutil.copyfile(source, partial)
    return sha256_file(partial)


def _fetch_s3(url: str, partial: Path):
    if shutil.which("aws"):
        done = subprocess.run(["aws", "s3", "cp", "--only-show-errors", url, str(partial)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["aws s3 cp failed"])[-1]
            raise DataError(f"download failed: {url}: {reason}")
        return sha256_file(partial)
    try:
        import fsspec

        with fsspec.open(url, "rb") as source, open(partial, "wb") as out:
            shutil.copyfileobj(source, out, CHUNK)
    except ImportError as err:
        raise DataError(f"{url}: s3:// needs the AWS CLI (`pip install awscli`) or s3fs "
                        f"(`pip install s3fs`) ({err})") from None
    return sha256_file(partial)


def download(url: str, dest: str | os.PathLike, sha256: str, *, retries: int = 5, timeout_s: float = 60.0,
             progress: bool = True, max_bytes: int | None = None) -> Path:
    """Fetch `url` (http, https, file or s3) to `dest`, promoted only when its sha256 matches; a file larger than
    ``max_bytes`` is refused (from its declared size, or as soon as that many bytes have arrived)."""
    dest = Path(dest)
    expected = sha256.lower()
    if dest.is_file() and sha256_file(dest).hexdigest() == expected:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme in ("http", "https"):
        resumed = partial.exists()
        digest = _fetch_http(url, partial, retries, timeout_s, progress, max_bytes)
        if resumed and digest.hexdigest() != expected:
            # a leftover .partial may belong to an older version of the file: one clean try
            partial.unlink()
            digest = _fetch_http(url, partial, retries, timeout_s, progress, max_bytes)
    elif scheme == "file":
        digest = _fetch_file(url, partial, max_bytes)
    elif scheme == "s3":
        digest = _fetch_s3(url, partial)
        if max_bytes is not None and partial.stat().st_size > max_bytes:  # the CLI copies whole: checked after
            raise _over_cap(url, partial.stat().st_size, max_bytes, partial, "it holds")
    else:
        raise DataError(f"cannot download {url!r}: unsupported scheme {scheme!r} (use http, https, file or s3)")
    actual = digest.hexdigest()
    if actual != expected:
        partial.unlink(missing_ok=True)
        raise DataError(f"checksum mismatch for {url}: expected sha256 {expected}, got {actual}; "
                        "the download was deleted")
    os.replace(partial, dest)
    return dest
