"""The local web server of a rating session (stdlib ``http.server``): the page, the state, the answers, the clips.

Routes: ``GET /`` the page; ``GET /state`` progress and the current pair as two opaque clip URLs;
``POST /answer`` {round, choice: left|right, ms} records an answer and returns the next state;
``GET /clip/<token>`` a clip's raw frames. Every clip is the same number of bytes, read into memory before the
first request and served with the same headers, so neither the URL, the size, the headers nor the time to load
one says which clip is which.

A POST must come from the page: JSON (``application/json``), the page's per-session token in ``X-Vgan-Token``,
a ``Host`` this server answers to (when bound to loopback: no DNS rebinding) and a same-origin ``Origin`` if
any. Anything else, and any body that is not one small flat JSON object with bounded numbers, gets a 400 with a
one-line reason; a client that stops sending is dropped after ``READ_TIMEOUT_S``. No request prints a traceback.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import sys
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from vgan.rating.answers import parse_body
from vgan.rating.page import render_page
from vgan.rating.session import Session
from vgan.util.errors import DataError, VganError

MAX_BODY = 4096
READ_TIMEOUT_S = 10.0
TOKEN_HEADER = "X-Vgan-Token"
# a constant header set: every response of a kind carries the same names in the same order
SECURITY_HEADERS = (("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"),
                    ("Cache-Control", "no-store"))
PAGE_POLICY = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
               "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only reaches this machine."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _Refused(Exception):
    """A request answered with 400 and this one-line reason."""


class _Handler(BaseHTTPRequestHandler):
    server_version = "vgan-rate"
    sys_version = ""
    timeout = READ_TIMEOUT_S  # applies to every read of the request: a stalled client cannot hold a thread

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's name; quiet: the terminal is the user's
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in SECURITY_HEADERS:
            self.send_header(name, value)
        if content_type.startswith("text/html"):
            self.send_header("Content-Security-Policy", PAGE_POLICY)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, obj, status: int = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _refuse(self, reason: str, status: int = HTTPStatus.BAD_REQUEST) -> None:
        self.close_connection = True
        self._send(status, reason.encode(), "text/plain; charset=utf-8")

    def _check_host(self) -> None:
        allowed = self.server.rating.allowed_hosts
        host = self.headers.get("Host", "")
        if allowed is not None and host not in allowed:
            raise _Refused(f"unexpected Host {host[:60]!r}: open the address `vgan rate` printed")

    def do_GET(self):  # noqa: N802 - the stdlib's name
        rating: Rating = self.server.rating
        try:
            self._check_host()
        except _Refused as err:
            return self._refuse(str(err))
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._send(HTTPStatus.OK, rating.page, "text/html; charset=utf-8")
        elif path == "/state":
            self._json(rating.session.state())
        elif path.startswith("/clip/") and path[6:] in rating.clips:
            self._send(HTTPStatus.OK, rating.clips[path[6:]], "application/octet-stream")
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain; charset=utf-8")

    def _read_answer(self) -> dict:
        """The posted answer, once every check on the request has passed (else _Refused / ValueError)."""
        rating: Rating = self.server.rating
        headers = self.headers
        self._check_host()
        origin = headers.get("Origin")
        if origin is not None and origin != f"http://{headers.get('Host', '')}":
            raise _Refused("cross-origin request refused: answers come from the rating page itself")
        token = headers.get(TOKEN_HEADER, "").encode("utf-8", "surrogateescape")
        if not secrets.compare_digest(token, rating.token.encode()):
            raise _Refused("missing or wrong session token: reload the rating page")
        if headers.get("Content-Type", "").split(";")[0].strip().lower() != "application/json":
            raise _Refused("expected Content-Type: application/json")
        if "Transfer-Encoding" in headers:
            raise _Refused("send the answer with a Content-Length, not chunked")
        declared = headers.get("Content-Length", "").strip()
        if not (declared.isascii() and declared.isdigit() and len(declared) <= 6):
            raise _Refused(f"bad Content-Length {declared[:20]!r}")
        length = int(declared)
        if not 0 < length <= MAX_BODY:
            raise _Refused(f"Content-Length {length}: expected a JSON body of 1 to {MAX_BODY} bytes")
        body = self.rfile.read(length)
        if len(body) != length:
            raise _Refused(f"the body ended after {len(body)} of its {length} declared bytes")
        return parse_body(body)

    def do_POST(self):  # noqa: N802
        rating: Rating = self.server.rating
        if self.path != "/answer":
            return self._refuse("not found", HTTPStatus.NOT_FOUND)
        try:
            answer = self._read_answer()
            state = rating.session.record(answer.get("round"), answer.get("choice"), answer.get("ms"))
        except (_Refused, ValueError) as err:
            return self._refuse(str(err))
        except TimeoutError:
            return self._refuse(f"the body did not arrive within {self.timeout:g} s")
        except ConnectionError:
            self.close_connection = True
            return None
        except Exception as err:  # noqa: BLE001 - e.g. a full disk: the page says "not saved", the terminal one line
            print(f"rate: an answer could not be saved: {err.__class__.__name__}: {str(err)[:200]}", file=sys.stderr)
            return self._refuse("the answer could not be saved; see the terminal of `vgan rate`",
                                HTTPStatus.INTERNAL_SERVER_ERROR)
        self._json(state)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """One line, not the stdlib's traceback, for whatever a handler did not answer itself."""
        err = sys.exc_info()[1]
        if isinstance(err, (ConnectionError, TimeoutError)):
            return
        print(f"rate: a request from {client_address[0]} failed: {err.__class__.__name__}: {str(err)[:200]}",
              file=sys.stderr)


class Rating:
    """A session's page and clips, held in memory, served until every pair is answered."""

    def __init__(self, session: Session, display_px: int):
        self.session = session
        self.token = secrets.token_urlsafe(24)  # the page carries it; a page of another origin cannot read it
        self.allowed_hosts: set[str] | None = None  # set by serve()
        meta = session.meta
        frames = {}
        self.clips = {}
        for pair in meta["pairs"]:
            for side in ("left", "right"):
                key = pair[side]["clip"]
                if key not in frames:
                    frames[key] = session.clip_bytes(key)
                self.clips[pair[side]["token"]] = frames[key]
        if len({len(data) for data in frames.values()}) > 1:
            raise DataError(f"the clips of {session.folder} differ in size; remove it to prepare the session again")
        self.page = render_page(meta["mode"], meta["question"], display_px, protocol=meta["protocol"],
                                token=self.token, clip_shape=meta["clip_shape"], fps=meta["fps"]).encode()

    def serve(self, host: str, port: int, on_ready: Callable[[str], None]) -> None:
        """Listen on host:port (0 = any free port), call ``on_ready(url)``, and return once the last pair is
        answered (Ctrl-C stops it sooner; the answers so far are on disk)."""
        try:
            httpd = _Server((host, port), _Handler)
        except OSError as err:
            raise VganError(f"cannot listen on {host}:{port}: {err.strerror or err}; choose another --port "
                            f"(0 = any free one) or --host") from None
        httpd.rating = self
        bound = httpd.server_address[1]
        shown_host = f"[{host}]" if ":" in host else host
        if is_loopback(host):  # only the names of this machine: a rebound DNS name gets a 400
            names = {shown_host, "127.0.0.1", "localhost", "[::1]"}
            self.allowed_hosts = {f"{name}:{bound}" for name in names} | (names if bound == 80 else set())
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        thread.start()
        try:
            on_ready(f"http://{shown_host}:{bound}/")
            while not self.session.finished.wait(0.2):
                pass
            # the last answer's response (the finish screen) is on its way; let it go out before closing
            time.sleep(0.5)
        finally:
            httpd.shutdown()
            httpd.server_close()
