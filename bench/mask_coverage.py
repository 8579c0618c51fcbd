"""How much of each frame VGAN's foreground mask covers, against how much the digits cover.

    .venv/bin/python bench/mask_coverage.py <work folder>/models/generator.pt ... [--clips 64]

VGAN paints video = mask * foreground + (1 - mask) * background. For each generator file (a VGAN's, e.g. the
``models/generator.pt`` of a ``bench/quality.py`` work folder) it draws ``--clips`` latents (seed 0, the EMA weights the
file holds) and prints a table: the mask's mean, the share of pixels where it is open (> 0.5), the share of bright
pixels (> 0: the digits), and the mask's mean over dark (< -0.5) and bright pixels. The paper's mask prior
(``train.mask_weight``) is meant to shut the mask where nothing moves; this shows whether it is shut.
Writes nothing: the table is the result, cited with this command.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from vgan.train.generator_file import load_generator  # noqa: E402


def coverage(path: str, clips: int) -> dict[str, float]:
    G, _ = load_generator(path)  # the EMA weights, in eval mode
    if not getattr(G, "has_mask", False):
        raise SystemExit(f"mask_coverage: {path}: {type(G).__name__} has no foreground mask (only VGAN's has)")
    with torch.no_grad():
        views = G.views(G.sample_z(clips, generator=torch.Generator().manual_seed(0)))
    mask, video = views["mask"].float(), views["video"].float()
    return {"mask mean": float(mask.mean()), "mask open (> 0.5)": float((mask > 0.5).float().mean()),
            "bright pixels (> 0)": float((video > 0).float().mean()),
            "mask over dark pixels": float(mask[video < -0.5].mean()),
            "mask over bright": float(mask[video > 0].mean())}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("generators", nargs="+", help="VGAN generator files (models/generator.pt)")
    parser.add_argument("--clips", type=int, default=64, help="clips drawn per generator (default 64)")
    args = parser.parse_args(argv)
    rows = [(path, coverage(path, args.clips)) for path in args.generators]
    columns = list(rows[0][1])
    print("| generator | " + " | ".join(columns) + " |")
    print("| --- |" + " --- |" * len(columns))
    for path, values in rows:
        cells = " | ".join(f"{value:.3f}" for value in values.values())
        print(f"| {Path(path).parent.parent.name}/{Path(path).name} | {cells} |")


if __name__ == "__main__":
    main()
