"""Safe archive extraction: no absolute paths, no `..`, no links leaving the target, no devices, a size cap.

zip and tar are read with Python's own modules; RAR (and anything else) goes through bsdtar from
Debian's libarchive-tools, listed and checked before and walked again after extraction.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
import threading
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from vgan.util.errors import DataError

EXTRACTOR_HINT = "install Debian's libarchive-tools (apt-get install -y libarchive-tools) for bsdtar"


NAME_MAX, PATH_MAX = 255, 4096  # bytes, as Linux file systems count them


def _bytes(name: str) -> int:
    return len(name.encode("utf-8", "surrogateescape"))  # tar keeps undecodable bytes as surrogates


def _shown(name: str) -> str:
    return repr(name) if len(name) <= 80 else f"{name[:60]!r}... ({len(name)} characters)"


def _check_name(archive: Path, name: str) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or (path.parts and ":" in path.parts[0]):
        raise DataError(f"{archive.name}: refusing absolute path {_shown(name)} in the archive")
    if ".." in path.parts:
        raise DataError(f"{archive.name}: refusing path {_shown(name)} that climbs out with '..'")
    if "\0" in name:
        raise DataError(f"{archive.name}: refusing entry {_shown(name)} whose name holds a NUL character")
    if _bytes(name) > PATH_MAX or any(_bytes(part) > NAME_MAX for part in path.parts):
        raise DataError(f"{archive.name}: refusing entry {_shown(name)}: its name is longer than a file system "
                        f"allows ({NAME_MAX} bytes a name, {PATH_MAX} a path)")
    return path


def _check_layout(archive: Path, entries: list[tuple[str, bool]]) -> None:
    """Refuse an archive that needs one path to be both a file and a folder (``a`` and ``a/b``): no extractor
    can write both, and which one wins would depend on the order."""
    files, folders = set(), set()
    for name, is_dir in entries:
        parts = PurePosixPath(name.replace("\\", "/")).parts
        folders.update(parts[:index] for index in range(1, len(parts)))
        (folders if is_dir else files).add(parts)
    clash = sorted(files & folders)
    if clash:
        raise DataError(f"{archive.name}: refusing an archive that holds {_shown('/'.join(clash[0]))} both as a "
                        f"file and as a folder")


def _check_link(archive: Path, name: str, target: str) -> None:
    """A link may point anywhere inside the extraction folder, never outside it."""
    if target.startswith("/") or ".." in PurePosixPath(os.path.normpath(
            str(PurePosixPath(name).parent / target))).parts:
        raise DataError(f"{archive.name}: refusing link {name!r} -> {target!r} that points outside the archive")


def _check_total(archive: Path, total: int, max_bytes: int) -> None:
    if total > max_bytes:
        raise DataError(f"{archive.name}: unpacks to {total / 1e9:.2f} GB, over the cap of {max_bytes / 1e9:.2f} GB "
                        "(raise data.max_extract_gb if this archive is trusted)")


def _extract_zip(archive: Path, staging: Path, max_bytes: int) -> None:
    with zipfile.ZipFile(archive) as bundle:
        members = bundle.infolist()
        _check_total(archive, sum(m.file_size for m in members), max_bytes)
        for member in members:
            _check_name(archive, member.filename)
        _check_layout(archive, [(m.filename, m.is_dir()) for m in members])
        written = 0
        for member in members:
            name = _check_name(archive, member.filename)
            mode = member.external_attr >> 16
            if stat.S_ISLNK(mode):
                _check_link(archive, member.filename, bundle.read(member).decode())
                continue  # links are never materialised from zips; the files they name are
            if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise DataError(f"{archive.name}: refusing special file {member.filename!r}")
            out = staging.joinpath(*name.parts)
            if member.is_dir():
                out.mkdir(parents=True, exist_ok=True)
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            with bundle.open(member) as source, open(out, "wb") as sink:
                # sizes in zip headers can lie: count what is really written
                for block in iter(lambda: source.read(1 << 20), b""):
                    written += len(block)
                    _check_total(archive, written, max_bytes)
                    sink.write(block)


def _extract_tar(archive: Path, staging: Path, max_bytes: int) -> None:
    with tarfile.open(archive) as bundle:
        members = bundle.getmembers()
        for member in members:
            _check_name(archive, member.name)
            if member.issym() or member.islnk():
                _check_link(archive, member.name, member.linkname if member.issym() else
                            os.path.relpath(member.linkname, str(PurePosixPath(member.name).parent) or "."))
            elif not (member.isfile() or member.isdir()):
                raise DataError(f"{archive.name}: refusing device, FIFO or special file {member.name!r}")
        _check_layout(archive, [(m.name, m.isdir()) for m in members])
        _check_total(archive, sum(m.size for m in members if m.isfile()), max_bytes)
        # the "data" filter repeats these checks inside the standard library (Python >= 3.11.4)
        bundle.extractall(staging, members=members, filter="data")


def _bsdtar_listing(archive: Path) -> list[tuple[str, str, int]]:
    env = {**os.environ, "LC_ALL": "C"}
    names = subprocess.run(["bsdtar", "-tf", str(archive)], capture_output=True, text=True, env=env)
    verbose = subprocess.run(["bsdtar", "-tvf", str(archive)], capture_output=True, text=True, env=env)
    if names.returncode or verbose.returncode:
        reason = (names.stderr or verbose.stderr).strip().splitlines()[-1:] or ["unreadable"]
        raise DataError(f"{archive.name}: bsdtar cannot read it ({reason[0]})")
    name_lines, info_lines = names.stdout.splitlines(), verbose.stdout.splitlines()
    if len(name_lines) != len(info_lines):
        raise DataError(f"{archive.name}: refusing an archive whose entry names contain line breaks")
    entries = []
    for name, info in zip(name_lines, info_lines):
        fields = info.split(None, 8)  # mode links owner group size month day year|time name
        kind = fields[0][0]
        size = int(fields[4]) if len(fields) > 4 and fields[4].isdigit() else 0
        target = ""
        if kind == "l" and " -> " in info:
            target = info.rsplit(" -> ", 1)[1]
        elif " link to " in info:
            kind, target = "h", info.rsplit(" link to ", 1)[1]
        entries.append((name, kind + target if target else kind, size))
    return entries


def _tree_bytes(root: Path) -> int:
    return sum(entry.stat(follow_symlinks=False).st_size for entry in root.rglob("*"))


def _extract_bsdtar(archive: Path, staging: Path, max_bytes: int) -> None:
    if not shutil.which("bsdtar"):
        raise DataError(f"cannot extract {archive.name}: no RAR-capable extractor found; {EXTRACTOR_HINT}")
    total = 0
    listing = _bsdtar_listing(archive)
    _check_layout(archive, [(name.rstrip("/"), kind[0] == "d") for name, kind, _ in listing])
    for name, kind, size in listing:
        _check_name(archive, name)
        if kind[0] in "lh":
            target = kind[1:]
            if kind[0] == "h":
                target = os.path.relpath(target, str(PurePosixPath(name).parent) or ".")
            _check_link(archive, name, target)
        elif kind[0] not in "-d":
            raise DataError(f"{archive.name}: refusing device, FIFO or special file {name!r}")
        total += size
    _check_total(archive, total, max_bytes)
    process = subprocess.Popen(["bsdtar", "-xf", str(archive), "-C", str(staging), "--no-same-owner",
                                "--no-same-permissions"], stderr=subprocess.PIPE, text=True)
    over_cap = threading.Event()

    def watch() -> None:
        # the listing's sizes come from the archive itself; measure the disk too
        while process.poll() is None:
            if _tree_bytes(staging) > max_bytes:
                over_cap.set()
                process.kill()
            threading.Event().wait(1.0)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    _, stderr = process.communicate()
    watcher.join()
    if over_cap.is_set():
        _check_total(archive, max_bytes + 1, max_bytes)
    if process.returncode != 0:
        reason = (stderr.strip().splitlines() or ["failed"])[-1]
        raise DataError(f"{archive.name}: bsdtar failed ({reason})")


def _verify_tree(archive: Path, staging: Path, max_bytes: int) -> None:
    """Walk what was written: the last word, whatever the extractor did."""
    root = staging.resolve()
    for entry in staging.rglob("*"):
        mode = entry.lstat().st_mode
        if stat.S_ISLNK(mode):
            if not entry.resolve().is_relative_to(root):
                raise DataError(f"{archive.name}: refusing link {entry.relative_to(staging)} that points outside")
        elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise DataError(f"{archive.name}: refusing special file {entry.relative_to(staging)}")
    _check_total(archive, _tree_bytes(staging), max_bytes)


def extract(archive: str | os.PathLike, dest: str | os.PathLike, *, max_bytes: int) -> list[Path]:
    """Unpack `archive` into `dest` safely; returns the files it added. Nothing lands in `dest` on refusal."""
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".extract-{archive.name}-", dir=dest))
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, staging, max_bytes)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, staging, max_bytes)
        else:
            _extract_bsdtar(archive, staging, max_bytes)
        _verify_tree(archive, staging, max_bytes)
        added = []
        for entry in sorted(staging.rglob("*")):
            if entry.is_dir() and not entry.is_symlink():
                continue
            target = dest / entry.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(entry, target)
            added.append(target)
        return added
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, UnicodeDecodeError) as err:
        raise DataError(f"{archive.name}: corrupt archive ({err})") from None
    except OSError as err:  # whatever the checks above did not foresee: still one line, nothing kept
        raise DataError(f"{archive.name}: cannot extract it into {dest} ({err.strerror or err.__class__.__name__}"
                        f"{': ' + _shown(Path(err.filename).name) if err.filename else ''})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
