"""Sources for the fetch stage: folder, urls (local HTTP server), UCF101 layout; then shards from each."""

import functools
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vgan.data.fetch import fetch
from vgan.data.sources import fetch_ucf101, index_videos
from vgan.util.errors import DataError
from vgan.params import UrlSource, default_params

from test_extract import cpio

needs_bsdtar = pytest.mark.skipif(not shutil.which("bsdtar"), reason="bsdtar (libarchive-tools) not installed")


def lavfi_video(path, seconds=1.6, hue=0, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size=48x48:rate=10:duration={seconds}",
                    "-vf", f"hue=h={hue}", "-pix_fmt", "yuv420p", *(["-f", fmt] if fmt else []), str(path)],
                   check=True)
    return path


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def http_dir(tmp_path):
    """A static file server on 127.0.0.1 serving tmp_path/www."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def run_cli(tmp_path, stage, *sets):
    args = [arg for item in sets for arg in ("--set", item)]
    return subprocess.run([sys.executable, "-m", "vgan.cli", stage, *args], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})


def test_labels_and_splits_from_folder_names():
    index = index_videos(["walk/a.mp4", "run/b.mp4", "c.mp4", "train/jump/d.mp4", "test/jump/e.mp4"], "folder")
    assert index["label_names"] == ["jump", "run", "unlabelled", "walk"]
    by_path = {v["path"]: (index["label_names"][v["label"]], v["split"]) for v in index["videos"]}
    assert by_path == {"walk/a.mp4": ("walk", None), "run/b.mp4": ("run", None), "c.mp4": ("unlabelled", None),
                       "train/jump/d.mp4": ("jump", "train"), "test/jump/e.mp4": ("jump", "val")}


@pytest.mark.slow
def test_folder_source_finds_videos_recursively(tmp_path):
    folder = tmp_path / "my videos"
    lavfi_video(folder / "walk" / "a.mp4")
    lavfi_video(folder / "walk" / "deeper" / "b.mkv", hue=90)
    lavfi_video(folder / "run" / "clip_without_extension", fmt="matroska")
    (folder / "run" / "notes.txt").write_text("not a video")
    (folder / "run" / "mystery.dat").write_bytes(os.urandom(2000))
    lavfi_video(folder / ".hidden" / "c.mp4")
    params = default_params(data={"source": "folder", "folder": str(folder), "raw_dir": str(tmp_path / "raw")})
    index = fetch(params)
    assert [v["path"] for v in index["videos"]] == ["run/clip_without_extension", "walk/a.mp4",
                                                      "walk/deeper/b.mkv"]
    assert index["label_names"] == ["run", "walk"] and index["source"] == "folder"
    assert json.loads((tmp_path / "raw" / "index.json").read_text()) == index
    assert (tmp_path / "raw" / "walk" / "a.mp4").read_bytes() == (folder / "walk" / "a.mp4").read_bytes()


def test_folder_source_errors(tmp_path):
    with pytest.raises(DataError, match="data.folder is not set"):
        fetch(default_params(data={"source": "folder", "raw_dir": str(tmp_path / "raw")}))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no video files found"):
        fetch(default_params(data={"source": "folder", "folder": str(tmp_path / "empty"),
                                   "raw_dir": str(tmp_path / "r")}))


@pytest.mark.slow
def test_urls_source_downloads_videos_and_archives(tmp_path, http_dir):
    www, url = http_dir
    lavfi_video(www / "single.mp4")
    with zipfile.ZipFile(www / "classes.zip", "w") as bundle:
        for name, hue in (("walk/w1.mp4", 0), ("run/r1.mp4", 120)):
            bundle.write(lavfi_video(tmp_path / "src" / name, hue=hue), name)
    data = {"source": "urls", "raw_dir": str(tmp_path / "raw"), "urls": [
        UrlSource(url=f"{url}/single.mp4", sha256=sha256(www / "single.mp4")),
        UrlSource(url=f"{url}/classes.zip", sha256=sha256(www / "classes.zip"), filename="classes.zip")]}
    index = fetch(default_params(data=data))
    assert sorted(v["path"] for v in index["videos"]) == ["run/r1.mp4", "single.mp4", "walk/w1.mp4"]
    assert index["label_names"] == ["run", "unlabelled", "walk"]
    assert (tmp_path / "downloads" / "classes.zip").exists()  # archives stay out of raw_dir


def test_urls_source_refuses_a_bad_checksum(tmp_path, http_dir):
    www, url = http_dir
    (www / "v.mp4").write_bytes(b"pretend video")
    data = {"source": "urls", "raw_dir": str(tmp_path / "raw"),
            "urls": [UrlSource(url=f"{url}/v.mp4", sha256="0" * 64)]}
    with pytest.raises(DataError, match="checksum mismatch"):
        fetch(default_params(data=data))
    assert not (tmp_path / "raw" / "v.mp4").exists() and not (tmp_path / "raw" / "index.json").exists()


def fake_ucf101(tmp_path, www):
    """A UCF101-shaped release: the video archive (cpio standing in for RAR) and the split-list zip."""
    entries, split_lines = [], {n: ([], []) for n in (1, 2, 3)}
    for cls, folder in (("ApplyEyeMakeup", "ApplyEyeMakeup"), ("HandstandPushups", "HandstandPushups")):
        list_name = "HandStandPushups" if cls == "HandstandPushups" else cls  # the lists' own spelling
        for group in (1, 2):
            name = f"v_{list_name}_g0{group}_c01.avi"
            video = lavfi_video(tmp_path / "ucf_src" / name, hue=group * 60, fmt="avi")
            entries.append((f"UCF-101/{folder}/{name}", stat.S_IFREG | 0o644, video.read_bytes()))
            for split_number in (1, 2, 3):
                train, test = split_lines[split_number]
                (train if (group == 1) == (split_number == 1) else test).append(f"{list_name}/{name}")
    cpio(www / "UCF101.rar", entries)
    with zipfile.ZipFile(www / "splits.zip", "w") as bundle:
        bundle.writestr("ucfTrainTestlist/classInd.txt", "1 ApplyEyeMakeup\r\n2 HandstandPushups\r\n")
        for number, (train, test) in split_lines.items():
            bundle.writestr(f"ucfTrainTestlist/trainlist0{number}.txt", "".join(f"{p} 1\r\n" for p in train))
            bundle.writestr(f"ucfTrainTestlist/testlist0{number}.txt", "".join(f"{p}\r\n" for p in test))
    return sha256(www / "UCF101.rar"), sha256(www / "splits.zip")


def ucf101_data(tmp_path, split: int):
    return default_params(data={"source": "ucf101", "raw_dir": str(tmp_path / "raw"), "ucf101_split": split}).data


@needs_bsdtar
@pytest.mark.slow
def test_ucf101_official_layout_labels_and_selectable_split(tmp_path, http_dir):
    www, url = http_dir
    video_sha, lists_sha = fake_ucf101(tmp_path, www)
    urls = dict(video_url=f"{url}/UCF101.rar", splits_url=f"{url}/splits.zip", video_sha256=video_sha,
                splits_sha256=lists_sha)
    first = fetch_ucf101(ucf101_data(tmp_path, 1), **urls)
    assert first["label_names"] == ["ApplyEyeMakeup", "HandstandPushups"]
    splits = {Path(v["path"]).name: (v["label"], v["split"]) for v in first["videos"]}
    assert splits == {"v_ApplyEyeMakeup_g01_c01.avi": (0, "train"), "v_ApplyEyeMakeup_g02_c01.avi": (0, "val"),
                      "v_HandStandPushups_g01_c01.avi": (1, "train"), "v_HandStandPushups_g02_c01.avi": (1, "val")}
    second = fetch_ucf101(ucf101_data(tmp_path, 2), **urls)
    assert {Path(v["path"]).name: v["split"] for v in second["videos"]}["v_ApplyEyeMakeup_g01_c01.avi"] == "val"


def test_ucf101_without_pinned_checksums_says_what_to_set(tmp_path):
    with pytest.raises(DataError, match="data.ucf101_sha256"):
        fetch(default_params(data={"source": "ucf101", "raw_dir": str(tmp_path / "raw")}))


@pytest.mark.slow
def test_vgan_fetch_then_shards_from_a_folder(tmp_path):
    for number in range(4):
        lavfi_video(tmp_path / "videos" / f"class{number % 2}" / f"v{number}.mp4", hue=number * 50)
    (tmp_path / "videos" / "class0" / "broken.mp4").write_text("not a video")
    sets = ["data.source=folder", f"data.folder={tmp_path / 'videos'}", "data.raw_dir=raw", "shards.out_dir=shards",
            "shards.clip_frames=8", "shards.size=16", "shards.workers=2", "shards.val_fraction=0.25"]
    shutil.copy(Path(__file__).resolve().parents[1] / "params.yaml", tmp_path / "params.yaml")
    fetched = run_cli(tmp_path, "fetch", *sets)
    assert fetched.returncode == 0, fetched.stderr
    sharded = run_cli(tmp_path, "shards", *sets)
    assert sharded.returncode == 0, sharded.stderr
    manifest = json.loads((tmp_path / "shards" / "manifest.json").read_text())
    assert manifest["counts"] == {"train": 6, "val": 2} and manifest["label_names"] == ["class0", "class1"]
    assert [q["path"] for q in manifest["quarantine"]] == ["class0/broken.mp4"]
