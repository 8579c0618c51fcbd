"""One writer per rating session: an exclusive ``flock`` on ``<session>/.writer.lock``.

The kernel drops the lock when its process ends, however it ends (kill -9 included), so a stale lock cannot
exist; the file only says who holds it (pid, host, since when, the page's URL) for the refusal message.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from vgan.util.errors import DataError

LOCK_FILE = ".writer.lock"


class SessionLock:
    """Held from the moment a session is opened until ``release()``; a second holder is refused in one line."""

    def __init__(self, folder: Path):
        self.path = folder / LOCK_FILE
        self.descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder()
            os.close(self.descriptor)
            raise DataError(f"session {folder} is open in another `vgan rate` ({holder}); answer on that page, or "
                            f"stop that command before starting this one (two writers would lose answers)") from None
        self.since = time.strftime("%Y-%m-%dT%H:%M:%S")
        self.announce(None)

    def _holder(self) -> str:
        try:
            owner = json.loads(os.pread(self.descriptor, 4096, 0) or b"{}")
        except (OSError, ValueError):
            owner = {}
        if not isinstance(owner, dict) or not owner:
            return "its owner is starting"
        where = f"pid {owner.get('pid', '?')} on {owner.get('host', '?')} since {owner.get('since', '?')}"
        return where + (f", serving {owner['url']}" if owner.get("url") else "")

    def announce(self, url: str | None) -> None:
        """Record the holder, and the page's URL once it is served (the refusal message points there)."""
        owner = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": self.since, "url": url})
        os.ftruncate(self.descriptor, 0)
        os.pwrite(self.descriptor, owner.encode(), 0)

    def release(self) -> None:
        if self.descriptor is not None:
            fcntl.flock(self.descriptor, fcntl.LOCK_UN)
            os.close(self.descriptor)
            self.descriptor = None
