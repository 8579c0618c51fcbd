"""Data-path benchmark: shards throughput vs plain ffmpeg decode, Dask vs local pool, loader clips/s, shards peak memory.

    .venv/bin/python bench/bench_data.py              # a few minutes on 2 cores; writes bench/results/data.json
    .venv/bin/python bench/bench_data.py --dask-only  # the Dask row alone; writes bench/results/data_dask.json

Timings are compared as ratios inside one run (the machine may be shared); each side keeps its best of
`--repeats` runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vgan.params import default_params  # noqa: E402

SOURCES = ("testsrc2", "mandelbrot", "life", "rgbtestsrc", "smptebars", "cellauto")


def make_videos(folder: Path, count: int, size: str, seconds: float, rate: int) -> list[str]:
    """Synthetic H.264 videos from ffmpeg's lavfi sources, written in parallel."""
    folder.mkdir(parents=True, exist_ok=True)

    def one(number: int) -> str:
        name = f"v{number:04d}.mp4"
        source = SOURCES[number % len(SOURCES)]
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                        f"{source}=size={size}:rate={rate}", "-t", str(seconds), "-vf", f"hue=h={number * 7}",
                        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(folder / name)],
                       check=True)
        return name

    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        return list(pool.map(one, range(count)))


def write_index(raw: Path, names: list[str]) -> None:
    videos = [{"path": name, "label": number % 2, "split": None} for number, name in enumerate(names)]
    (raw / "index.json").write_text(json.dumps({"source": "bench", "label_names": ["a", "b"], "videos": videos}))


def plain_decode_seconds(paths: list[Path], workers: int) -> float:
    """`ffmpeg -i X -f null -` over every file, `workers` at a time."""
    def one(path: Path) -> None:
        subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-f", "null", "-"], check=True)

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, paths))
    return time.perf_counter() - start


def shards_seconds(raw: Path, out: Path, workers: int, executor: str = "local") -> tuple[float, dict]:
    from vgan.data.shards import build_shards

    params = default_params(data={"raw_dir": str(raw)}, shards={
        "out_dir": str(out), "clip_frames": 16, "size": 64, "clips_per_video": 0, "workers": workers,
        "executor": executor})
    start = time.perf_counter()
    manifest = build_shards(params)
    return time.perf_counter() - start, manifest


@contextmanager
def dask_cluster(workers: int, log_dir: Path):
    """`dask scheduler` + `workers` one-thread `dask worker`s on loopback, as docs/deploy.md starts them;
    yields the `dask://` address for shards.executor."""
    from distributed import Client

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dask = str(Path(sys.executable).parent / "dask")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argvs = [[dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"]]
    argvs += [[dask, "worker", f"tcp://127.0.0.1:{port}", "--nthreads", "1", "--no-nanny", "--no-dashboard",
               "--local-directory", str(log_dir / f"worker{number}")] for number in range(workers)]
    processes = []
    try:
        for number, argv in enumerate(argvs):
            with open(log_dir / f"dask{number}.log", "wb") as log:
                processes.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                                  start_new_session=True))
        with Client(f"tcp://127.0.0.1:{port}", timeout=60, set_as_default=False) as client:
            client.wait_for_workers(workers, timeout=60)
        yield f"dask://127.0.0.1:{port}"
    finally:
        for process in reversed(processes):
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


def digests(folder: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


def dask_vs_local(raw: Path, work: Path, workers: int, repeats: int) -> dict:
    """The same shards by `workers` Dask workers (one thread each) and by the local pool of `workers`;
    ratio = local seconds / Dask seconds (1 = no cost for going through a scheduler over tcp). Each local run
    starts its pool (forkserver workers importing vgan) as `vgan shards` does; the Dask workers are already
    running, as a cluster's are."""
    log_dir = work / "dask"
    log_dir.mkdir(parents=True, exist_ok=True)
    local, remote = [], []
    with dask_cluster(workers, log_dir) as executor:
        for _ in range(repeats):
            local.append(shards_seconds(raw, work / "local_shards", workers)[0])
            seconds, manifest = shards_seconds(raw, work / "dask_shards", workers, executor)
            remote.append(seconds)
    return {"videos": len(manifest["inputs"]), "workers": workers, "clips": sum(manifest["counts"].values()),
            "local_pool_s": round(min(local), 3), "dask_s": round(min(remote), 3),
            "ratio": round(min(local) / min(remote), 3),
            "identical_bytes": digests(work / "local_shards") == digests(work / "dask_shards")}


def loader_clips_per_s(out: Path, workers: int, batch_size: int, min_clips: int, uint8: bool) -> tuple[float, int]:
    """uint8=True is what `vgan train` reads (widened to float on the training device); False: float on the host."""
    from vgan.data.loader import make_loader, shard_paths

    loader = make_loader(shard_paths(out, "train"), batch_size, shuffle_buffer=256, num_workers=workers, seed=0,
                         uint8=uint8)
    per_epoch = sum(len(labels) for _, labels in loader)  # warm-up pass: starts the workers, fills the page cache
    start, clips = time.perf_counter(), 0
    for _ in range(-(-min_clips // per_epoch)):
        for video, labels in loader:
            clips += len(labels)
            int(video.view(-1)[::1024].sum())  # touch every page, as a consumer would
    return clips / (time.perf_counter() - start), clips


PEAK_SCRIPT = """
import json, sys
from vgan.data.shards import build_shards
from vgan.params import default_params
if __name__ == "__main__":
    manifest = build_shards(default_params(data={"raw_dir": sys.argv[1]}, shards={
        "out_dir": sys.argv[2], "clip_frames": 8, "size": 64, "clips_per_video": 2, "workers": 2}))
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent we were forked from
    peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
    print(json.dumps({"main_kb": peak_kb,
                      "clips": sum(manifest["counts"].values())}))
"""


def shards_peak_memory(template: list[Path], raw: Path, out: Path, count: int) -> dict:
    """Peak RSS (MiB) of a separate `shards` process over `count` videos (hard links of a few templates)."""
    raw.mkdir(parents=True, exist_ok=True)
    names = []
    for number in range(count):
        name = f"copy{number:04d}.mp4"
        os.link(template[number % len(template)], raw / name)
        names.append(name)
    write_index(raw, names)
    done = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(raw), str(out)], check=True,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    report = json.loads(done.stdout.strip().splitlines()[-1])
    # pool workers are the forkserver's children, not ours: ru_maxrss sees the main process only
    return {"videos": count, "clips": report["clips"], "main_peak_mib": round(report["main_kb"] / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=48)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--dask-only", action="store_true", help="only the Dask vs local pool row")
    parser.add_argument("--out", default=None, help="default bench/results/data.json (data_dask.json with --dask-only)")
    args = parser.parse_args()
    out = Path(args.out or REPO / "bench" / "results" / ("data_dask.json" if args.dask_only else "data.json"))
    work = Path(tempfile.mkdtemp(prefix="vgan-bench-data-"))
    try:
        raw = work / "raw"
        # UCF101-like inputs: 320x240, 25 fps, 6 s
        names = make_videos(raw, args.videos, "320x240", 6.0, 25)
        write_index(raw, names)
        dask = dask_vs_local(raw, work, args.workers, args.repeats)
        if args.dask_only:
            report({"dask": dask}, [dask_row(dask)], out)
            return
        paths = [raw / name for name in names]
        plain, ours, manifest = [], [], None
        for repeat in range(args.repeats):
            plain.append(plain_decode_seconds(paths, args.workers))
            seconds, manifest = shards_seconds(raw, work / "shards", args.workers)
            ours.append(seconds)
        frames = sum(1 for _ in paths) * 150
        throughput = {"videos": len(paths), "source_frames": frames, "workers": args.workers,
                      "ffmpeg_null_s": round(min(plain), 3), "shards_s": round(min(ours), 3),
                      "ratio": round(min(plain) / min(ours), 3), "clips": sum(manifest["counts"].values())}

        loader_out = work / "loader_shards"
        many = make_videos(work / "loader_raw", 8, "96x96", 16.0, 25)  # 400 frames: 25 clips each
        write_index(work / "loader_raw", many)
        shards_seconds(work / "loader_raw", loader_out, args.workers)
        clips_per_s, clips = loader_clips_per_s(loader_out, 2, batch_size=64, min_clips=8000, uint8=True)
        float_per_s, _ = loader_clips_per_s(loader_out, 2, batch_size=64, min_clips=8000, uint8=False)
        loader = {"clip_shape": [16, 64, 64, 3], "workers": 2, "batch_size": 64, "clips": clips,
                  "clips_per_s": round(clips_per_s, 1), "output": "uint8 (B,T,H,W,C), as vgan train reads it",
                  "float_on_host_clips_per_s": round(float_per_s, 1)}

        template = make_videos(work / "templates", 10, "128x96", 3.0, 10)
        template_paths = [work / "templates" / name for name in template]
        small = shards_peak_memory(template_paths, work / "mem50", work / "mem50_shards", 50)
        large = shards_peak_memory(template_paths, work / "mem500", work / "mem500_shards", 500)
        memory = {"50": small, "500": large,
                  "main_ratio_500_vs_50": round(large["main_peak_mib"] / small["main_peak_mib"], 3)}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    results = {"throughput": throughput, "dask": dask, "loader": loader, "memory": memory,
               "targets": {"throughput_ratio": ">= 0.7", "loader_clips_per_s": ">= 1500",
                           "memory_ratio": "<= 1.2"}}
    rows = [
        ("decode+resize+shard vs ffmpeg -f null", f"{throughput['shards_s']:.2f} s vs {throughput['ffmpeg_null_s']:.2f} s",
         f"ratio {throughput['ratio']:.2f}", ">= 0.7"),
        dask_row(dask),
        ("loader 16x64x64, 2 workers (train path)", f"{clips} clips, uint8", f"{loader['clips_per_s']:.0f} clips/s",
         ">= 1500"),
        ("loader, float32 built on the host", f"{clips} clips, float", f"{float_per_s:.0f} clips/s", ""),
        ("shards peak RSS, 50 videos", f"{small['clips']} clips", f"{small['main_peak_mib']} MiB", ""),
        ("shards peak RSS, 500 videos", f"{large['clips']} clips", f"{large['main_peak_mib']} MiB", ""),
        ("peak RSS ratio 500 / 50", "", f"{memory['main_ratio_500_vs_50']:.2f}", "<= 1.2"),
    ]
    report(results, rows, out)


def dask_row(dask: dict) -> tuple[str, str, str, str]:
    same = "same bytes" if dask["identical_bytes"] else "BYTES DIFFER"
    return (f"shards: Dask {dask['workers']} workers vs local pool", f"{dask['dask_s']:.2f} s vs {dask['local_pool_s']:.2f} s",
            f"{dask['ratio']:.2f}x, {same}", "same bytes")


def report(results: dict, rows: list[tuple], out: Path) -> None:
    """Print the table and write the JSON (with the machine it ran on)."""
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(),
               "load_average_1m_at_end": round(os.getloadavg()[0], 2),
               "ffmpeg": subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split("\n")[0]}
    print(f"{'measure':<40} {'detail':<26} {'result':<20} target")
    for row in rows:
        print(f"{row[0]:<40} {row[1]:<26} {row[2]:<20} {row[3]}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine, **results}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
