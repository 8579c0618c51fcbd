"""Data sources for the fetch stage: each puts videos under `data.raw_dir` and returns the raw index.

Index (`<raw_dir>/index.json`): {"source", "label_names", "videos": [{"path", "label", "split"}]}, paths
relative to raw_dir, split "train", "val" or null (null: the shards stage chooses by val_fraction).

Labels for `folder` and `urls`: the first folder of a video's path (`walk/a.mp4` -> "walk"); videos at the
top level are "unlabelled". Top-level folders named train/val/test give the split, the next folder the label.
"""

from __future__ import annotations

import os
import shutil
import urllib.parse
from pathlib import Path, PurePosixPath

from vgan.data.download import download
from vgan.data.extract import extract
from vgan.data.video import VideoError, probe
from vgan.util.errors import DataError
from vgan.util.io import write_json

VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".flv", ".wmv", ".ogv",
                    ".3gp", ".ts", ".mts", ".gif"}
SKIP_EXTENSIONS = {".txt", ".json", ".md", ".csv", ".yaml", ".yml", ".py", ".png", ".jpg", ".jpeg", ".bmp",
                   ".webp", ".partial", ".wav", ".mp3", ".flac"}
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".rar", ".7z")
SPLIT_FOLDERS = {"train": "train", "val": "val", "test": "val"}
UNLABELLED = "unlabelled"

def download_dir(data) -> Path:
    """Archives live outside raw_dir: DVC empties raw_dir before re-running fetch."""
    return Path(data.download_dir) if data.download_dir else Path(data.raw_dir).parent / "downloads"


def write_index(raw_dir: Path, index: dict) -> None:
    write_json(raw_dir / "index.json", index, indent=1)


def is_candidate(path: Path, timeout_s: float = 30.0) -> bool:
    """A known video extension, or anything else in which ffprobe finds a moving picture."""
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return True  # broken ones are kept: the shards stage quarantines them with a reason
    if suffix in SKIP_EXTENSIONS or path.name.startswith("."):
        return False
    try:
        return probe(path, timeout_s=timeout_s).num_frames > 1
    except VideoError:
        return False


def index_videos(rel_paths: list[str], source: str) -> dict:
    """Labels and splits from folder names, for a list of paths relative to raw_dir."""
    entries = []
    for rel in sorted(rel_paths):
        parts = PurePosixPath(rel).parts
        split = None
        if len(parts) > 1 and parts[0].lower() in SPLIT_FOLDERS:
            split, parts = SPLIT_FOLDERS[parts[0].lower()], parts[1:]
        label_name = parts[0] if len(parts) > 1 else UNLABELLED
        entries.append((rel, label_name, split))
    label_names = sorted({label for _, label, _ in entries})
    label_of = {name: number for number, name in enumerate(label_names)}
    videos = [{"path": rel, "label": label_of[label], "split": split} for rel, label, split in entries]
    return {"source": source, "label_names": label_names, "videos": videos}


def _link_or_copy(source: Path, target: Path) -> None:
    if target.exists():
        same = target.stat()
        if target.samefile(source) or (same.st_size == source.stat().st_size and
                                       same.st_mtime_ns == source.stat().st_mtime_ns):
            return
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.partial")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)  # same file system: no copy, no extra space
    except OSError:
        shutil.copy2(source, tmp)
    os.replace(tmp, target)


def fetch_folder(data) -> dict:
    """Every video under `data.folder` (recursive), hard-linked or copied into raw_dir."""
    if not data.folder:
        raise DataError("data.source is 'folder' but data.folder is not set: --set data.folder=/path/to/videos")
    folder, raw_dir = Path(data.folder), Path(data.raw_dir)
    if not folder.is_dir():
        raise DataError(f"data.folder {str(folder)!r} is not a directory")
    if raw_dir.resolve() == folder.resolve():
        raise DataError("data.folder and data.raw_dir are the same folder: point raw_dir elsewhere")
    rel_paths = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file() or not is_candidate(path):
            continue
        _link_or_copy(path, raw_dir / rel)
        rel_paths.append(rel.as_posix())
    if not rel_paths:
        raise DataError(f"no video files found under {folder} (looked for {', '.join(sorted(VIDEO_EXTENSIONS))} "
                        "and anything ffprobe can read)")
    return index_videos(rel_paths, "folder")


def _is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def fetch_urls(data) -> dict:
    """Download every `data.urls` entry (verified); archives are unpacked into raw_dir, videos copied."""
    if not data.urls:
        raise DataError("data.source is 'urls' but data.urls is empty: list {url, sha256, filename} entries")
    raw_dir, cache = Path(data.raw_dir), download_dir(data)
    max_bytes = int(data.max_extract_gb * 1e9)
    rel_paths: list[str] = []
    for entry in data.urls:
        filename = entry.filename or PurePosixPath(urllib.parse.urlsplit(entry.url).path).name
        if not filename or _unsafe(filename):
            raise DataError(f"data.urls: cannot use filename {filename!r} for {entry.url}; set a plain `filename`")
        local = download(entry.url, cache / filename, entry.sha256, retries=data.download_retries,
                         max_bytes=int(data.max_download_gb * 1e9))
        if _is_archive(filename):
            added = extract(local, raw_dir, max_bytes=max_bytes)
            rel_paths += [p.relative_to(raw_dir).as_posix() for p in added if is_candidate(p)]
        else:
            _link_or_copy(local, raw_dir / filename)
            rel_paths.append(filename)
    if not rel_paths:
        raise DataError("data.urls: the downloads contain no video files")
    return index_videos(sorted(set(rel_paths)), "urls")


def _unsafe(filename: str) -> bool:
    path = PurePosixPath(filename)
    return path.is_absolute() or ".." in path.parts or filename.startswith(".")


def read_ucf101_lists(list_dir: Path, split_number: int) -> tuple[list[str], dict[str, str]]:
    """Class names (classInd.txt order) and {"Class/v_x.avi" (lower case): "train"|"val"} for one split."""
    class_file = list_dir / "classInd.txt"
    train_file, test_file = list_dir / f"trainlist0{split_number}.txt", list_dir / f"testlist0{split_number}.txt"
    for needed in (class_file, train_file, test_file):
        if not needed.is_file():
            raise DataError(f"UCF101 split lists incomplete: {needed.name} missing in {list_dir}")
    classes = {}
    for line in class_file.read_text().split("\n"):
        if line.strip():
            number, name = line.split()
            classes[int(number)] = name
    label_names = [classes[number] for number in sorted(classes)]
    membership = {}
    for list_file, split in ((train_file, "train"), (test_file, "val")):
        for line in list_file.read_text().split("\n"):
            if line.strip():
                # the lists spell one class "HandStandPushups", its folder "HandstandPushups"
                membership[line.split()[0].strip().lower()] = split
    return label_names, membership


def fetch_ucf101(data, *, video_url: str | None = None, splits_url: str | None = None,
                 video_sha256: str | None = None, splits_sha256: str | None = None) -> dict:
    """The official UCF101 archive and split lists; labels from classInd.txt, split from data.ucf101_split."""
    video_url = video_url or data.ucf101_url
    splits_url = splits_url or data.ucf101_splits_url
    video_sha256 = video_sha256 or data.ucf101_sha256
    splits_sha256 = splits_sha256 or data.ucf101_splits_sha256
    if not video_sha256 or not splits_sha256:
        raise DataError("UCF101 publishes no checksums: set data.ucf101_sha256 and data.ucf101_splits_sha256 "
                        "(sha256sum of UCF101.rar and of the split-list zip you trust)")
    raw_dir, cache = Path(data.raw_dir), download_dir(data)
    max_bytes = int(data.max_extract_gb * 1e9)
    cap = int(data.max_download_gb * 1e9)
    archive = download(video_url, cache / "UCF101.rar", video_sha256, retries=data.download_retries, max_bytes=cap)
    lists = download(splits_url, cache / "UCF101TrainTestSplits-RecognitionTask.zip", splits_sha256,
                     retries=data.download_retries, max_bytes=cap)
    for source, sha in ((archive, video_sha256), (lists, splits_sha256)):
        marker = raw_dir / f".extracted-{sha[:16]}"
        if not marker.exists():  # 13,320 files: unpack once per archive version
            extract(source, raw_dir, max_bytes=max_bytes)
            marker.touch()
    list_dirs = sorted({p.parent for p in raw_dir.rglob("classInd.txt")})
    if not list_dirs:
        raise DataError(f"{lists.name} holds no classInd.txt: is it the UCF101 recognition split archive?")
    label_names, membership = read_ucf101_lists(list_dirs[0], data.ucf101_split)
    label_of = {name.lower(): number for number, name in enumerate(label_names)}
    videos = []
    for path in sorted(raw_dir.rglob("*.avi")):
        rel = path.relative_to(raw_dir)
        key = "/".join(rel.parts[-2:]).lower()
        if key in membership and rel.parts[-2].lower() in label_of:
            videos.append({"path": rel.as_posix(), "label": label_of[rel.parts[-2].lower()],
                           "split": membership[key]})
    if not videos:
        raise DataError(f"no UCF101 videos from split {data.ucf101_split} found under {raw_dir}")
    return {"source": "ucf101", "label_names": label_names, "videos": videos}
