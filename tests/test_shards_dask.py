"""The shards stage on a real Dask cluster (scheduler + workers as subprocesses on loopback): the same
bytes as the local pool, the same quarantine, a worker killed mid-job, an unreachable scheduler."""

import hashlib
import os
import shutil
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import run_cli, write_tiny_params
from servers import free_port, start_dask_scheduler, start_dask_worker
from test_shards import ffmpeg, lavfi_video, make_params, write_index
from vgan.data.shards import build_shards

pytestmark = pytest.mark.slow
distributed = pytest.importorskip("distributed")


def digests(folder: Path) -> dict[str, str]:
    """sha256 of every file in a shards folder (every .tar and manifest.json)."""
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A scheduler and two one-thread workers; yields (scheduler, a client of the test's own)."""
    scheduler = start_dask_scheduler(tmp_path_factory.mktemp("dask"))
    workers = [start_dask_worker(scheduler, f"worker-{number}") for number in range(2)]
    client = distributed.Client(scheduler.url, timeout=30, set_as_default=False)
    try:
        client.wait_for_workers(2, timeout=60)
        yield scheduler, client
    finally:
        client.close()
        for server in [*workers, scheduler]:
            server.stop()


@pytest.fixture(scope="module")
def raw_videos(tmp_path_factory):
    """14 small real videos in two classes, one truncated mp4, one FIFO whose decode times out."""
    raw = tmp_path_factory.mktemp("raw")
    names = []
    for number in range(14):
        name = f"class{number % 2}/v{number:02d}.mp4"
        (raw / name).parent.mkdir(exist_ok=True)
        lavfi_video(raw / name, hue=number * 25)
        names.append(name)
    ffmpeg("-i", raw / names[0], "-c", "copy", "-movflags", "+faststart", raw / "whole.mp4")
    data = (raw / "whole.mp4").read_bytes()
    (raw / "corrupt.mp4").write_bytes(data[: len(data) // 2])
    (raw / "whole.mp4").unlink()
    os.mkfifo(raw / "hangs.mp4")  # opening it blocks, like a stalled mount: the decode timeout must fire
    write_index(raw, names + ["corrupt.mp4", "hangs.mp4"])
    return raw


@pytest.fixture(scope="module")
def local_shards(raw_videos, tmp_path_factory):
    """The reference: the local process pool with two workers."""
    out = tmp_path_factory.mktemp("local") / "shards"
    manifest = build_shards(make_params(raw_videos, out, workers=2, shard_mb=0.01, decode_timeout_s=3))
    return out, manifest


def test_dask_writes_the_same_bytes_and_quarantine_as_the_local_pool(cluster, raw_videos, local_shards, tmp_path):
    scheduler, _ = cluster
    local_out, local_manifest = local_shards
    executor = scheduler.url.replace("tcp://", "dask://")
    manifest = build_shards(make_params(raw_videos, tmp_path / "shards", executor=executor, shard_mb=0.01,
                                        decode_timeout_s=3))

    assert digests(tmp_path / "shards") == digests(local_out)
    assert len(local_manifest["shards"]["train"]) > 2  # several size-capped shards, written in input order
    reasons = {item["path"]: item["reason"] for item in manifest["quarantine"]}
    assert reasons == {item["path"]: item["reason"] for item in local_manifest["quarantine"]}
    assert set(reasons) == {"corrupt.mp4", "hangs.mp4"}
    assert "truncated" in reasons["corrupt.mp4"] and "timed out" in reasons["hangs.mp4"]
    assert "executor" not in manifest["params"]


def test_a_worker_killed_mid_job_changes_no_byte(cluster, raw_videos, tmp_path):
    scheduler, client = cluster
    # 45 inputs (hard links of the 14 videos and the corrupt one): long enough to kill a worker while it works
    raw = tmp_path / "raw"
    names = []
    for copy in range(3):
        for source in sorted(path for path in raw_videos.rglob("*.mp4") if path.is_file()):  # not the FIFO
            name = f"copy{copy}/{source.relative_to(raw_videos)}"
            (raw / name).parent.mkdir(parents=True, exist_ok=True)
            os.link(source, raw / name)
            names.append(name)
    write_index(raw, names)
    reference = build_shards(make_params(raw, tmp_path / "local", workers=2, shard_mb=0.01))

    victim = start_dask_worker(scheduler, "victim")
    try:
        client.wait_for_workers(3, timeout=60)
        victim_address = next(address for address, info in client.scheduler_info(n_workers=-1)["workers"].items()
                              if info["name"] == "victim")
        params = make_params(raw, tmp_path / "dask", executor=scheduler.url.replace("tcp://", "dask://"),
                             shard_mb=0.01)
        with ThreadPoolExecutor(1) as runner:
            job = runner.submit(build_shards, params)
            while not client.processing([victim_address]).get(victim_address) and not job.done():
                time.sleep(0.01)
            assert not job.done(), "the job finished before the victim held a task: make it longer"
            os.kill(victim.process.pid, signal.SIGKILL)
            manifest = job.result(timeout=300)
        victim.process.wait(timeout=10)
    finally:
        victim.stop()

    assert victim_address not in client.scheduler_info(n_workers=-1)["workers"]  # the loss was real
    assert digests(tmp_path / "dask") == digests(tmp_path / "local")
    assert manifest == reference and len(manifest["quarantine"]) == 3


def test_an_unreachable_scheduler_is_one_line_and_keeps_the_last_output(raw_videos, local_shards, tmp_path):
    local_out, _ = local_shards
    out = tmp_path / "shards"
    shutil.copytree(local_out, out)
    before = digests(out)
    write_tiny_params(tmp_path / "params.yaml", data__raw_dir=str(raw_videos), shards__out_dir=str(out))
    address = f"127.0.0.1:{free_port()}"  # bound and released: nothing listens there
    result = run_cli("vgan", "shards", "--set", f"shards.executor=dask://{address}", cwd=tmp_path, check=False)

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"cannot reach a Dask scheduler at tcp://{address}" in lines[0] and "shards.executor=local" in lines[0]
    assert digests(out) == before
