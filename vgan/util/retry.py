"""One retry loop with exponential back-off, for the downloads (``vgan.data.download``) and the MLflow store
(``vgan.tracking.runs``). Callers decide which failures are worth another try and what to say when none is left.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def retry(call: Callable[[], T], *, attempts: int, retry_if: Callable[[Exception], bool], base_delay: float,
          max_delay: float = math.inf, jitter: float = 0.0) -> T:
    """``call()``'s result, trying up to ``attempts`` times (at least once) while it raises an exception that
    ``retry_if`` accepts; waits ``base_delay``, then twice that, four times... (each at most ``max_delay``, then
    stretched by a random 0 .. ``jitter`` of itself) between tries. Raises the last failure, or the first that
    ``retry_if`` refuses, as it was raised."""
    for attempt in range(max(1, attempts)):
        try:
            return call()
        except Exception as exc:
            if attempt + 1 >= attempts or not retry_if(exc):
                raise
        wait = min(max_delay, base_delay * 2**attempt)
        time.sleep(wait * (1 + random.random() * jitter) if jitter else wait)
    raise AssertionError("unreachable")
