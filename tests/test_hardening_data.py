"""Data stages against a hostile server, a hostile archive and a shared folder (issue 29): downloads stop at a
size cap and read bad headers as one line, extraction fails in one line on layouts no disk can hold, and
`vgan shards` touches only the shards it wrote."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from test_extract import make_tar, make_zip, needs_bsdtar, tar_info
from test_shards import good_videos, make_params, write_index  # noqa: F401 - good_videos is a fixture
from vgan.data.download import download
from vgan.data.extract import extract
from vgan.data.shards import build_shards
from vgan.data.sources import fetch_urls
from vgan.util.errors import DataError
from vgan.params import UrlSource, default_params

PAYLOAD = bytes(range(256)) * 1024  # 256 KiB
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Handler(BaseHTTPRequestHandler):
    """/honest: the payload with its length; /unsized: the payload, length unsaid, then close;
    /bad-length: Content-Length: abc; /bad-status: a status line no client can read."""

    protocol_version = "HTTP/1.0"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.served.append(self.path)
        if self.path == "/bad-status":
            self.wfile.write(b"HTTP/1.0 twohundred OK\r\n\r\n")
            return
        self.send_response(200)
        if self.path == "/honest":
            self.send_header("Content-Length", str(len(PAYLOAD)))
        elif self.path == "/bad-length":
            self.send_header("Content-Length", "abc")
        self.end_headers()
        self.wfile.write(PAYLOAD)


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.served = []
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("path, message", [
    ("/honest", "the server announces 262,144 bytes, over the cap of 100,000"),
    ("/unsized", "more than "),
])
def test_a_download_stops_at_the_size_cap_and_keeps_nothing(server, tmp_path, path, message):
    url, _ = server
    with pytest.raises(DataError, match=message) as refused:
        download(url + path, tmp_path / "big.bin", SHA, progress=False, retries=0, max_bytes=100_000)
    assert "\n" not in str(refused.value) and "data.max_download_gb" in str(refused.value)
    assert list(tmp_path.iterdir()) == []  # not the file, not its .partial
    assert download(url + path, tmp_path / "ok.bin", SHA, progress=False, max_bytes=len(PAYLOAD)).exists()


@pytest.mark.parametrize("path, message", [
    ("/bad-length", "the server sent a malformed Content-Length 'abc'"),
    ("/bad-status", "malformed response from the server"),
])
def test_bad_headers_are_one_line(server, tmp_path, path, message):
    url, httpd = server
    with pytest.raises(DataError, match=message) as refused:
        download(url + path, tmp_path / "x.bin", SHA, progress=False, retries=3)
    assert "\n" not in str(refused.value) and len(httpd.served) == 1  # not worth a retry


def test_fetch_applies_data_max_download_gb(tmp_path):
    source = tmp_path / "clip.mp4"
    source.write_bytes(PAYLOAD)
    data = default_params(data={"source": "urls", "raw_dir": str(tmp_path / "raw"), "max_download_gb": 1e-4,  # 100 kB
                                "urls": [UrlSource(url=source.as_uri(), sha256=SHA)]}).data
    with pytest.raises(DataError, match="the file holds 262,144 bytes, over the cap of 100,000"):
        fetch_urls(data)


@pytest.mark.parametrize("members, message", [
    ({"a": b"file", "a/b": b"inside"}, "holds 'a' both as a file and as a folder"),
    ({"a/b": b"inside", "a": b"file"}, "holds 'a' both as a file and as a folder"),
    ({"x" * 300 + ".mp4": b"long"}, "its name is longer than a file system allows"),
    ({"ok/" + "y" * 256: b"long"}, "its name is longer than a file system allows"),
])
def test_zip_layouts_no_disk_can_hold_are_one_line_and_write_nothing(tmp_path, members, message):
    archive = make_zip(tmp_path / "bad.zip", members)
    with pytest.raises(DataError, match=message) as refused:
        extract(archive, tmp_path / "out", max_bytes=10**6)
    assert "\n" not in str(refused.value) and len(str(refused.value)) < 300
    assert list((tmp_path / "out").iterdir()) == []


def test_tar_file_and_folder_of_one_name_is_one_line(tmp_path):
    archive = make_tar(tmp_path / "bad.tar.gz", [(tar_info("a", size=4), b"file"), (tar_info("a/b", size=2), b"in")])
    with pytest.raises(DataError, match="holds 'a' both as a file and as a folder"):
        extract(archive, tmp_path / "out", max_bytes=10**6)


@needs_bsdtar
def test_bsdtar_file_and_folder_of_one_name_is_one_line(tmp_path):
    from test_extract import cpio

    archive = cpio(tmp_path / "bad.cpio", [("a", 0o100644, b"file"), ("a/b", 0o100644, b"in")])
    with pytest.raises(DataError, match="holds 'a' both as a file and as a folder"):
        extract(archive, tmp_path / "out", max_bytes=10**6)


def test_a_clash_with_what_dest_already_holds_is_one_line(tmp_path):
    (tmp_path / "out" / "a").mkdir(parents=True)  # a folder where the archive has a file
    archive = make_zip(tmp_path / "ok.zip", {"a": b"file"})
    with pytest.raises(DataError, match=r"ok.zip: cannot extract it into .*out \(Is a directory") as refused:
        extract(archive, tmp_path / "out", max_bytes=10**6)
    assert "\n" not in str(refused.value)


def foreign(path, text: bytes = b"someone else's") -> bytes:
    with tarfile.open(path, "w") as bundle:
        info = tarfile.TarInfo("theirs.txt")
        info.size = len(text)
        bundle.addfile(info, io.BytesIO(text))
    return path.read_bytes()


def test_shards_delete_only_the_shards_their_own_manifest_listed(good_videos, tmp_path):  # noqa: F811
    raw, paths = good_videos
    write_index(raw, paths)
    out = tmp_path / "shared"
    out.mkdir()
    theirs = {name: foreign(out / name) for name in ("train-000009.tar", "val-000042.tar", "notes-000001.tar")}
    first = build_shards(make_params(raw, out, shard_mb=0.05, clips_per_video=0))  # many small shards
    second = build_shards(make_params(raw, out, shard_mb=64))  # one shard per split
    assert len(first["shards"]["train"]) > len(second["shards"]["train"]) == 1
    ours = {name for names in second["shards"].values() for name in names}
    assert sorted(p.name for p in out.iterdir()) == sorted({"manifest.json", *ours, *theirs})
    assert all((out / name).read_bytes() == data for name, data in theirs.items())  # untouched


def test_shards_refuse_to_overwrite_a_shard_they_did_not_write(good_videos, tmp_path):  # noqa: F811
    raw, paths = good_videos
    write_index(raw, paths)
    out = tmp_path / "shared"
    out.mkdir()
    data = foreign(out / "train-000000.tar")
    with pytest.raises(DataError, match="train-000000.tar was not written by `vgan shards` in this folder") as err:
        build_shards(make_params(raw, out))
    assert "\n" not in str(err.value) and (out / "train-000000.tar").read_bytes() == data
