"""A folder of videos labelled by anomaly kind, made with ffmpeg filters (none of them a kind `vgan anomaly` injects).

    .venv/bin/python bench/labelled_anomalies.py --out /tmp/labelled            # 12 videos of each kind
    .venv/bin/python bench/task_anomaly.py --folder /tmp/labelled               # score it with the predictor

`vgan fetch` renders fresh moving-digit videos (another seed than the training data's, 16 frames each, so that each
video is one clip of the default predictor); they are split evenly over the kinds and written as
``<out>/<kind>/<name>.mp4``: ``normal`` (as rendered), and from frame ``--onset`` on ``mirror`` (ffmpeg's hflip: the
digit flips left-right), ``blur`` (gblur, sigma 2), ``fade`` (fade to black over 4 frames) and ``shake`` (a crop
of the middle 3/4 scaled back, so the digit is 4/3 larger throughout, that jumps a few pixels every frame from the
onset: camera shake). Kinds are dealt round-robin over the videos shuffled with ``--seed``, so they mix digits.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import ffmpeg

REPO = Path(__file__).resolve().parents[1]
KINDS = ("normal", "mirror", "blur", "fade", "shake")


def apply(kind: str, stream, onset: int, fps: int, side: int):
    """The ffmpeg filter chain of one kind, active from frame ``onset`` on."""
    after = f"gte(n,{onset})"
    if kind == "mirror":
        return stream.filter("hflip", enable=after)
    if kind == "blur":
        return stream.filter("gblur", sigma=2, enable=after)
    if kind == "fade":
        return stream.filter("fade", type="out", start_frame=onset, nb_frames=4)
    if kind == "shake":
        margin = side // 8
        jitter = f"if({after},{margin}+{margin}*sin(n*2.1),{margin})"
        return (stream.filter("crop", w=side - 2 * margin, h=side - 2 * margin, x=jitter,
                              y=jitter.replace("sin(n*2.1)", "cos(n*2.9)"))
                .filter("scale", side, side, flags="neighbor"))
    return stream


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the folder to write (<out>/<kind>/*.mp4)")
    parser.add_argument("--per-kind", type=int, default=12, help="videos of each kind")
    parser.add_argument("--seed", type=int, default=7, help="the moving digits' seed (training data: 0)")
    parser.add_argument("--onset", type=int, default=8, help="the first anomalous frame of 16")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / "raw"
        subprocess.run([str(Path(sys.executable).parent / "vgan"), "fetch", f"--set=data.raw_dir={raw}",
                        f"--set=data.seed={args.seed}", f"--set=data.num_videos={args.per_kind * len(KINDS)}",
                        "--set=data.frames=16", f"--set=data.download_dir={Path(scratch) / 'downloads'}"],
                       cwd=REPO, check=True, capture_output=True)
        videos = sorted(raw.rglob("*.mp4"))
        random.Random(args.seed).shuffle(videos)  # kinds across digits (the videos cycle through the classes)
        for index, video in enumerate(videos):
            kind = KINDS[index % len(KINDS)]
            target = args.out / kind / video.name
            target.parent.mkdir(parents=True, exist_ok=True)
            probe = ffmpeg.probe(str(video))["streams"][0]
            fps = int(probe["r_frame_rate"].split("/")[0])
            stream = apply(kind, ffmpeg.input(str(video)).video, args.onset, fps, int(probe["width"]))
            partial = target.with_name(f".{target.name}.partial.mp4")
            (ffmpeg.output(stream, str(partial), vcodec="libx264", pix_fmt="yuv420p", crf=18,
                           movflags="+faststart").overwrite_output().run(quiet=True))
            partial.replace(target)
    counts = {kind: len(list((args.out / kind).glob("*.mp4"))) for kind in KINDS}
    print(f"wrote {sum(counts.values())} videos under {args.out}: " + ", ".join(f"{k} {n}" for k, n in counts.items()))


if __name__ == "__main__":
    main()
