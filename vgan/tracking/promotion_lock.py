"""The promotion lock: one promotion of a registered model at a time, across processes and hosts.

Creating a registered model is atomic in the MLflow store, so the lock is a registered model named
``<model>.promotion-lock`` whose tags name its owner (host, pid) and a lease the owner renews; a waiter takes over a
lock whose owner died on this host or stopped renewing it. Used by ``vgan.tracking.registry``.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import sys
import threading
import time
import uuid

from vgan.tracking.runs import is_transient, retrying
from vgan.util.errors import TrackingError

LOCK_SUFFIX = ".promotion-lock"
LOCK_WAIT_S = 300.0
LOCK_LEASE_S = 30.0  # a lock whose owner stops renewing it for this long is abandoned


def _owner_alive(tags: dict) -> bool | None:
    """Whether the process holding a lock still runs: known only on its own host (None elsewhere)."""
    if tags.get("vgan.lock_host") != socket.gethostname():
        return None
    try:
        os.kill(int(tags.get("vgan.lock_pid", "")), 0)
    except ProcessLookupError:
        return False
    except (ValueError, OverflowError):
        return None
    except PermissionError:  # another user's live process
        return True
    return True


def _holder(tags: dict) -> str:
    since = float(tags.get("vgan.locked_at", "0") or 0)
    return (f"pid {tags.get('vgan.lock_pid', '?')} on {tags.get('vgan.lock_host', '?')} since "
            f"{time.strftime('%H:%M:%S', time.localtime(since))}")


def _stale(tags: dict) -> str | None:
    """Why a held lock is abandoned (its owner died on this host, or its lease ran out), else None."""
    if _owner_alive(tags) is False:
        return "its owner is no longer running"
    locked_at = float(tags.get("vgan.locked_at", "0") or 0)
    lease_until = float(tags.get("vgan.lease_until", "0") or 0) or locked_at + LOCK_LEASE_S
    if time.time() > lease_until:
        return f"its lease ran out {time.time() - lease_until:.0f} s ago"
    return None


def _keep_lease(client, lock_name: str, stop) -> None:
    """Renew the lease while the lock is held: a hung or killed owner on another host loses it in LOCK_LEASE_S."""
    while not stop.wait(LOCK_LEASE_S / 3):
        with contextlib.suppress(Exception):
            client.set_registered_model_tag(lock_name, "vgan.lease_until", f"{time.time() + LOCK_LEASE_S:.3f}")


@contextlib.contextmanager
def promotion_lock(client, name: str):
    """Mutual exclusion across processes and hosts: creating a registered model is atomic in the store. The lock
    names its owner (host, pid) and holds a lease the owner renews, so an abandoned one is taken over in seconds."""
    lock_name = f"{name}{LOCK_SUFFIX}"
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + LOCK_WAIT_S
    announced = None
    # a poll until a deadline, not vgan.util.retry: it waits on a holder (named, taken over when stale), not on
    # a failing call
    while True:
        now = time.time()
        try:
            client.create_registered_model(
                lock_name, tags={"vgan.lock_owner": owner, "vgan.lock_host": socket.gethostname(),
                                 "vgan.lock_pid": str(os.getpid()), "vgan.locked_at": f"{now:.3f}",
                                 "vgan.lease_until": f"{now + LOCK_LEASE_S:.3f}"},
                description=f"held while vgan promotes a version of {name}; safe to delete if no promotion runs")
            break
        except Exception as exc:  # noqa: BLE001
            if getattr(exc, "error_code", None) != "RESOURCE_ALREADY_EXISTS" and not is_transient(exc):
                raise
        tags = {}
        with contextlib.suppress(Exception):
            tags = dict(client.get_registered_model(lock_name).tags)
        if tags and (why := _stale(tags)):
            with contextlib.suppress(Exception):  # only the lock seen abandoned, not one a rival just took
                if client.get_registered_model(lock_name).tags.get("vgan.lock_owner") == tags.get("vgan.lock_owner"):
                    client.delete_registered_model(lock_name)
                    print(f"registry: took over the promotion lock of {name} from {_holder(tags)}: {why}",
                          file=sys.stderr, flush=True)
            continue
        if tags and tags.get("vgan.lock_owner") != announced:
            announced = tags.get("vgan.lock_owner")
            print(f"registry: waiting for the promotion lock of {name} ({lock_name!r}), held by {_holder(tags)}; "
                  f"it is taken over if that process ends or stops renewing it for {LOCK_LEASE_S:.0f} s",
                  file=sys.stderr, flush=True)
        if time.monotonic() > deadline:
            holder = _holder(tags) if tags else "another promotion"
            raise TrackingError(f"the promotion lock of {name} ({lock_name!r}) is still held by {holder} after "
                                f"{LOCK_WAIT_S:.0f} s; delete that registered model if no promotion is running")
        time.sleep(0.1 + random.random() * 0.4)
    stop = threading.Event()
    lease = threading.Thread(target=_keep_lease, args=(client, lock_name, stop), daemon=True)
    lease.start()
    try:
        yield
    finally:
        stop.set()
        lease.join()
        retrying("releasing the promotion lock", lambda: client.delete_registered_model(lock_name))
