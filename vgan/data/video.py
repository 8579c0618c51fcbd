"""ffmpeg video I/O: probe, decode to uint8 RGB arrays (resampled, resized), encode mp4."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import ffmpeg
import numpy as np

from vgan.util.errors import DataError

RESIZE_MODES = ("crop", "squash", "pad")
STDERR_TAIL_LINES = 12


class VideoError(DataError):
    """A video ffmpeg cannot use; `stderr_tail` keeps the last lines ffmpeg printed."""

    def __init__(self, message: str, stderr_tail: str = ""):
        super().__init__(message)
        self.stderr_tail = stderr_tail


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    num_frames: int  # from the container, else estimated from duration * fps; 0 = unknown
    duration: float  # seconds; 0.0 = unknown
    codec: str
    pix_fmt: str = ""


def _tail(stderr: bytes | str, lines: int = STDERR_TAIL_LINES) -> str:
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    # "[h264 @ 0x55d0...]": heap addresses differ per run and would make manifests differ
    text = re.sub(r" @ 0x[0-9a-f]+\]", "]", text)
    return "\n".join(text.strip().splitlines()[-lines:])


def _first_line(stderr_tail: str) -> str:
    lines = [line for line in stderr_tail.splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no message from ffmpeg"


def _rate(text: str | None) -> float:
    try:
        value = Fraction(text or "0")
    except (ValueError, ZeroDivisionError):
        return 0.0
    return float(value)


def probe(path: str | os.PathLike, *, timeout_s: float = 30.0) -> VideoInfo:
    """Size, frame rate, frame count, duration and codec of the first video stream."""
    path = Path(path)
    if not path.exists():
        raise VideoError(f"{path}: no such file")
    if path.is_file() and path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file (0 bytes)")
    cmd = ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)]
    try:
        # subprocess rather than ffmpeg.probe: that one has no timeout and a stalled read would hang us
        done = subprocess.run(cmd, capture_output=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise VideoError(f"{path}: ffprobe timed out after {timeout_s:g}s", _tail(exc.stderr or b"")) from None
    if done.returncode != 0:
        tail = _tail(done.stderr)
        reason = _first_line(tail).replace(f"{path}: ", "")
        raise VideoError(f"{path}: ffprobe cannot read it ({reason})", tail)
    info = json.loads(done.stdout or b"{}")
    streams = [s for s in info.get("streams", []) if s.get("codec_type") == "video"]
    # cover art in audio files shows up as a one-frame video stream; it is not a video
    streams = [s for s in streams if not s.get("disposition", {}).get("attached_pic")]
    if not streams:
        kinds = sorted({s.get("codec_type", "?") for s in info.get("streams", [])}) or ["none"]
        raise VideoError(f"{path}: no video stream (streams: {', '.join(kinds)})")
    stream = streams[0]
    fps = _rate(stream.get("avg_frame_rate")) or _rate(stream.get("r_frame_rate"))
    duration = float(stream.get("duration") or info.get("format", {}).get("duration") or 0.0)
    num_frames = int(stream.get("nb_frames") or 0) or (round(duration * fps) if duration and fps else 0)
    return VideoInfo(
        width=int(stream.get("width") or 0),
        height=int(stream.get("height") or 0),
        fps=fps,
        num_frames=num_frames,
        duration=duration,
        codec=str(stream.get("codec_name", "")),
        pix_fmt=str(stream.get("pix_fmt", "")),
    )


def _resize(stream, size: int, resize_mode: str):
    if resize_mode == "crop":
        stream = stream.filter("scale", size, size, force_original_aspect_ratio="increase", flags="area")
        return stream.filter("crop", size, size)
    if resize_mode == "squash":
        return stream.filter("scale", size, size, flags="area")
    if resize_mode == "pad":
        stream = stream.filter("scale", size, size, force_original_aspect_ratio="decrease", flags="area")
        return stream.filter("pad", size, size, "(ow-iw)/2", "(oh-ih)/2", color="black")
    raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, got {resize_mode!r}")


def _expected_frames(info: VideoInfo, fps: float | None) -> int:
    if fps is None:
        return info.num_frames
    if info.duration:
        return round(info.duration * fps)
    return 0


LEVEL = re.compile(r"\[(info|warning|error|fatal|panic)\] ")


class _StderrReader:
    """Drains ffmpeg's stderr (it blocks once the pipe fills): header facts, plus the last problems."""

    def __init__(self):
        self.header: list[str] = []
        self.tail: deque = deque(maxlen=STDERR_TAIL_LINES)
        self._in_input = False

    def feed(self, pipe) -> None:
        for raw in iter(pipe.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            level = LEVEL.search(line)
            if level and level.group(1) == "info":
                if line.startswith("[info] Input #"):
                    self._in_input = True
                elif not line.startswith("[info]  "):
                    self._in_input = False  # "Stream mapping", "Output #0": past the input's description
                if self._in_input and len(self.header) < 200:
                    self.header.append(line[len("[info] "):])
            else:
                self.tail.append(LEVEL.sub("", line, count=1))

    def info(self) -> VideoInfo | None:
        """What ffmpeg said about the input: container duration and the first video stream's rate."""
        duration, stream = 0.0, None
        for line in self.header:
            found = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", line)
            if found:
                hours, minutes, seconds = found.groups()
                duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
            if stream is None and re.search(r"Stream #\d+:\d+.*: Video: ", line):
                stream = line
        if stream is None:
            return None
        rate = re.search(r"([\d.]+)(k?) (?:fps|tbr)", stream)
        fps = float(rate.group(1)) * (1000 if rate.group(2) else 1) if rate else 0.0
        size = re.search(r", (\d+)x(\d+)", stream)
        codec = re.search(r"Video: (\w+)", stream)
        return VideoInfo(width=int(size.group(1)) if size else 0, height=int(size.group(2)) if size else 0,
                         fps=fps, num_frames=round(duration * fps), duration=duration,
                         codec=codec.group(1) if codec else "")


def _run_decoder(cmd: list[str], timeout_s: float, path: Path) -> tuple[bytes, int, _StderrReader]:
    """Run ffmpeg, reading its raw frames from stdout while a thread drains stderr; killed after ``timeout_s``."""
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stderr = _StderrReader()
    drainer = threading.Thread(target=stderr.feed, args=(proc.stderr,), daemon=True)
    drainer.start()
    timed_out = threading.Event()

    def kill_hung() -> None:
        timed_out.set()
        proc.kill()

    timer = threading.Timer(timeout_s, kill_hung)
    timer.start()
    try:
        raw = proc.stdout.read()
        returncode = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        drainer.join(timeout=5)
        proc.stdout.close()
        proc.stderr.close()
    if timed_out.is_set():
        raise VideoError(f"{path}: decode timed out after {timeout_s:g}s (ffmpeg killed)",
                         _tail("\n".join(stderr.tail)))
    return raw, returncode, stderr


def _check_frames(path: Path, raw: bytes, returncode: int, stderr: _StderrReader, size: int, fps: float | None,
                  info: VideoInfo | None, timeout_s: float) -> tuple[int, VideoInfo]:
    """(frames decoded, the video's info), or a VideoError naming what is wrong: ffmpeg failed, a partial frame,
    or fewer frames than the container promises (ffprobe asked only when something looks wrong)."""
    tail = _tail("\n".join(stderr.tail))
    frame_bytes = size * size * 3
    num_frames = len(raw) // frame_bytes
    authoritative = info is not None  # a caller's probe, or our own below
    if (returncode != 0 or num_frames == 0) and not authoritative:
        info, authoritative = probe(path, timeout_s=timeout_s), True  # names it: empty, no video, unreadable
    if info is None:
        info = stderr.info()
    if info is None:
        info, authoritative = probe(path, timeout_s=timeout_s), True
    expected = _expected_frames(info, fps)
    # some broken files decode with exit code 0: the frame count is the only honest check
    short = num_frames == 0 or (expected and num_frames < expected - max(2, expected // 50))
    if short and not authoritative and returncode == 0:
        # ffmpeg's header gives the container duration (audio can outlast video): ask ffprobe for the stream's
        info = probe(path, timeout_s=timeout_s)
        expected = _expected_frames(info, fps)
        short = expected and num_frames < expected - max(2, expected // 50)
    damage = f"decoded {num_frames} of {expected or '?'} frames, truncated or corrupt" if short else ""
    if returncode != 0:
        detail = f"; {damage}" if damage else ""
        raise VideoError(f"{path}: ffmpeg failed with exit code {returncode} ({_first_line(tail)}){detail}", tail)
    if len(raw) % frame_bytes:
        raise VideoError(f"{path}: ffmpeg produced a partial frame ({len(raw) % frame_bytes} stray bytes)", tail)
    if short:
        raise VideoError(f"{path}: {damage} ({_first_line(tail)})", tail)
    return num_frames, info


def decode_video(
    path: str | os.PathLike,
    *,
    size: int,
    fps: float | None = None,
    resize_mode: str = "crop",
    timeout_s: float = 120.0,
    threads: int = 0,
    info: VideoInfo | None = None,
) -> tuple[np.ndarray, VideoInfo]:
    """Decode a whole video to uint8 (T, size, size, 3) RGB, optionally resampled to `fps`, plus its VideoInfo.

    Frame counts are checked against the container; ffprobe runs only when something looks wrong.
    `threads` is ffmpeg's decoder thread count (0 = ffmpeg decides); `info` (from `probe`) replaces
    what ffmpeg reports about the input.
    """
    if resize_mode not in RESIZE_MODES:
        raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, got {resize_mode!r}")
    path = Path(path)
    if not path.exists():
        raise VideoError(f"{path}: no such file")
    stream = ffmpeg.input(str(path), threads=threads).video
    if fps is not None:
        stream = stream.filter("fps", fps=fps)
    stream = _resize(stream, size, resize_mode)
    cmd = (
        stream.output("pipe:", format="rawvideo", pix_fmt="rgb24")
        .global_args("-nostdin", "-hide_banner", "-nostats", "-v", "level+info")
        .compile()
    )
    raw, returncode, stderr = _run_decoder(cmd, timeout_s, path)
    num_frames, info = _check_frames(path, raw, returncode, stderr, size, fps, info, timeout_s)
    return np.frombuffer(raw, np.uint8).reshape(num_frames, size, size, 3), info


def encode_mp4(frames: np.ndarray, path: str | os.PathLike, fps: float, *, crf: int = 18) -> None:
    """Write uint8 (T, H, W, 3) RGB frames as an H.264 yuv420p mp4 with the index up front."""
    frames = np.ascontiguousarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"expected uint8 frames (T, H, W, 3) with T > 0, got {frames.dtype} {frames.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    _, height, width, _ = frames.shape
    stream = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}", r=fps)
    if width % 2 or height % 2:
        # yuv420p needs even sides: pad one black row/column rather than fail
        stream = stream.filter("pad", "ceil(iw/2)*2", "ceil(ih/2)*2")
    cmd = (
        stream.output(
            # one encoder thread: the clips are tiny, thread start-up dominates, and fetch runs one ffmpeg per
            # core already (measured: 307 -> 210 ms per 32-frame 64x64 clip)
            str(tmp), format="mp4", vcodec="libx264", pix_fmt="yuv420p", crf=crf, movflags="+faststart", threads=1
        )
        .global_args("-nostdin", "-v", "error", "-y")
        .compile()
    )
    try:
        done = subprocess.run(cmd, input=frames.tobytes(), capture_output=True)
        if done.returncode != 0:
            tail = _tail(done.stderr)
            raise VideoError(f"{path}: ffmpeg could not encode ({_first_line(tail)})", tail)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
