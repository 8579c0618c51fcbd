"""ffmpeg video I/O: encode, probe, decode with resampling, resize modes, broken inputs, hangs."""

import os
import subprocess

import numpy as np
import pytest

from vgan.data.video import VideoError, VideoInfo, decode_video, encode_mp4, probe

pytestmark = pytest.mark.slow


def decode(path, **options):
    """The frames of ``decode_video`` without its VideoInfo."""
    return decode_video(path, **options)[0]


def lavfi(path, source="testsrc2", size="96x64", rate=10, seconds=2, pix_fmt="yuv420p", codec="libx264"):
    """Write a synthetic video with ffmpeg's lavfi sources."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"{source}=size={size}:rate={rate}:duration={seconds}",
         "-pix_fmt", pix_fmt, "-c:v", codec, str(path)],
        check=True,
    )
    return path


def stripes(frames=12, height=40, width=80):
    """Left half red, right half blue: resize modes are easy to tell apart."""
    video = np.zeros((frames, height, width, 3), np.uint8)
    video[:, :, : width // 2, 0] = 255
    video[:, :, width // 2 :, 2] = 255
    return video


def test_encode_then_probe_reports_what_was_written(tmp_path):
    path = tmp_path / "clip.mp4"
    encode_mp4(stripes(frames=12), path, fps=6)
    info = probe(path)
    assert (info.width, info.height, info.num_frames, info.codec, info.pix_fmt) == (80, 40, 12, "h264", "yuv420p")
    assert info.fps == pytest.approx(6) and info.duration == pytest.approx(2.0)
    assert sorted(os.listdir(tmp_path)) == ["clip.mp4"]  # no temp file left behind
    boxes = top_level_boxes(path.read_bytes())  # faststart: the index (moov) precedes the media data (mdat)
    assert "moov" in boxes and "mdat" in boxes and boxes.index("moov") < boxes.index("mdat"), boxes


def top_level_boxes(data: bytes) -> list[str]:
    """The types of an MP4 file's top-level boxes, in file order (ISO/IEC 14496-12: 32-bit size, type; size 1 =
    a 64-bit size follows, size 0 = to the end of the file)."""
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = int.from_bytes(data[offset:offset + 4], "big"), data[offset + 4:offset + 8].decode("latin-1")
        header = 8
        if size == 1:
            size, header = int.from_bytes(data[offset + 8:offset + 16], "big"), 16
        elif size == 0:
            size = len(data) - offset
        assert size >= header, f"broken box {kind!r} at byte {offset}"
        boxes.append(kind)
        offset += size
    return boxes


def test_the_box_walker_tells_faststart_from_a_trailing_index(tmp_path):
    """The faststart check above can fail: ffmpeg without +faststart writes mdat before moov."""
    import subprocess

    plain = tmp_path / "plain.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=32x32:rate=5:duration=1",
                    "-pix_fmt", "yuv420p", str(plain)], check=True)
    boxes = top_level_boxes(plain.read_bytes())
    assert boxes.index("mdat") < boxes.index("moov")


def test_encode_round_trip_keeps_the_picture(tmp_path):
    video = stripes(frames=8, height=32, width=32)
    encode_mp4(video, tmp_path / "v.mp4", fps=8)
    decoded = decode(tmp_path / "v.mp4", size=32, resize_mode="squash")
    assert decoded.shape == (8, 32, 32, 3) and decoded.dtype == np.uint8
    # lossy codec, chroma subsampled: compare away from the red/blue edge
    assert np.abs(decoded[:, :, :12].astype(int) - video[:, :, :12]).mean() < 8
    assert np.abs(decoded[:, :, 20:].astype(int) - video[:, :, 20:]).mean() < 8


def test_encode_odd_sizes_and_rejects_bad_arrays(tmp_path):
    encode_mp4(stripes(frames=4, height=31, width=45), tmp_path / "odd.mp4", fps=4)
    assert probe(tmp_path / "odd.mp4").num_frames == 4
    with pytest.raises(ValueError, match="uint8"):
        encode_mp4(np.zeros((4, 8, 8, 3), np.float32), tmp_path / "f.mp4", fps=4)


def test_resize_modes(tmp_path):
    encode_mp4(stripes(), tmp_path / "wide.mp4", fps=6)
    crop = decode(tmp_path / "wide.mp4", size=20, resize_mode="crop")
    squash = decode(tmp_path / "wide.mp4", size=20, resize_mode="squash")
    pad = decode(tmp_path / "wide.mp4", size=20, resize_mode="pad")
    assert crop.shape == squash.shape == pad.shape == (12, 20, 20, 3)
    # pad letterboxes a 2:1 picture: black bars above and below, picture in the middle rows
    assert pad[:, :3].max() < 30 and pad[:, -3:].max() < 30 and pad[:, 10].max() > 200
    # crop and squash fill the frame; both keep red on the left and blue on the right
    for frames in (crop, squash):
        assert frames[:, :, 2, 0].mean() > 200 and frames[:, :, -3, 2].mean() > 200


def test_fps_resampling_changes_the_frame_count(tmp_path):
    lavfi(tmp_path / "v.mp4", rate=10, seconds=2)
    assert decode(tmp_path / "v.mp4", size=16).shape[0] == 20
    assert decode(tmp_path / "v.mp4", size=16, fps=5).shape[0] == 10
    assert decode(tmp_path / "v.mp4", size=16, fps=20).shape[0] == 40


@pytest.mark.parametrize(
    "pix_fmt,codec,size", [("yuv444p", "libx264", "97x61"), ("gray", "ffv1", "50x70"), ("yuv420p", "mpeg4", "66x38")]
)
def test_unusual_pixel_formats_and_odd_sizes_decode_to_rgb(tmp_path, pix_fmt, codec, size):
    path = lavfi(tmp_path / "v.mkv", size=size, pix_fmt=pix_fmt, codec=codec, seconds=1)
    frames = decode(path, size=24)
    assert frames.shape == (10, 24, 24, 3) and frames.dtype == np.uint8
    if pix_fmt == "gray":
        assert np.array_equal(frames[..., 0], frames[..., 1])


def test_broken_inputs_raise_with_a_reason(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    audio = tmp_path / "tone.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=duration=1", str(audio)], check=True)
    cases = {empty: "empty file", text: "ffprobe cannot read", audio: "no video stream",
             tmp_path / "missing.mp4": "no such file"}
    for path, reason in cases.items():
        with pytest.raises(VideoError, match=reason):
            decode(path, size=16)


@pytest.mark.parametrize("faststart,reason", [(True, "truncated"), (False, "cannot read")])
def test_truncated_mp4_is_detected_even_when_ffmpeg_exits_zero(tmp_path, faststart, reason):
    path = lavfi(tmp_path / "whole.mp4", seconds=4)
    if faststart:  # index up front: ffmpeg decodes the first half, complains, and exits 0
        encode_mp4(decode(path, size=32), path, fps=10)
    data = path.read_bytes()
    cut = tmp_path / "half.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match=reason) as err:
        decode(cut, size=16)
    # ffmpeg's own words travel with the error, for the quarantine list
    assert ("partial file" if faststart else "moov atom not found") in err.value.stderr_tail


def test_a_hung_read_is_killed_by_the_timeout(tmp_path):
    fifo = tmp_path / "stalled.mp4"
    os.mkfifo(fifo)  # nobody ever writes: opening it blocks like a stalled network mount
    with pytest.raises(VideoError, match="ffprobe timed out"):
        probe(fifo, timeout_s=0.5)
    known = VideoInfo(width=16, height=16, fps=10, num_frames=10, duration=1.0, codec="h264")
    with pytest.raises(VideoError, match="decode timed out"):
        decode(fifo, size=16, timeout_s=0.5, info=known)


def test_audio_longer_than_the_video_is_not_mistaken_for_truncation(tmp_path):
    path = tmp_path / "av.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10:duration=2",
                    "-f", "lavfi", "-i", "sine=duration=3", "-pix_fmt", "yuv420p", "-c:v", "libx264", str(path)],
                   check=True)
    assert probe(path).num_frames == 20
    assert decode(path, size=16).shape[0] == 20
