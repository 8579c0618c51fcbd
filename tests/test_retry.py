"""vgan.util.retry: how often it tries, how long it waits between tries, and what it lets through."""

import pytest

from vgan.util import retry as retry_module
from vgan.util.retry import retry


@pytest.fixture
def waits(monkeypatch):
    """The seconds retry() waits, recorded instead of slept."""
    slept = []
    monkeypatch.setattr(retry_module.time, "sleep", slept.append)
    return slept


def failing(times: int, exc: Exception, result="done"):
    """A call that raises ``exc`` its first ``times`` calls, then returns ``result``; ``calls`` counts them."""
    def call():
        call.calls += 1
        if call.calls <= times:
            raise exc
        return result
    call.calls = 0
    return call


def test_retries_until_it_succeeds_doubling_the_wait(waits):
    call = failing(3, ConnectionError("reset"))
    assert retry(call, attempts=5, retry_if=lambda exc: True, base_delay=0.5) == "done"
    assert call.calls == 4 and waits == [0.5, 1.0, 2.0]


def test_the_wait_is_capped(waits):
    call = failing(4, ConnectionError("reset"))
    retry(call, attempts=5, retry_if=lambda exc: True, base_delay=1.0, max_delay=3.0)
    assert waits == [1.0, 2.0, 3.0, 3.0]


def test_gives_up_with_the_last_failure_and_no_wait_after_it(waits):
    call = failing(10, TimeoutError("slow"))
    with pytest.raises(TimeoutError, match="slow"):
        retry(call, attempts=3, retry_if=lambda exc: True, base_delay=0.5)
    assert call.calls == 3 and waits == [0.5, 1.0]


def test_a_failure_not_worth_a_retry_goes_through_at_once(waits):
    call = failing(10, ValueError("bad input"))
    with pytest.raises(ValueError, match="bad input"):
        retry(call, attempts=5, retry_if=lambda exc: isinstance(exc, ConnectionError), base_delay=0.5)
    assert call.calls == 1 and waits == []


def test_fewer_than_one_attempt_still_calls_once(waits):
    call = failing(0, ConnectionError("reset"))
    assert retry(call, attempts=0, retry_if=lambda exc: True, base_delay=0.5) == "done" and call.calls == 1


def test_jitter_stretches_each_wait_by_at_most_its_fraction(waits):
    retry(failing(20, ConnectionError("reset")), attempts=21, retry_if=lambda exc: True, base_delay=1.0,
          max_delay=1.0, jitter=0.25)
    assert all(1.0 <= wait <= 1.25 for wait in waits) and len(set(waits)) > 1
