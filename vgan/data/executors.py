"""Where the shards stage decodes: a local process pool or a Dask cluster (`shards.executor`).

Both map the decode function over the videos and hand the results back in input order, with a bounded
number in flight, so the one writer in the driver writes the same bytes whichever executor ran the
decodes. Workers get no say in the output: they return a video's clips (or its quarantine reason) and
the driver alone writes shards and manifest, so a worker lost mid-job cannot corrupt them.

Why Dask and not Ray: `distributed` is a pure-Python wheel that installs from PyPI in seconds, a real
scheduler + worker cluster is two commands (`dask scheduler`, `dask worker`), and it re-runs the tasks
of a lost worker on the survivors out of the box; Ray is a large binary wheel with its own runtime.
Prefect's task runners (which can also target Dask) do not apply directly: `vgan shards` is a DVC stage
run as a subprocess, so the fan-out has to live inside the stage itself.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from concurrent.futures import CancelledError, ProcessPoolExecutor
from contextlib import contextmanager
from itertools import islice

from vgan.util.errors import DataError

# seconds to reach the scheduler and to see at least one worker: long enough for a busy scheduler on a
# LAN, short enough that a wrong address fails while the user is still watching
DASK_CONNECT_TIMEOUT_S = 10


class LocalPool:
    """`workers` processes on this machine (one: decode in this process, no pool)."""

    def __init__(self, workers: int):
        self.workers = workers
        # several decodes share the cores: one ffmpeg thread each; alone, ffmpeg picks its own
        self.ffmpeg_threads = 1 if workers > 1 else 0

    def map_in_order(self, fn, items):
        """`fn` over `items` in a process pool, results in input order, at most 2 × workers in flight."""
        if self.workers <= 1:
            yield from map(fn, items)
            return
        items = iter(items)
        # forkserver: a parent that has started threads (Prefect, tqdm) cannot fork safely
        context = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(self.workers, mp_context=context) as pool:
            pending = deque(pool.submit(fn, item) for item in islice(items, 2 * self.workers))
            while pending:
                result = pending.popleft().result()
                for item in islice(items, 1):
                    pending.append(pool.submit(fn, item))
                yield result

    def close(self) -> None:
        pass


class DaskCluster:
    """A running Dask scheduler at `dask://host:port` (tcp) and its workers.

    Workers unpickle `fn` by reference, so they need this version of `vgan` importable (PYTHONPATH or
    an install) and must see the raw videos at the same absolute paths as the driver (a shared
    filesystem); the shards are written by the driver only.
    """

    ffmpeg_threads = 1  # a worker runs one decode per thread

    def __init__(self, executor: str, timeout_s: float = DASK_CONNECT_TIMEOUT_S):
        from distributed import Client  # only a Dask run needs distributed

        self.address = "tcp://" + executor.removeprefix("dask://")
        self.timeout_s = timeout_s
        hint = "start it with `dask scheduler` or set shards.executor=local"
        try:
            self.client = Client(self.address, timeout=timeout_s, set_as_default=False)
        except OSError as err:
            reason = f"no answer within {timeout_s:g} s" if "Timed out" in str(err) else _first_line(err)
            raise DataError(f"shards.executor={executor}: cannot reach a Dask scheduler at {self.address} "
                            f"({reason}); {hint}") from None
        try:
            self.client.wait_for_workers(1, timeout=timeout_s)
        except TimeoutError:
            self.client.close()
            raise DataError(f"shards.executor={executor}: the Dask scheduler at {self.address} has no workers "
                            f"after {timeout_s:g} s; start some with `dask worker {self.address}`") from None

    def map_in_order(self, fn, items):
        """`fn` over `items` as cluster tasks, results in input order, at most 2 × the cluster's threads
        in flight (counted when the map starts)."""
        in_flight = 2 * max(1, sum(self.client.nthreads().values()))
        items = iter(items)
        # pure=False: every video is its own task, never merged with an equal-looking one
        pending = deque(self.client.submit(fn, item, pure=False) for item in islice(items, in_flight))
        try:
            while pending:
                result = self._result(pending.popleft())
                for item in islice(items, 1):
                    pending.append(self.client.submit(fn, item, pure=False))
                yield result
        finally:
            # an error or an abandoned map: free the cluster of work nobody will read
            if pending and self.client.status == "running":
                self.client.cancel(list(pending))

    def _result(self, future):
        """The task's result; a cluster left without workers or scheduler is an error, never a hang.
        (A lost worker alone is not: the scheduler re-runs its tasks on the others.)"""
        from distributed import KilledWorker

        while True:
            try:
                return future.result(timeout=self.timeout_s)
            except TimeoutError:
                # a slow video is fine while the cluster has workers; with none, the wait would never end
                try:
                    self.client.wait_for_workers(1, timeout=self.timeout_s)
                except (TimeoutError, OSError):
                    raise DataError(f"the Dask cluster at {self.address} has had no worker for {self.timeout_s:g} s "
                                    f"(a worker that cannot import vgan exits on its first task: see the workers' "
                                    f"logs); start workers or set shards.executor=local") from None
            except KilledWorker as err:
                # the scheduler gave up after the task's workers died `allowed-failures` times
                raise DataError(f"Dask workers at {self.address} kept dying on one video ({_first_line(err)}); "
                                f"see the workers' logs (memory limit?) or set shards.executor=local") from None
            except CancelledError:
                raise DataError(f"lost the Dask scheduler at {self.address} mid-run (no manifest was written); "
                                f"rerun when it is back or set shards.executor=local") from None

    def close(self) -> None:
        self.client.close()


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else err.__class__.__name__


@contextmanager
def open_executor(executor: str, workers: int):
    """A LocalPool (`local`) or a connected DaskCluster (`dask://host:port`), closed on exit.

    Connecting happens here, on entry, so an unreachable cluster fails before anything is written."""
    pool = DaskCluster(executor) if executor.startswith("dask://") else LocalPool(workers)
    try:
        yield pool
    finally:
        pool.close()
