"""The figures behind tests/test_temporal_edges.py's EDGE_TOLERANCE: each model's edge deviation over seeds.

    python scripts/measure_temporal_edges.py                  # the test's models, seeds 0-4
    python scripts/measure_temporal_edges.py vgan tgan --seeds 3
    python scripts/measure_temporal_edges.py vgan --plain-edges   # the flaw the test exists for, put back

Runs the test's own measurement (``measure_edges``: TRAIN_STEPS steps on moving squares, then the exported
generator's per-frame standard deviation over CLIPS clips) and prints, per model and seed: how far the first or
last frame is from the middle frames of its own phase (what the test bounds), how far it is from the mean of all
middle frames (the test's former measure), and how far the middle frames spread among themselves, all relative
to the middle frames' mean; then each model's worst seed. ``--plain-edges`` (the test's ``plain_time_edges``)
swaps the edge-frame padding of the temporal transposed convolutions (vgan.models.layers) for zero padding, to show
that the test fails the flaw it guards against. One thread, so the figures do not depend on the core count.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def main(argv: list[str] | None = None) -> int:
    import torch
    from test_temporal_edges import (
        EDGE_MODELS,
        EDGE_OVERRIDES,
        EDGE_TOLERANCE,
        measure_edges,
        plain_time_edges,
    )

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=EDGE_MODELS, help="architectures (default: the test's)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    parser.add_argument("--plain-edges", action="store_true", help="without the edge-frame padding (the old flaw)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"{'model':<12} {'seed':>4} {'edge off':>9} {'(all middle)':>13} {'middle spread':>14}  per-frame std")
    worst = {}
    for name in args.models:
        for seed in range(args.seeds):
            with tempfile.TemporaryDirectory() as folder, \
                    plain_time_edges() if args.plain_edges else contextlib.nullcontext():
                stds, edges, spread = measure_edges(name, Path(folder), seed, *EDGE_OVERRIDES.get(name, ()))
            middle = sum(stds[2:-2]) / len(stds[2:-2])
            all_middle = max(abs(stds[0] - middle), abs(stds[-1] - middle)) / middle
            worst[name] = max(worst.get(name, (0.0, 0.0, 0.0)), (edges, all_middle, spread))
            print(f"{name:<12} {seed:>4} {edges:>9.1%} {all_middle:>13.1%} {spread:>14.1%}  {stds}", flush=True)
    print(f"\nworst seed per model (tolerance {EDGE_TOLERANCE:.0%} of the middle frames' mean"
          f"{', plain transposed convolutions' if args.plain_edges else ''}):")
    for name, (edges, all_middle, spread) in worst.items():
        verdict = "within" if edges <= EDGE_TOLERANCE else "OVER"
        print(f"{name:<12} edge off {edges:6.1%}  (all middle {all_middle:6.1%})  middle spread {spread:6.1%}  "
              f"{verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
