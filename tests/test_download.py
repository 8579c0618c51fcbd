"""Verified downloads against a real HTTP server on 127.0.0.1: resume, retries, 404, checksums."""

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from vgan.data.download import download
from vgan.util import retry as retry_module
from vgan.util.errors import DataError

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class FlakyServer(ThreadingHTTPServer):
    """Serves PAYLOAD at /data.bin with Range support; can drop connections part-way or fail with 503."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.drops = 0  # how many responses to cut off after `drop_after` bytes
        self.drop_after = len(PAYLOAD) // 3
        self.failures = 0  # how many requests to answer with 503
        self.requests = []  # (path, Range header)
        self.honour_range = True

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        if self.path != "/data.bin":
            self.send_error(404, "Not Found")
            return
        if server.failures:
            server.failures -= 1
            self.send_error(503, "Service Unavailable")
            return
        start = 0
        if self.headers.get("Range") and server.honour_range:
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            if start >= len(PAYLOAD):
                self.send_error(416, "Range Not Satisfiable")
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.drops:
            server.drops -= 1
            self.wfile.write(body[: server.drop_after])
            self.wfile.flush()
            self.connection.close()  # the client sees a short read: a dropped connection
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    httpd = FlakyServer()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_download_verifies_and_promotes(server, tmp_path):
    dest = download(f"{server.url}/data.bin", tmp_path / "data.bin", SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin"]
    download(f"{server.url}/data.bin", dest, SHA, progress=False)
    assert len(server.requests) == 1  # already there and verified: no second request


def test_resume_after_a_dropped_connection_uses_range(server, tmp_path):
    server.drops = 1
    dest = download(f"{server.url}/data.bin", tmp_path / "data.bin", SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("/data.bin", None), ("/data.bin", f"bytes={len(PAYLOAD) // 3}-")]


def test_resume_of_a_partial_left_by_an_earlier_run(server, tmp_path):
    (tmp_path / "data.bin.partial").write_bytes(PAYLOAD[:1000])
    download(f"{server.url}/data.bin", tmp_path / "data.bin", SHA, progress=False)
    assert (tmp_path / "data.bin").read_bytes() == PAYLOAD
    assert server.requests == [("/data.bin", "bytes=1000-")]


def test_server_that_ignores_range_restarts_cleanly(server, tmp_path):
    server.honour_range = False
    (tmp_path / "data.bin.partial").write_bytes(b"stale" * 100)
    download(f"{server.url}/data.bin", tmp_path / "data.bin", SHA, progress=False)
    assert (tmp_path / "data.bin").read_bytes() == PAYLOAD


def test_retries_server_errors_then_succeeds(server, tmp_path):
    server.failures = 2
    download(f"{server.url}/data.bin", tmp_path / "data.bin", SHA, progress=False, retries=3)
    assert (tmp_path / "data.bin").read_bytes() == PAYLOAD and len(server.requests) == 3


def test_waits_between_retries_double_up_to_30_s(server, tmp_path, monkeypatch):
    waits = []
    monkeypatch.setattr(retry_module.time, "sleep", waits.append)
    server.failures = 8
    download(f"{server.url}/data.bin", tmp_path / "data.bin", SHA, progress=False, retries=8)
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0] and len(server.requests) == 9


def test_gives_up_after_the_retries(server, tmp_path):
    server.failures = 10
    with pytest.raises(DataError, match="HTTP 503.*gave up after 2 attempts"):
        download(f"{server.url}/data.bin", tmp_path / "data.bin", SHA, progress=False, retries=1)
    assert not (tmp_path / "data.bin").exists()


def test_404_is_one_clear_line_without_retries(server, tmp_path):
    with pytest.raises(DataError, match="HTTP 404") as err:
        download(f"{server.url}/missing.bin", tmp_path / "missing.bin", SHA, progress=False)
    assert "\n" not in str(err.value) and len(server.requests) == 1
    assert list(tmp_path.iterdir()) == []


def test_wrong_checksum_is_never_promoted(server, tmp_path):
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(DataError, match=f"checksum mismatch.*expected sha256 {wrong}, got {SHA}"):
        download(f"{server.url}/data.bin", tmp_path / "data.bin", wrong, progress=False)
    assert list(tmp_path.iterdir()) == []  # neither the file nor its .partial


def test_dns_failure_is_one_clear_line(tmp_path):
    with pytest.raises(DataError, match="cannot resolve host 'no-such-host.invalid'"):
        download("http://no-such-host.invalid/x.bin", tmp_path / "x.bin", SHA, progress=False, retries=0)


def test_file_urls_and_unknown_schemes(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(PAYLOAD)
    dest = download(source.as_uri(), tmp_path / "out" / "copy.bin", SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    with pytest.raises(DataError, match="unsupported scheme 'ftp'"):
        download("ftp://example.org/x", tmp_path / "x", SHA)
