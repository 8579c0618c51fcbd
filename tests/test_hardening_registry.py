"""The promotion lock (issue 29): one left by a killed promotion is taken over in seconds, not after 15 minutes,
and a waiter says whose lock it waits for."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from vgan.tracking import promotion_lock
from vgan.util.errors import TrackingError

NAME = "vgan-lock-test"
LOCK = NAME + promotion_lock.LOCK_SUFFIX


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    import mlflow

    return mlflow.MlflowClient(f"sqlite:///{tmp_path_factory.mktemp('registry')}/mlflow.db")


@pytest.fixture
def client(store, monkeypatch):
    monkeypatch.setattr(promotion_lock, "LOCK_WAIT_S", 3.0)  # the old code would wait here, then give up
    monkeypatch.setenv("VGAN_TRACKING_RETRIES", "1")
    yield store
    for leftover in store.search_registered_models(f"name = '{LOCK}'"):
        store.delete_registered_model(leftover.name)


def hold(client, host: str, pid: int, locked_at: float, lease_until: float | None = None) -> None:
    """A lock as another promotion leaves it."""
    tags = {"vgan.lock_owner": f"{host}:{pid}:deadbeef", "vgan.lock_host": host, "vgan.lock_pid": str(pid),
            "vgan.locked_at": f"{locked_at:.3f}"}
    if lease_until is not None:
        tags["vgan.lease_until"] = f"{lease_until:.3f}"
    client.create_registered_model(LOCK, tags=tags)


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def acquire_seconds(client) -> float:
    started = time.monotonic()
    with promotion_lock.promotion_lock(client, NAME):
        assert client.get_registered_model(LOCK).tags["vgan.lock_owner"].startswith(socket.gethostname())
    assert not client.search_registered_models(f"name = '{LOCK}'")  # released
    return time.monotonic() - started


def test_a_lock_whose_owner_died_on_this_host_is_taken_over_at_once(client, capsys):
    now = time.time()
    hold(client, socket.gethostname(), dead_pid(), now, now + 600)  # killed inside the lock a moment ago
    assert acquire_seconds(client) < 2
    err = capsys.readouterr().err
    assert f"registry: took over the promotion lock of {NAME} from pid" in err and "no longer running" in err


def test_a_lock_from_another_host_whose_lease_ran_out_is_taken_over(client, capsys):
    now = time.time()
    hold(client, "other-host.example", 4242, now - 40, now - 5)
    assert acquire_seconds(client) < 2
    err = capsys.readouterr().err
    assert "from pid 4242 on other-host.example" in err and "its lease ran out 5 s ago" in err


def test_a_waiter_says_whose_lock_it_waits_for_and_gives_up_naming_it(client, capsys):
    now = time.time()
    hold(client, socket.gethostname(), 1, now, now + 600)  # pid 1 is alive: a promotion in progress
    with pytest.raises(TrackingError, match=r"still held by pid 1 on .* after 3 s; delete that registered model"), \
            promotion_lock.promotion_lock(client, NAME):
        pass
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"registry: waiting for the promotion lock of {NAME} ('{LOCK}'), "
                                               f"held by pid 1 on {socket.gethostname()} since "), err


def test_the_lease_is_renewed_while_the_lock_is_held(client, monkeypatch):
    monkeypatch.setattr(promotion_lock, "LOCK_LEASE_S", 0.6)
    with promotion_lock.promotion_lock(client, NAME):
        first = float(client.get_registered_model(LOCK).tags["vgan.lease_until"])
        time.sleep(0.9)
        assert float(client.get_registered_model(LOCK).tags["vgan.lease_until"]) > first  # a live owner keeps it
