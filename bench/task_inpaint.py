"""Video inpainting (model.name=inpaint) against its baselines: temporal, biharmonic and blur fills.

    .venv/bin/python bench/task_inpaint.py                  # 1,500 steps (CPU: minutes)
    .venv/bin/python bench/task_inpaint.py --steps 50       # a quick look
    .venv/bin/python bench/task_inpaint.py --workdir /tmp/w # reuse a folder's data and evaluator if there

The same machinery as bench/task_vsr.py: the real stages (`vgan fetch`, `vgan shards`, `vgan evaluator` once, then
`vgan train` with the model's recommended objective, `vgan evaluate`, `vgan sample`) in a work folder with the
repository's params.yaml. Criterion: the model beats every fill on PSNR of the masked box and on the
evaluator-space Fréchet distance of the whole clips. Writes bench/results/task_inpaint_<device>.json and the
side-by-side frame (masked input | model | fills | truth) in docs/results/task_inpaint.png.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from task_vsr import main  # noqa: E402  (bench/, beside this file)

FILLS = ("temporal_fill", "biharmonic_fill", "blur_fill")
TASKS = {
    "inpaint": ("video inpainting", FILLS, [
        ("PSNR dB of the masked box, pooled over its pixels (higher is better)", "psnr", True),
        ("SSIM of the masked box (higher is better)", "ssim", True),
        ("evaluator-space Fréchet distance (lower is better)", "fd_evaluator", False),
        ("fd_motion (lower is better)", "fd_motion", False)], ("psnr", "fd_evaluator"), FILLS),
}
SHEETS = {"inpaint": "inpainting_sheet"}

if __name__ == "__main__":
    main("inpaint", TASKS, SHEETS, __doc__, steps=1500, batch_size=16)
