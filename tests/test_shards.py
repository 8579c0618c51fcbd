"""The shards stage: clips, splits, manifest, quarantine of bad inputs, determinism, kill-and-rerun."""

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from vgan.data.shards import assign_splits, build_shards, clip_starts, video_ids
from vgan.params import default_params
from vgan.util.errors import DataError

REPO = Path(__file__).resolve().parents[1]


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-v", "error", "-y", *map(str, args)], check=True)


def lavfi_video(path, seconds=2.0, size="64x48", rate=10, pix_fmt="yuv420p", codec="libx264", hue=0):
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}", "-vf", f"hue=h={hue}",
           "-pix_fmt", pix_fmt, "-c:v", codec, path)


def write_index(raw, paths, labels=None, splits=None, label_names=("a", "b")):
    videos = [{"path": p, "label": (labels or [i % len(label_names) for i in range(len(paths))])[i],
               "split": (splits or [None] * len(paths))[i]} for i, p in enumerate(paths)]
    (raw / "index.json").write_text(json.dumps({"source": "test", "label_names": list(label_names),
                                                "videos": videos}))


def make_params(raw, out, **shards):
    base = dict(out_dir=str(out), clip_frames=8, size=16, workers=1, val_fraction=0.25, decode_timeout_s=20)
    return default_params(data={"raw_dir": str(raw)}, shards={**base, **shards})


def read_shards(out_dir, split):
    manifest = json.loads((Path(out_dir) / "manifest.json").read_text())
    samples = {}
    for name in manifest["shards"][split]:
        with tarfile.open(Path(out_dir) / name) as tar:
            for member in tar.getmembers():
                key, suffix = member.name.split(".", 1)
                samples.setdefault(key, {})[suffix] = tar.extractfile(member).read()
    return samples


@pytest.fixture(scope="module")
def good_videos(tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw")
    paths = []
    for number in range(8):
        (raw / f"class{number % 2}").mkdir(exist_ok=True)
        path = f"class{number % 2}/v{number}.mp4"
        lavfi_video(raw / path, hue=number * 40)
        paths.append(path)
    return raw, paths


def test_clip_starts():
    assert clip_starts(20, 8, 0) == [0, 8]
    assert clip_starts(20, 8, 1) == [6]
    assert clip_starts(20, 8, 3) == [0, 6, 12]
    assert clip_starts(7, 8, 2) == []
    assert clip_starts(8, 8, 4) == [0]  # one window only: no duplicate clips


def test_splits_are_by_video_seeded_and_keep_explicit_ones():
    videos = [{"path": f"v{i}.mp4", "split": None} for i in range(20)] + [{"path": "fixed.mp4", "split": "val"}]
    first = assign_splits(videos, 0.25, seed=0)
    assert first == assign_splits(list(reversed(videos)), 0.25, seed=0)  # order does not matter
    assert sum(split == "val" for path, split in first.items() if path != "fixed.mp4") == 5
    assert first["fixed.mp4"] == "val"
    assert first != assign_splits(videos, 0.25, seed=1)
    with pytest.raises(DataError, match="split 'test'"):
        assign_splits([{"path": "x.mp4", "split": "test"}], 0.2, seed=0)


def test_video_ids_are_key_safe_and_unique():
    ids = video_ids(["a/b.c.mp4", "a_b_c.mp4", "a/b.c.avi"])
    assert all("." not in vid and "/" not in vid for vid in ids.values())
    assert len(set(ids.values())) == 3


@pytest.mark.slow
def test_shards_hold_every_clip_with_its_metadata(good_videos, tmp_path):
    raw, paths = good_videos
    write_index(raw, paths)
    manifest = build_shards(make_params(raw, tmp_path / "shards", clips_per_video=2, frame_stride=2))
    assert manifest["counts"] == {"train": 12, "val": 4}  # 8 videos x 2 clips, 2 videos in val
    assert manifest["clip_shape"] == [8, 16, 16, 3] and manifest["label_names"] == ["a", "b"]
    assert manifest["grey"] is False  # testsrc2 is colour: `model.channels: auto` trains 3 channels
    assert manifest["quarantine"] == [] and len(manifest["inputs"]) == 8
    assert all(len(item["sha256"]) == 64 for item in manifest["inputs"])
    train, val = read_shards(tmp_path / "shards", "train"), read_shards(tmp_path / "shards", "val")
    assert len(train) == 12 and len(val) == 4
    train_videos = {json.loads(s["json"])["video"] for s in train.values()}
    val_videos = {json.loads(s["json"])["video"] for s in val.values()}
    assert not train_videos & val_videos  # no video in two splits
    key, sample = sorted(train.items())[0]
    frames = np.load(__import__("io").BytesIO(sample["frames.npy"]))
    meta = json.loads(sample["json"])
    assert frames.shape == (8, 16, 16, 3) and frames.dtype == np.uint8
    assert key.rsplit("_", 1)[1] in {"0", "1"} and meta["start_frame"] in {0, 5}  # 20 frames, span 15
    assert meta["fps"] == 5.0 and int(sample["cls"]) == meta["label"]  # 10 fps source, stride 2
    assert meta["label_name"] == ["a", "b"][meta["label"]] and meta["source"] == "test"


def test_grey_videos_are_recorded_grey_and_one_colour_clip_makes_the_set_colour(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("grey0.mp4", "grey1.mp4"):  # grey in an ordinary colour file: yuv420p, decoded as RGB
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10:duration=2", "-vf", "format=gray,format=yuv420p",
               "-c:v", "libx264", raw / name)
    write_index(raw, ["grey0.mp4", "grey1.mp4"])
    manifest = build_shards(make_params(raw, tmp_path / "grey"))
    assert (manifest["grey"], manifest["clip_shape"][-1]) == (True, 3)  # stored RGB; auto trains 1 channel
    lavfi_video(raw / "colour.mp4")
    write_index(raw, ["grey0.mp4", "grey1.mp4", "colour.mp4"])
    assert build_shards(make_params(raw, tmp_path / "mixed"))["grey"] is False


def test_moving_digits_shards_are_recorded_grey(tiny_shards):
    manifest = json.loads((tiny_shards / "data/shards/manifest.json").read_text())
    assert manifest["source"] == "moving_digits" and manifest["grey"] is True and manifest["clip_shape"][-1] == 3


@pytest.mark.slow
def test_output_is_identical_for_any_worker_count(good_videos, tmp_path):
    raw, paths = good_videos
    write_index(raw, paths)
    build_shards(make_params(raw, tmp_path / "one", workers=1, shard_mb=0.01))
    build_shards(make_params(raw, tmp_path / "three", workers=3, shard_mb=0.01))
    one, three = sorted(os.listdir(tmp_path / "one")), sorted(os.listdir(tmp_path / "three"))
    assert one == three and len(one) > 4  # several size-capped shards per split
    for name in one:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "three" / name).read_bytes(), name


@pytest.mark.slow
def test_bad_inputs_are_quarantined_with_reasons_and_good_ones_kept(good_videos, tmp_path):
    raw_good, good = good_videos
    raw = tmp_path / "raw"
    raw.mkdir()
    for path in good[:3]:
        (raw / Path(path).name).write_bytes((raw_good / path).read_bytes())
    (raw / "zero.mp4").write_bytes(b"")
    lavfi_video(raw / "whole.mp4", seconds=4)
    ffmpeg("-i", raw / "whole.mp4", "-c", "copy", "-movflags", "+faststart", raw / "fast.mp4")
    data = (raw / "fast.mp4").read_bytes()
    (raw / "half.mp4").write_bytes(data[: len(data) // 2])
    (raw / "text.mp4").write_text("definitely not a video\n" * 50)
    lavfi_video(raw / "short.mp4", seconds=0.5)
    lavfi_video(raw / "yuv444.mp4", size="97x61", pix_fmt="yuv444p")
    lavfi_video(raw / "gray.mkv", size="50x70", pix_fmt="gray", codec="ffv1")
    ffmpeg("-f", "lavfi", "-i", "sine=duration=2", raw / "audio.m4a")
    os.mkfifo(raw / "hangs.mp4")  # opening it blocks forever, like a stalled network mount
    names = [Path(p).name for p in good[:3]] + ["zero.mp4", "half.mp4", "text.mp4", "short.mp4", "yuv444.mp4",
                                                 "gray.mkv", "audio.m4a", "hangs.mp4"]
    write_index(raw, names)
    manifest = build_shards(make_params(raw, tmp_path / "shards", workers=2, decode_timeout_s=3))

    reasons = {item["path"]: item["reason"] for item in manifest["quarantine"]}
    assert set(reasons) == {"zero.mp4", "half.mp4", "text.mp4", "short.mp4", "audio.m4a", "hangs.mp4"}
    assert "empty file" in reasons["zero.mp4"]
    assert "truncated" in reasons["half.mp4"]
    assert "cannot read" in reasons["text.mp4"]
    assert "too short: 5 frames" in reasons["short.mp4"]
    assert "no video stream" in reasons["audio.m4a"]
    assert "timed out" in reasons["hangs.mp4"]
    tails = {item["path"]: item["stderr_tail"] for item in manifest["quarantine"]}
    assert "partial file" in tails["half.mp4"] and "Invalid data" in tails["text.mp4"]
    # odd sizes and unusual pixel formats are not bad: they become clips like any other
    good_inputs = {item["path"] for item in manifest["inputs"] if item["clips"]}
    assert good_inputs == {Path(p).name for p in good[:3]} | {"yuv444.mp4", "gray.mkv"}
    assert sum(manifest["counts"].values()) == 10


@pytest.mark.slow
def test_no_usable_clip_is_one_clear_error(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "zero.mp4").write_bytes(b"")
    (raw / "text.mp4").write_text("nope")
    write_index(raw, ["zero.mp4", "text.mp4"])
    with pytest.raises(DataError, match="no usable clip in 2 videos") as err:
        build_shards(make_params(raw, tmp_path / "shards"))
    assert "\n" not in str(err.value)
    assert not (tmp_path / "shards" / "manifest.json").exists()


def test_missing_index_says_run_fetch(tmp_path):
    with pytest.raises(DataError, match="vgan fetch"):
        build_shards(make_params(tmp_path, tmp_path / "shards"))


def test_raw_videos_of_another_source_are_refused_not_silently_sharded(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    write_index(raw, ["a.mp4"])
    index = json.loads((raw / "index.json").read_text())
    (raw / "index.json").write_text(json.dumps({**index, "source": "moving_digits"}))
    params = make_params(raw, tmp_path / "shards")
    params.data.source = "folder"
    with pytest.raises(DataError, match="data.source='moving_digits', but params say data.source='folder'.*vgan fetch"):
        build_shards(params)
    assert not (tmp_path / "shards").exists()


KILLABLE = """
import sys
from vgan.data.shards import build_shards
from vgan.params import default_params
if __name__ == "__main__":
    build_shards(default_params(data={"raw_dir": sys.argv[1]}, shards={
        "out_dir": sys.argv[2], "clip_frames": 4, "size": 16, "workers": 2, "shard_mb": 0.005, "clips_per_video": 0}))
"""


@pytest.mark.slow
def test_killed_half_way_then_rerun_gives_identical_shards(good_videos, tmp_path):
    raw, paths = good_videos
    write_index(raw, paths)
    script = tmp_path / "run_shards.py"
    script.write_text(KILLABLE)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, script, raw, tmp_path / "clean"], check=True, env=env)

    out = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, script, raw, out], env=env, start_new_session=True)
    while process.poll() is None and not list(out.glob("train-000001.tar")):
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the stage and its pool, mid-write
    process.wait()
    assert not (out / "manifest.json").exists()
    subprocess.run([sys.executable, script, raw, out], check=True, env=env)

    clean_files = sorted(os.listdir(tmp_path / "clean"))
    assert sorted(os.listdir(out)) == clean_files and len(clean_files) > 3
    for name in clean_files:
        assert (out / name).read_bytes() == (tmp_path / "clean" / name).read_bytes(), name
