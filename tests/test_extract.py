"""Safe extraction: traversal, absolute paths, escaping links, device files and archive bombs are refused."""

import io
import os
import shutil
import stat
import tarfile
import zipfile

import pytest

from vgan.data.extract import extract
from vgan.util.errors import DataError

needs_bsdtar = pytest.mark.skipif(not shutil.which("bsdtar"), reason="bsdtar (libarchive-tools) not installed")


def cpio(path, entries):
    """A newc cpio archive (read through bsdtar, like RAR): entries are (name, mode, data)."""
    out = io.BytesIO()
    for number, (name, mode, data) in enumerate([*entries, ("TRAILER!!!", 0, b"")]):
        raw_name = name.encode() + b"\0"
        fields = [number + 1, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(raw_name), 0]
        out.write(b"070701" + b"".join(b"%08X" % field for field in fields) + raw_name)
        out.write(b"\0" * (-out.tell() % 4))
        out.write(data)
        out.write(b"\0" * (-out.tell() % 4))
    path.write_bytes(out.getvalue())
    return path


def make_zip(path, members):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return path


def make_tar(path, members):
    with tarfile.open(path, "w:gz") as bundle:
        for info, data in members:
            bundle.addfile(info, io.BytesIO(data) if data else None)
    return path


def tar_info(name, kind=tarfile.REGTYPE, size=0, linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size, linkname
    return info


def test_zip_extracts_nested_files(tmp_path):
    archive = make_zip(tmp_path / "videos.zip", {"walk/a.mp4": b"a" * 10, "run/b.mp4": b"b"})
    added = extract(archive, tmp_path / "out", max_bytes=10**6)
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in added) == ["run/b.mp4", "walk/a.mp4"]
    assert (tmp_path / "out" / "walk" / "a.mp4").read_bytes() == b"a" * 10
    assert sorted(os.listdir(tmp_path / "out")) == ["run", "walk"]  # no staging folder left


@pytest.mark.parametrize("name,reason", [("../evil.mp4", "climbs out"), ("/tmp/evil.mp4", "absolute path"),
                                         ("ok/../../evil.mp4", "climbs out")])
def test_zip_traversal_is_refused_and_nothing_written(tmp_path, name, reason):
    archive = make_zip(tmp_path / "bad.zip", {"fine.mp4": b"x", name: b"evil"})
    with pytest.raises(DataError, match=reason):
        extract(archive, tmp_path / "out", max_bytes=10**6)
    assert os.listdir(tmp_path / "out") == []
    assert not (tmp_path / "evil.mp4").exists()


def test_archive_bomb_is_stopped_by_the_size_cap(tmp_path):
    archive = make_zip(tmp_path / "bomb.zip", {"zeros.bin": b"\0" * 5_000_000})
    assert archive.stat().st_size < 50_000
    with pytest.raises(DataError, match="over the cap"):
        extract(archive, tmp_path / "out", max_bytes=1_000_000)
    assert os.listdir(tmp_path / "out") == []


def test_tar_links_inside_are_fine_outside_are_refused(tmp_path):
    good = make_tar(tmp_path / "good.tar.gz", [(tar_info("a/v.mp4", size=3), b"abc"),
                                               (tar_info("a/link.mp4", tarfile.SYMTYPE, linkname="v.mp4"), None)])
    extract(good, tmp_path / "out", max_bytes=10**6)
    assert (tmp_path / "out" / "a" / "link.mp4").read_bytes() == b"abc"
    bad = make_tar(tmp_path / "bad.tar.gz", [(tar_info("a/pw", tarfile.SYMTYPE, linkname="/etc/passwd"), None)])
    with pytest.raises(DataError, match="points outside"):
        extract(bad, tmp_path / "out2", max_bytes=10**6)
    sneaky = make_tar(tmp_path / "sneaky.tar.gz", [(tar_info("a/up", tarfile.SYMTYPE, linkname="../../x"), None)])
    with pytest.raises(DataError, match="points outside"):
        extract(sneaky, tmp_path / "out3", max_bytes=10**6)


def test_tar_device_files_are_refused(tmp_path):
    for kind in (tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE):
        archive = make_tar(tmp_path / "dev.tar.gz", [(tar_info("dev/thing", kind), None)])
        with pytest.raises(DataError, match="refusing device"):
            extract(archive, tmp_path / "out", max_bytes=10**6)


def test_corrupt_archive_is_a_clear_error(tmp_path):
    archive = make_zip(tmp_path / "v.zip", {"a.mp4": b"a" * 1000})
    data = archive.read_bytes()
    start = data.index(b"a.mp4") + len("a.mp4")  # the compressed bytes follow the local header's name
    archive.write_bytes(data[:start] + bytes(b ^ 0x5A for b in data[start : start + 8]) + data[start + 8 :])
    with pytest.raises(DataError, match="v.zip: corrupt archive"):
        extract(archive, tmp_path / "out", max_bytes=10**6)


@needs_bsdtar
def test_other_formats_go_through_bsdtar(tmp_path):
    regular = stat.S_IFREG | 0o644
    archive = cpio(tmp_path / "UCF101.rar", [("UCF-101/Walk/v_1.avi", regular, b"video"),
                                             ("UCF-101/Walk/alias.avi", stat.S_IFLNK | 0o777, b"v_1.avi")])
    added = extract(archive, tmp_path / "out", max_bytes=10**6)
    assert (tmp_path / "out" / "UCF-101" / "Walk" / "v_1.avi").read_bytes() == b"video"
    assert len(added) == 2


@needs_bsdtar
@pytest.mark.parametrize("entry,reason", [
    (("../escape.avi", stat.S_IFREG | 0o644, b"x"), "climbs out"),
    (("/abs.avi", stat.S_IFREG | 0o644, b"x"), "absolute path"),
    (("link", stat.S_IFLNK | 0o777, b"/etc/passwd"), "points outside"),
    (("up", stat.S_IFLNK | 0o777, b"../../secret"), "points outside"),
    (("tty", stat.S_IFCHR | 0o644, b""), "refusing device"),
    (("big.bin", stat.S_IFREG | 0o644, b"\0" * 3000), "over the cap"),
])
def test_bsdtar_archives_are_checked_before_extraction(tmp_path, entry, reason):
    archive = cpio(tmp_path / "bad.rar", [("fine.avi", stat.S_IFREG | 0o644, b"ok"), entry])
    with pytest.raises(DataError, match=reason):
        extract(archive, tmp_path / "out", max_bytes=2000)
    assert os.listdir(tmp_path / "out") == []


def test_missing_extractor_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    archive = cpio(tmp_path / "x.rar", [("a.avi", stat.S_IFREG | 0o644, b"x")])
    with pytest.raises(DataError, match="libarchive-tools"):
        extract(archive, tmp_path / "out", max_bytes=10**6)
