"""`vgan rate` against a hostile or careless user (issue 29): a rater who reads sizes, headers, timing and repeats
scores at chance; hostile POSTs get a 400 with no traceback and the session still scores; a second `vgan rate`
on one session is refused and no answer is lost; a non-loopback host is warned about."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import BIN
from vgan.cli import main
from vgan.util.errors import DataError
from vgan.util.media import write_gif
from vgan.params import load_params
from vgan.rating import server as rating_server
from vgan.rating.server import Rating
from vgan.rating.session import open_session, wilson_interval


def noisy_gifs(folder: Path, count: int, size: int = 32, frames: int = 8) -> None:
    """Generated-looking clips: noise compresses badly, so these GIFs are larger than the real ones."""
    rng = np.random.default_rng(1)
    for index in range(count):
        write_gif(rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8), folder / f"g{index:02d}.gif", fps=8)


def smooth_real_clips(count: int, size: int = 32, frames: int = 8) -> list[tuple[str, np.ndarray]]:
    """Real-looking clips: a bright square moving on black (a GIF of it is small)."""
    clips = []
    for index in range(count):
        video = np.zeros((frames, size, size, 3), np.uint8)
        for t in range(frames):
            top = (index * 3) % (size - 8)
            video[t, top:top + 8, t * 2:t * 2 + 8] = 120 + index
        clips.append((f"real clip {index}", video))
    return clips


@pytest.fixture
def real_mode(tmp_path, monkeypatch):
    """A workspace whose `vgan rate` pairs 8 noisy generated GIFs with 40 smooth real clips (as in the issue:
    fewer generated clips than pairs, each larger than any real one)."""
    monkeypatch.chdir(tmp_path)
    noisy_gifs(tmp_path / "gen", 8)
    monkeypatch.setattr("vgan.rating.session.real_clips", lambda out_dir, split, count, seed: smooth_real_clips(count))
    (tmp_path / "params.yaml").write_text("rate:\n  samples_dir: gen\n  rounds: 40\n  mlflow: false\n")
    return load_params("params.yaml")


@contextlib.contextmanager
def serving(session):
    """The session's server on a free loopback port, in a thread; yields (host, port, token from the page)."""
    rating = Rating(session, 64)
    ready: queue.Queue = queue.Queue()
    thread = threading.Thread(target=rating.serve, args=("127.0.0.1", 0, ready.put), daemon=True)
    thread.start()
    url = ready.get(timeout=30)
    host, port = re.match(r"http://([^:/]+):(\d+)/", url).groups()
    try:
        _, _, page = call(host, int(port), "GET", "/")
        token = re.search(r'TOKEN = "([^"]+)"', page.decode())
        yield host, int(port), token.group(1) if token else ""
    finally:
        session.finished.set()
        thread.join(timeout=20)
        getattr(session, "close", lambda: None)()


def call(host: str, port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        connection.close()


def answer_headers(token: str) -> dict:
    return {"Content-Type": "application/json", "X-Vgan-Token": token}


def test_a_scripted_rater_using_only_sizes_headers_timing_and_repeats_scores_at_chance(real_mode):
    session = open_session(real_mode)
    seen: dict[str, int] = {}  # clip bytes' digest -> times shown before
    signatures, sizes = set(), set()
    with serving(session) as (host, port, token):
        for _ in range(40):
            _, _, body = call(host, port, "GET", "/state")
            state = json.loads(body)
            looks = {}
            for side in ("left", "right"):
                started = time.perf_counter()
                status, headers, clip = call(host, port, "GET", "/" + state[side])
                elapsed = time.perf_counter() - started
                assert status == 200
                signature = tuple((name, value) for name, value in headers if name != "Date")
                digest = hashlib.sha256(clip).hexdigest()
                looks[side] = {"size": len(clip), "signature": signature, "repeats": seen.get(digest, 0),
                               "seconds": elapsed, "digest": digest}
                signatures.add(signature)
                sizes.add(len(clip))
            for look in looks.values():
                seen[look["digest"]] = seen.get(look["digest"], 0) + 1
            left, right = looks["left"], looks["right"]
            # the clip that stands out is taken for the generated one; the other is answered as real
            if left["size"] != right["size"]:
                suspect = "left" if left["size"] > right["size"] else "right"  # generated GIFs were larger
            elif left["signature"] != right["signature"]:
                suspect = "left" if left["signature"] != next(iter(signatures)) else "right"
            elif left["repeats"] != right["repeats"]:
                suspect = "left" if left["repeats"] > right["repeats"] else "right"  # generated clips came back
            elif abs(left["seconds"] - right["seconds"]) > 0.05:
                suspect = "left" if left["seconds"] > right["seconds"] else "right"
            else:
                suspect = "right"  # nothing to go on: always "left is real"
            choice = "right" if suspect == "left" else "left"
            status, _, _ = call(host, port, "POST", "/answer", json.dumps(
                {"round": state["round"], "choice": choice, "ms": 900}).encode(), answer_headers(token))
            assert status == 200
    result = session.score(0.95)
    assert result["answers"] == 40
    low, high = result["fool_rate_ci_low"], result["fool_rate_ci_high"]
    assert low <= 0.5 <= high, result  # no better than a coin
    assert len(sizes) == 1 and len(signatures) == 1  # and not by luck: there was nothing to read
    meta = json.loads((session.folder / "session.json").read_text())
    shown = [pair[side]["clip"] for pair in meta["pairs"] for side in ("left", "right")]
    counts = {key: shown.count(key) for key in set(shown)}
    assert sorted(v for k, v in counts.items() if k.startswith("generated")) == \
        sorted(v for k, v in counts.items() if k.startswith("real")) == [5] * 8  # each clip as often


def test_the_page_and_the_report_state_the_protocol(real_mode, capsys):
    session = open_session(real_mode)
    protocol = session.meta["protocol"]
    assert "40 pairs" in protocol and "8 distinct clips per side, each shown 5 times" in protocol
    assert "raw frames of the same size (24,576 bytes) with the same headers" in protocol
    with serving(session) as (host, port, token):
        page = call(host, port, "GET", "/")[2].decode()
        assert protocol.split(":")[0] in page and "8 distinct clips per side" in page
        for round_index in range(40):
            call(host, port, "POST", "/answer", json.dumps({"round": round_index, "choice": "left"}).encode(),
                 answer_headers(token))
    assert main(["rate", "--no-mlflow"]) == 0  # every pair answered: it scores and reports
    out = capsys.readouterr().out
    report = Path("ratings/real-seed0/report.md").read_text()
    assert "fool rate 0.500" in report and protocol in report and "ratings/real-seed0/report.md" in out


HOSTILE = [  # (what, the body, words the 400's one-line reason must hold)
    ("400-digit ms", {"round": 0, "choice": "left", "ms": int("9" * 400)}, "digits"),
    ("ms 1e999", '{"round": 0, "choice": "left", "ms": 1e999}', "out of range"),
    ("NaN", '{"round": 0, "choice": "left", "ms": NaN}', "not a number"),
    ("round true", {"round": True, "choice": "left", "ms": 5}, "round"),
    ("choice 7", {"round": 0, "choice": 7}, "choice"),
    ("negative ms", {"round": 0, "choice": "left", "ms": -3}, "ms"),
    ("nested 1,500 deep", "[" * 1500 + "]" * 1500, "nested"),
    ("a list", "[1, 2]", "JSON object"),
    ("not JSON", "round=0&choice=left", "not JSON"),
    ("not UTF-8", b'{"round": 0, "choice": "\xff"}', "UTF-8"),
]


def raw_post(port: int, body: bytes, headers: dict, keep_open_s: float = 0.0) -> tuple[int, str]:
    """POST over a bare socket (any header, any lie); returns the status and the body of the response."""
    lines = ["POST /answer HTTP/1.1"] + [f"{name}: {value}" for name, value in headers.items()]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        chunks = []
        with contextlib.suppress(ConnectionResetError):  # the server may close on a body it never read
            while chunk := connection.recv(65536):
                chunks.append(chunk)
    response = b"".join(chunks).decode("utf-8", "replace")
    status = int(response.split(" ", 2)[1]) if response.startswith("HTTP/") else 0
    return status, response.split("\r\n\r\n", 1)[-1]


def test_hostile_posts_get_400_and_no_traceback_and_the_session_still_scores(real_mode, monkeypatch, capfd):
    monkeypatch.setattr(rating_server._Handler, "timeout", 1.0)
    session = open_session(real_mode)
    with serving(session) as (host, port, token):
        good = {"Host": f"127.0.0.1:{port}", "Content-Type": "application/json", "X-Vgan-Token": token,
                "Connection": "close"}
        for what, payload, reason in HOSTILE:
            body = payload if isinstance(payload, bytes) else \
                (payload if isinstance(payload, str) else json.dumps(payload)).encode()
            status, text = raw_post(port, body, {**good, "Content-Length": len(body)})
            assert status == 400 and reason in text and "\n" not in text.strip(), (what, status, text)
        body = json.dumps({"round": 0, "choice": "left", "ms": 10}).encode()
        refusals = {
            "Content-Length abc": ({**good, "Content-Length": "abc"}, body, "Content-Length"),
            "no Content-Length": (good, body, "Content-Length"),
            "50 MB declared": ({**good, "Content-Length": 50_000_000}, body, "Content-Length"),
            "text/plain": ({**good, "Content-Type": "text/plain", "Content-Length": len(body)}, body, "application/json"),
            "no token": ({**{k: v for k, v in good.items() if k != "X-Vgan-Token"}, "Content-Length": len(body)},
                         body, "token"),
            "forged token": ({**good, "X-Vgan-Token": "0" * 32, "Content-Length": len(body)}, body, "token"),
            "other origin": ({**good, "Origin": "http://evil.example", "Content-Length": len(body)}, body, "origin"),
            "rebound Host": ({**good, "Host": f"evil.example:{port}", "Content-Length": len(body)}, body, "Host"),
            "chunked": ({**good, "Transfer-Encoding": "chunked"}, b"5\r\nhello\r\n0\r\n\r\n", "chunked"),
        }
        for what, (headers, payload, reason) in refusals.items():
            status, text = raw_post(port, payload, headers)
            assert status == 400 and reason in text, (what, status, text)
        started = time.monotonic()  # a Content-Length larger than the body: dropped after the read timeout
        status, text = raw_post(port, body, {**good, "Content-Length": len(body) + 100})
        assert status == 400 and "did not arrive within 1 s" in text and time.monotonic() - started < 10
        assert session.answers == [] and not session.answers_file.exists()
        for round_index in range(40):  # the page's own answers still go through
            status, _, _ = call(host, port, "POST", "/answer", json.dumps(
                {"round": round_index, "choice": "left", "ms": 700}).encode(), answer_headers(token))
            assert status == 200
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err + captured.out, captured.err
    again = open_session(real_mode)  # from the file, as the next `vgan rate` reads it
    assert [answer["round"] for answer in again.answers] == list(range(40))
    assert all(answer["ms"] == 700 for answer in again.answers)
    assert again.score(0.95)["answers"] == 40
    again.close()


def rate_process(work: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.Popen([str(BIN / "vgan"), "rate", "--no-mlflow", "--port", "0", *args], cwd=work, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def first_line(process: subprocess.Popen) -> str:
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: lines.put(process.stdout.readline()), daemon=True).start()
    return lines.get(timeout=120)


def test_a_second_rate_on_one_session_is_refused_and_no_answer_is_lost(tmp_path):
    work = tmp_path / "work"
    noisy_gifs(work / "a", 3)
    noisy_gifs(work / "b", 3)
    (work / "params.yaml").write_text("rate:\n  mode: models\n  samples_dir: a\n  other_dir: b\n  rounds: 4\n")
    first = rate_process(work)
    try:
        url = re.search(r"open (http://127\.0\.0\.1:\d+/) ", first_line(first)).group(1)
        host, port = re.match(r"http://([^:/]+):(\d+)/", url).groups()
        token = re.search(r'TOKEN = "([^"]+)"', call(host, int(port), "GET", "/")[2].decode()).group(1)
        for round_index in range(2):
            assert call(host, int(port), "POST", "/answer", json.dumps({"round": round_index, "choice": "left"})
                        .encode(), answer_headers(token))[0] == 200

        second = rate_process(work)
        try:
            _, err = second.communicate(timeout=60)
        finally:
            if second.poll() is None:  # it served the same session beside the first: the bug
                os.killpg(second.pid, signal.SIGKILL)
        assert second.returncode == 1 and len(err.strip().splitlines()) == 1, err
        assert "is open in another `vgan rate` (pid" in err and f"serving {url}" in err, err
        answers = work / "ratings/models-seed0/answers.jsonl"
        assert [json.loads(line)["round"] for line in answers.read_text().splitlines()] == [0, 1]
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # no clean exit: the kernel drops the lock
        first.wait(timeout=30)

    third = rate_process(work)  # the same command resumes where the killed one stopped
    try:
        url = re.search(r"open (http://127\.0\.0\.1:\d+/) in a browser: 4 pairs, 2 answered", first_line(third))
        host, port = re.match(r"http://([^:/]+):(\d+)/", url.group(1)).groups()
        token = re.search(r'TOKEN = "([^"]+)"', call(host, int(port), "GET", "/")[2].decode()).group(1)
        for round_index in (2, 3):
            assert call(host, int(port), "POST", "/answer", json.dumps({"round": round_index, "choice": "right"})
                        .encode(), answer_headers(token))[0] == 200
        out, err = third.communicate(timeout=120)
    finally:
        if third.poll() is None:
            os.killpg(third.pid, signal.SIGKILL)
    assert third.returncode == 0, err
    rows = [json.loads(line) for line in answers.read_text().splitlines()]
    assert [(row["round"], row["choice"]) for row in rows] == [(0, "left"), (1, "left"), (2, "right"), (3, "right")]
    assert "rate: preference for A " in out and "in 4 pairs" not in out and " of 4 pairs" in out


def test_a_torn_last_line_is_cut_and_a_bad_line_is_one_error(real_mode):
    session = open_session(real_mode)
    session.record(0, "left", 500)
    session.record(1, "right", 600)
    session.close()
    answers = session.answers_file
    with open(answers, "ab") as stream:
        stream.write(b'{"round": 2, "choice": "le')  # a crash mid-write, never acknowledged
    again = open_session(real_mode)
    assert [answer["round"] for answer in again.answers] == [0, 1] and answers.read_bytes().endswith(b"}\n")
    again.record(2, "left", 700)
    again.close()
    lines = answers.read_text().splitlines()
    lines[1] = lines[1].replace('"ms": 600', '"ms": ' + "9" * 400)  # edited by hand
    answers.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"answers.jsonl line 2 is not a valid answer \(ms = 9999"):
        open_session(real_mode)


def test_a_host_that_is_not_loopback_is_warned_about(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("rate:\n  samples_dir: nowhere\n")
    assert main(["rate", "--host", "0.0.0.0"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("vgan rate: warning: rate.host 0.0.0.0 is not a loopback address") and len(err) == 2
    assert main(["rate", "--host", "127.0.0.1"]) != 0 and "warning" not in capsys.readouterr().err


def test_wilson_interval_of_a_coin_over_40_pairs_covers_half():  # the yardstick of the tests above
    assert wilson_interval(14, 40)[1] > 0.5 > wilson_interval(26, 40)[0]
