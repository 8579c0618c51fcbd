"""The local web server of a rating session (stdlib ``http.server``): the page, the state, the answers, the clips.

Routes: ``GET /`` the page; ``GET /state`` progress and the current pair as two opaque clip URLs;
``POST /answer`` {round, choice: left|right, ms} records an answer and returns the next state;
``GET /clip/<token>.gif`` a clip. Every clip is read into memory before the first request and served with the
same headers, so neither the URL, the headers nor the time to load one says which clip is which.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from vgan.errors import VganError
from vgan.rating.page import render_page
from vgan.rating.session import Session

MAX_BODY = 4096


class _Handler(BaseHTTPRequestHandler):
    server_version = "vgan-rate"
    sys_version = ""

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's name; quiet: the terminal is the user's
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, obj, status: int = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def do_GET(self):  # noqa: N802 - the stdlib's name
        rating: Rating = self.server.rating
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._send(HTTPStatus.OK, rating.page, "text/html; charset=utf-8")
        elif path == "/state":
            self._json(rating.session.state())
        elif path.startswith("/clip/") and path.endswith(".gif") and path[6:-4] in rating.clips:
            self._send(HTTPStatus.OK, rating.clips[path[6:-4]], "image/gif")
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")

    def do_POST(self):  # noqa: N802
        rating: Rating = self.server.rating
        if self.path != "/answer":
            return self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
        length = int(self.headers.get("Content-Length") or 0)
        try:
            if not 0 < length <= MAX_BODY:
                raise ValueError("expected a small JSON body")
            answer = json.loads(self.rfile.read(length))
            state = rating.session.record(answer.get("round"), answer.get("choice"), answer.get("ms"))
        except (ValueError, AttributeError) as err:
            return self._send(HTTPStatus.BAD_REQUEST, str(err).encode(), "text/plain")
        self._json(state)


class Rating:
    """A session's page and clips, held in memory, served until every pair is answered."""

    def __init__(self, session: Session, display_px: int):
        self.session = session
        self.page = render_page(session.meta["mode"], session.meta["question"], display_px).encode()
        self.clips = {}
        for pair in session.meta["pairs"]:
            for side in ("left", "right"):
                token = pair[side]["token"]
                self.clips[token] = session.clip_file(token).read_bytes()

    def serve(self, host: str, port: int, on_ready: Callable[[str], None]) -> None:
        """Listen on host:port (0 = any free port), call ``on_ready(url)``, and return once the last pair is
        answered (Ctrl-C stops it sooner; the answers so far are on disk)."""
        try:
            httpd = ThreadingHTTPServer((host, port), _Handler)
        except OSError as err:
            raise VganError(f"cannot listen on {host}:{port}: {err.strerror or err}; choose another --port "
                            f"(0 = any free one) or --host") from None
        httpd.daemon_threads = True
        httpd.rating = self
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        thread.start()
        try:
            shown_host = f"[{host}]" if ":" in host else host
            on_ready(f"http://{shown_host}:{httpd.server_address[1]}/")
            while not self.session.finished.wait(0.2):
                pass
            # the last answer's response (the finish screen) is on its way; let it go out before closing
            time.sleep(0.5)
        finally:
            httpd.shutdown()
            httpd.server_close()
