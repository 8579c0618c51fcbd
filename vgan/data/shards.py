"""The shards stage: decode every raw video into clips and write WebDataset shards plus a manifest."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
import tarfile
import typing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vgan.data.executors import open_executor
from vgan.data.video import VideoError, decode_video
from vgan.util.errors import DataError
from vgan.util.io import MANIFEST_FILE, sha256_file, write_json

SPLITS = ("train", "val")
SHARD_PATTERN = "{split}-{index:06d}.tar"
SHARD_NAME = re.compile(rf"(?:{'|'.join(SPLITS)})-[0-9]{{6}}\.tar")
OWNED_FILE = ".shards-owned.json"  # shards this folder's runs wrote that no manifest lists yet (a run in progress)


@dataclass(frozen=True)
class ClipSpec:
    """How one video becomes clips: everything a worker needs, picklable."""

    size: int
    fps: float | None
    resize_mode: str
    clip_frames: int
    frame_stride: int
    clips_per_video: int
    timeout_s: float
    threads: int

    @property
    def span(self) -> int:
        return (self.clip_frames - 1) * self.frame_stride + 1


@dataclass
class VideoResult:
    task: dict
    sha256: str | None = None
    fps: float = 0.0
    clips: list[tuple[int, np.ndarray]] = field(default_factory=list)
    reason: str | None = None
    stderr_tail: str = ""


def clip_starts(num_frames: int, span: int, clips_per_video: int) -> list[int]:
    """Start frames: `clips_per_video` evenly spaced windows, or every non-overlapping one when 0."""
    if num_frames < span:
        return []
    last = num_frames - span
    if clips_per_video == 0:
        return list(range(0, last + 1, span))
    if clips_per_video == 1:
        return [last // 2]
    starts = np.linspace(0, last, clips_per_video).round().astype(int)
    return sorted(set(int(s) for s in starts))


def process_video(task: dict, spec: ClipSpec) -> VideoResult:
    """Probe, decode and cut one video; failures come back as a quarantine reason, not an exception."""
    result = VideoResult(task=task)
    path = Path(task["abs_path"])
    try:
        # one ffmpeg process per healthy video; ffprobe runs only to explain a failure
        frames, info = decode_video(path, size=spec.size, fps=spec.fps, resize_mode=spec.resize_mode,
                                    timeout_s=spec.timeout_s, threads=spec.threads)
        # hash only what was read successfully: a FIFO or a stalled mount would block here
        result.sha256 = sha256_file(path).hexdigest()
    except VideoError as err:
        # relative paths: the manifest must not depend on where raw_dir happens to live
        result.reason = str(err).replace(str(path), task["path"])
        result.stderr_tail = err.stderr_tail.replace(str(path), task["path"])
        if path.exists() and stat.S_ISREG(path.stat().st_mode):
            result.sha256 = sha256_file(path).hexdigest()
        return result
    except OSError as err:
        result.reason = f"{task['path']}: cannot read ({err.strerror or err})"
        return result
    result.fps = (spec.fps or info.fps) / spec.frame_stride
    starts = clip_starts(len(frames), spec.span, spec.clips_per_video)
    if not starts:
        result.reason = (f"{task['path']}: too short: {len(frames)} frames after decoding, a clip needs {spec.span} "
                         f"(clip_frames {spec.clip_frames}, frame_stride {spec.frame_stride})")
        return result
    result.clips = [(s, np.ascontiguousarray(frames[s : s + spec.span : spec.frame_stride])) for s in starts]
    return result


def _process_task(args: tuple[dict, ClipSpec]) -> VideoResult:
    return process_video(*args)


class ShardWriter:
    """Writes one split's samples into size-capped tar shards, each renamed into place when complete.

    Not webdataset's ``TarWriter``/``ShardWriter``: in webdataset 1.0.2 they sort a sample's members
    (cls, frames.npy, json), stamp owner "bigdata" and mode 0444, and open the tar in Python's default PAX
    format (their ``format`` argument never reaches ``tarfile.open``), so every shard's bytes, and the
    checksums recorded in manifests and in the committed reference's ``dvc.lock``, would change; nor do they
    write to a temp name and rename. The readers are webdataset's.
    """

    def __init__(self, out_dir: Path, split: str, max_bytes: int, claim=None):
        self.out_dir, self.split, self.max_bytes = out_dir, split, max_bytes
        self.claim = claim  # called with each shard's name before it is written
        self.names: list[str] = []
        self.samples = 0
        self._tar: tarfile.TarFile | None = None
        self._bytes = 0

    def _open(self) -> None:
        name = SHARD_PATTERN.format(split=self.split, index=len(self.names))
        if self.claim:
            self.claim(name)
        self.names.append(name)
        self._partial = self.out_dir / f".{name}.partial"
        self._tar = tarfile.open(self._partial, "w", format=tarfile.GNU_FORMAT)
        self._bytes = 0

    def _finish(self) -> None:
        if self._tar is not None:
            self._tar.close()
            os.replace(self._partial, self.out_dir / self.names[-1])
            self._tar = None

    def write(self, key: str, members: dict[str, bytes]) -> None:
        size = sum(512 + -(-len(data) // 512) * 512 for data in members.values())
        if self._tar is not None and self._bytes + size > self.max_bytes:
            self._finish()
        if self._tar is None:
            self._open()
        for suffix, data in members.items():
            # fixed metadata so that the same clips always give byte-identical shards
            member = tarfile.TarInfo(f"{key}.{suffix}")
            member.size, member.mtime, member.mode = len(data), 0, 0o644
            self._tar.addfile(member, io.BytesIO(data))
        self._bytes += size
        self.samples += 1

    def close(self) -> list[str]:
        self._finish()
        return self.names


def video_ids(paths: list[str]) -> dict[str, str]:
    """A key-safe id per video path (WebDataset splits keys at the first dot); collisions get a hash."""
    ids: dict[str, str] = {}
    seen: set[str] = set()
    for path in sorted(paths):
        base = re.sub(r"[^A-Za-z0-9_-]+", "_", str(Path(path).with_suffix(""))).strip("_") or "video"
        vid = base if base not in seen else f"{base}-{hashlib.sha1(path.encode()).hexdigest()[:8]}"
        seen.add(vid)
        ids[path] = vid
    return ids


def _rank(seed: int, text: str) -> str:
    return hashlib.sha256(f"{seed}:{text}".encode()).hexdigest()


def assign_splits(videos: list[dict], val_fraction: float, seed: int) -> dict[str, str]:
    """Split by video: explicit splits are kept; the rest go to val by a seeded hash ranking."""
    splits: dict[str, str] = {}
    free = []
    for video in videos:
        split = video.get("split")
        if split is None:
            free.append(video["path"])
        elif split in SPLITS:
            splits[video["path"]] = split
        else:
            raise DataError(f"index.json: video {video['path']!r} has split {split!r}; expected train, val or null")
    num_val = round(len(free) * val_fraction)
    if val_fraction > 0 and len(free) >= 2:
        num_val = max(1, num_val)
    ranked = sorted(free, key=lambda path: _rank(seed, path))
    for position, path in enumerate(ranked):
        splits[path] = "val" if position < num_val else "train"
    return splits


def read_index(raw_dir: Path) -> dict:
    """Load and check `<raw_dir>/index.json`, the fetch stage's output."""
    index_path = raw_dir / "index.json"
    if not index_path.exists():
        raise DataError(f"{index_path} not found: run `vgan fetch` first")
    try:
        index = json.loads(index_path.read_text())
        label_names = list(index["label_names"])
        videos = list(index["videos"])
    except (ValueError, KeyError, TypeError) as err:
        raise DataError(f"{index_path}: not a valid index ({err.__class__.__name__}: {err}); rerun `vgan fetch`")
    for video in videos:
        if not isinstance(video.get("label"), int) or not 0 <= video["label"] < len(label_names):
            raise DataError(f"{index_path}: video {video.get('path')!r} has label {video.get('label')!r}, "
                            f"expected 0..{len(label_names) - 1}")
    if not videos:
        raise DataError(f"{index_path} lists no videos: check the data source in params.yaml")
    return {"source": index.get("source", "unknown"), "label_names": label_names, "videos": videos}


class Ownership:
    """The shards of a folder that `vgan shards` wrote there: those its last manifest lists, plus those a run
    since then claimed (kept in ``OWNED_FILE`` until the next manifest, so a killed run's shards stay known).
    Only these are ever replaced or deleted: anything else in a shared folder is someone else's."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.names: set[str] = set()
        manifest = self._read(out_dir / MANIFEST_FILE)
        listed = manifest.get("shards") if isinstance(manifest, dict) else None
        for names in (listed.values() if isinstance(listed, dict) else []):
            self.names.update(names if isinstance(names, list) else [])
        ledger = self._read(out_dir / OWNED_FILE)
        self.names.update(ledger.get("shards", []) if isinstance(ledger, dict) else [])
        self.names = {name for name in self.names if isinstance(name, str) and SHARD_NAME.fullmatch(name)}
        self._save()

    @staticmethod
    def _read(path: Path):
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):  # absent or unreadable: it vouches for nothing
            return None

    def _save(self) -> None:
        write_json(self.out_dir / OWNED_FILE, {"shards": sorted(self.names)})

    def claim(self, name: str) -> None:
        """Before writing shard ``name``: refuse to replace a file of that name this stage did not write."""
        if name not in self.names:
            if (self.out_dir / name).exists():
                raise DataError(f"{self.out_dir / name} was not written by `vgan shards` in this folder (no manifest "
                                f"of it lists it): it is left alone; choose another shards.out_dir or move it away")
            self.names.add(name)
            self._save()

    def finish(self, keep: set[str]) -> None:
        """After the new manifest is written: delete this stage's shards it no longer lists, and the ledger."""
        for name in sorted(self.names - keep):
            (self.out_dir / name).unlink(missing_ok=True)
        (self.out_dir / OWNED_FILE).unlink(missing_ok=True)


def _clean(out_dir: Path) -> None:
    # the manifest goes first: a directory without one is visibly incomplete
    (out_dir / MANIFEST_FILE).unlink(missing_ok=True)
    for split in SPLITS:
        for stale in out_dir.glob(f".{split}-[0-9][0-9][0-9][0-9][0-9][0-9].tar.partial"):
            stale.unlink()
    for record in (MANIFEST_FILE, OWNED_FILE):  # the temp names of a record written when the stage was killed
        path = Path(record)
        for stale in out_dir.glob(f".{path.stem}.tmp-[0-9]*{path.suffix}"):
            stale.unlink()


def _sample_members(key: str, start: int, clip: np.ndarray, result: VideoResult, source: str,
                    label_names: list[str]) -> dict[str, bytes]:
    task = result.task
    buffer = io.BytesIO()
    np.save(buffer, clip)
    meta = {"source": source, "video": task["path"], "start_frame": start, "fps": round(result.fps, 6),
            "label": task["label"], "label_name": label_names[task["label"]]}
    return {"frames.npy": buffer.getvalue(), "json": json.dumps(meta, sort_keys=True).encode(),
            "cls": str(task["label"]).encode()}


def is_grey(clip: np.ndarray) -> bool:
    """True when every channel of a uint8 (T, H, W, C) clip equals the first (a grey video decoded as RGB)."""
    return all(np.array_equal(clip[..., 0], clip[..., channel]) for channel in range(1, clip.shape[-1]))


def _write_samples(results, total: int, writers: dict[str, ShardWriter],
                   index: dict) -> tuple[list, list, dict, bool]:
    """Write each video's clips as they arrive (the only writer); returns the inputs, quarantine, videos per
    split and whether every clip written is grey, for the manifest."""
    inputs, quarantine, videos_per_split, grey = [], [], {split: 0 for split in SPLITS}, True
    for result in tqdm(results, total=total, desc="shards", unit="video", disable=None):
        task = result.task
        inputs.append({"path": task["path"], "sha256": result.sha256, "split": task["split"],
                       "label": task["label"], "clips": len(result.clips)})
        if result.reason:
            quarantine.append({"path": task["path"], "reason": result.reason, "stderr_tail": result.stderr_tail})
            continue
        videos_per_split[task["split"]] += 1
        for clip_index, (start, clip) in enumerate(result.clips):
            grey = grey and is_grey(clip)  # once one clip has colour, the rest need no look
            members = _sample_members(f"{task['id']}_{clip_index}", start, clip, result, index["source"],
                                      index["label_names"])
            writers[task["split"]].write(f"{task['id']}_{clip_index}", members)
    return inputs, quarantine, videos_per_split, grey


def build_shards(params) -> dict:
    """Decode, clip and shard every video listed in the raw index; returns the manifest it wrote."""
    data, cfg = params.data, params.shards
    raw_dir, out_dir = Path(data.raw_dir), Path(cfg.out_dir)
    index = read_index(raw_dir)
    if index["source"] in typing.get_args(type(data).model_fields["source"].annotation) and index["source"] != data.source:
        raise DataError(f"{raw_dir} holds videos fetched from data.source={index['source']!r}, but params say "
                        f"data.source={data.source!r}: run `vgan fetch` (or `dvc repro`) with these params first")
    splits = assign_splits(index["videos"], cfg.val_fraction, cfg.seed)
    ids = video_ids([video["path"] for video in index["videos"]])
    tasks = [{"path": v["path"], "abs_path": os.path.abspath(raw_dir / v["path"]), "label": v["label"],
              "split": splits[v["path"]], "id": ids[v["path"]]} for v in index["videos"]]
    # a seeded order mixes classes inside every shard; the executor keeps it whatever runs the decodes
    tasks.sort(key=lambda task: _rank(cfg.seed, "order:" + task["path"]))

    # connected before anything is touched: an unreachable cluster leaves the last output as it was
    with open_executor(cfg.executor, cfg.workers or os.cpu_count() or 1) as executor:
        spec = ClipSpec(size=cfg.size, fps=cfg.fps, resize_mode=cfg.resize_mode, clip_frames=cfg.clip_frames,
                        frame_stride=cfg.frame_stride, clips_per_video=cfg.clips_per_video,
                        timeout_s=cfg.decode_timeout_s, threads=executor.ffmpeg_threads)
        out_dir.mkdir(parents=True, exist_ok=True)
        ownership = Ownership(out_dir)  # before the old manifest goes: it says which shards are this stage's
        _clean(out_dir)
        writers = {split: ShardWriter(out_dir, split, int(cfg.shard_mb * 1e6), ownership.claim)
                   for split in SPLITS}
        results = executor.map_in_order(_process_task, ((task, spec) for task in tasks))
        inputs, quarantine, videos_per_split, grey = _write_samples(results, len(tasks), writers, index)
    shard_names = {split: writer.close() for split, writer in writers.items()}
    counts = {split: writer.samples for split, writer in writers.items()}

    if sum(counts.values()) == 0:
        examples = "; ".join(item["reason"] for item in quarantine[:3])
        raise DataError(f"no usable clip in {len(tasks)} videos, all quarantined (e.g. {examples})")
    keep = {name for names in shard_names.values() for name in names}
    manifest = {
        "source": index["source"],
        "label_names": index["label_names"],
        "clip_shape": [cfg.clip_frames, cfg.size, cfg.size, 3],  # the last: the channels stored
        "grey": grey,  # every clip's channels are equal: `model.channels: auto` trains a 1-channel model
        "counts": counts,
        "videos": videos_per_split,
        "shards": shard_names,
        "quarantine": sorted(quarantine, key=lambda item: item["path"]),
        "inputs": sorted(inputs, key=lambda item: item["path"]),
        "params": cfg.model_dump(mode="json", exclude={"workers", "executor", "out_dir"}),
    }
    write_json(out_dir / MANIFEST_FILE, manifest, indent=2, sort_keys=True)
    ownership.finish(keep)
    return manifest
