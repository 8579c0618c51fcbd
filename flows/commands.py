"""Running one command for a flow: its output to log files and, line by line while it runs, to a logger
(a Prefect task's), with a time limit (SIGINT, then SIGKILL to its process group).

Kept apart from ``flows.pipeline`` so the flow modules hold the stage order, retries and reports only.
"""

from __future__ import annotations

import math
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from vgan import QUIET_ENV

STDERR_TAIL_LINES = 40
# Streaming a command's output into the run's logs: a progress bar's redraws are logged this often at most.
PROGRESS_LOG_EVERY_S = 5.0
MAX_LOG_LINE_BYTES = 64 * 1024  # a longer run without a line break is logged as one line
MAX_LOG_LINE_CHARS = 4000  # what one log record keeps (the files keep everything)
READ_BYTES = 64 * 1024
POLL_S = 0.5
INTERRUPT_GRACE_S = 60  # after SIGINT at the time limit, SIGKILL this much later
EXIT_DRAIN_S = 5.0  # after the command exits, read what its pipes still hold for this long at most


def _tail(path: Path, lines: int = STDERR_TAIL_LINES) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    # progress bars redraw with carriage returns: keep each line's last state
    cleaned = [line.rsplit("\r", 1)[-1] for line in text.splitlines()]
    return "\n".join([line for line in cleaned if line.strip()][-lines:])


def command_env(extra: dict | None = None) -> dict:
    """Quiet, and with this interpreter's bin folder first so `dvc` and `vgan` are the venv's."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, **QUIET_ENV, "PATH": path, **(extra or {})}


def dvc(*args: str) -> list[str]:
    return [sys.executable, "-m", "dvc", *args]


class StreamLog:
    """One output stream of a command: every byte to its log file, its lines to a logger as they come.

    Progress bars redraw one line with carriage returns; only the newest redraw is kept, and it is logged
    at most every ``PROGRESS_LOG_EVERY_S`` (a finished line, ending in a newline, is always logged).
    """

    def __init__(self, file, log: Callable[[str], None] | None):
        self.file, self.log = file, log
        self.pending = b""  # the unfinished line
        self.progress: str | None = None  # the newest redraw not yet logged
        self.progress_logged: str | None = None  # the redraw logged last, while its line is unfinished
        self.progress_logged_at = -math.inf

    def feed(self, chunk: bytes) -> None:
        self.file.write(chunk)
        self.file.flush()  # the files are readable while a stage runs, as before
        *lines, self.pending = (self.pending + chunk).split(b"\n")
        for line in lines:
            self._line(line)
        if b"\r" in self.pending:
            *redraws, current = self.pending.split(b"\r")
            newest = current if current.strip() else next((r for r in reversed(redraws) if r.strip()), b"")
            if newest.strip():
                self.progress = _decoded(newest)
            self.pending = b"\r" + current
        if len(self.pending) > MAX_LOG_LINE_BYTES:  # output with no line breaks at all
            self._line(self.pending)
            self.pending = b""

    def tick(self, now: float) -> None:
        """Log the newest redraw when the last one logged is old enough."""
        if self.progress is not None and now - self.progress_logged_at >= PROGRESS_LOG_EVERY_S:
            self._emit(self.progress)
            self.progress, self.progress_logged, self.progress_logged_at = None, self.progress, now

    def close(self) -> None:
        if self.pending.strip():
            self._line(self.pending)
        self.pending = b""

    def _line(self, raw: bytes) -> None:
        text = _decoded(raw.rstrip(b"\r").rsplit(b"\r", 1)[-1])
        if text.strip() and text != self.progress_logged:  # the finished line is the redraw's last state
            self._emit(text)
        self.progress = self.progress_logged = None

    def _emit(self, text: str) -> None:
        if self.log is not None:
            self.log(text[:MAX_LOG_LINE_CHARS])


def _decoded(raw: bytes) -> str:
    return raw.decode(errors="replace").rstrip()


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)  # the group id is the command's PID (start_new_session=True)
    except ProcessLookupError:  # the command and every child of it already exited
        pass


def _follow(process: subprocess.Popen, streams: dict, deadline: float) -> bool:
    """Copy the command's pipes into their ``StreamLog`` until it exits; interrupt it at ``deadline``.

    One selector serves both pipes, so neither fills up while the other is read. Returns whether the
    command ran past ``deadline`` (SIGINT then, SIGKILL ``INTERRUPT_GRACE_S`` later).
    """
    selector = selectors.DefaultSelector()
    for pipe in streams:
        selector.register(pipe, selectors.EVENT_READ)
    timed_out, kill_at, drain_until = False, None, None
    try:
        while True:
            now = time.monotonic()
            if process.poll() is not None:
                if drain_until is None:  # a child left running may hold the pipes open: stop reading soon
                    drain_until = now + EXIT_DRAIN_S
                if not selector.get_map() or now > drain_until:
                    break
            elif not timed_out and now >= deadline:
                timed_out, kill_at = True, now + INTERRUPT_GRACE_S
                _signal_group(process, signal.SIGINT)  # DVC and vgan stop cleanly on Ctrl-C
            elif kill_at is not None and now >= kill_at:
                _signal_group(process, signal.SIGKILL)
                kill_at = None
            if selector.get_map():
                for key, _ in selector.select(timeout=POLL_S):
                    chunk = os.read(key.fd, READ_BYTES)
                    if chunk:
                        streams[key.fileobj].feed(chunk)
                    else:
                        selector.unregister(key.fileobj)
            else:  # both pipes closed: the command is exiting (or closed them early); wait for it, not a poll period
                try:
                    process.wait(timeout=POLL_S)
                except subprocess.TimeoutExpired:
                    pass
            for stream in streams.values():
                stream.tick(time.monotonic())
    finally:
        selector.close()
        for stream in streams.values():
            stream.close()
    return timed_out


def run_command(argv: list[str], repo: Path, log_name: str, timeout_s: float, env: dict | None = None,
                log: Callable[[str], None] | None = None) -> dict:
    """Run one command in ``repo``: stdout/stderr to files and, line by line while it runs, to ``log``
    (e.g. a Prefect run logger's ``info``); stop it (SIGINT, then SIGKILL) at the limit."""
    logs = repo / ".dvc" / "tmp" / "flow-logs" if (repo / ".dvc").is_dir() else repo / ".flow-logs"
    logs.mkdir(parents=True, exist_ok=True)
    out_path, err_path = logs / f"{log_name}.out", logs / f"{log_name}.err"
    # a pipe makes Python block-buffer print(): without this a stage's prints would arrive when it ends
    command_extra = {"PYTHONUNBUFFERED": "1", **(env or {})}
    started = time.monotonic()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        process = subprocess.Popen(argv, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   stdin=subprocess.DEVNULL, env=command_env(command_extra), start_new_session=True)
        try:
            timed_out = _follow(process, {process.stdout: StreamLog(out, log), process.stderr: StreamLog(err, log)},
                                started + timeout_s)
            process.wait()
        except BaseException:
            _signal_group(process, signal.SIGKILL)
            process.wait()
            raise
        finally:
            process.stdout.close()
            process.stderr.close()
    return {"returncode": process.returncode, "timed_out": timed_out, "seconds": round(time.monotonic() - started, 1),
            "stdout": out_path.read_text(errors="replace"), "stderr_tail": _tail(err_path),
            "stdout_tail": _tail(out_path)}
