"""Four layers computed two ways, timed side by side in one run: torch's CPU kernels against this project's.

    .venv/bin/python bench/bench_layers.py            # 2 threads (OMP_NUM_THREADS), as the presets are timed
    .venv/bin/python bench/bench_layers.py --repeats 5

- ``output layer``: a 3D generator's last transposed convolution (32 -> 1 channel, stride 2 in time and space, on
  the CPU presets' batch of 16 clips of 16 frames at 32x32; VGAN has two, for its foreground and its mask), as
  ``nn.ConvTranspose3d`` and as ``layers.subpixel_conv_transpose`` (the same function: ``TimeConvTranspose3d(...,
  subpixel=True)``).
- ``image output layer``: an image generator's last transposed convolution (32 -> 1 channel, stride 2) over every
  frame of the batch (TGAN's and MoCoGAN's: 16 clips x 16 frames), ``nn.ConvTranspose2d`` against
  ``layers.ConvTranspose2d(..., subpixel=True)``.
- ``minibatch std``: the minibatch-stddev feature of TGAN's, HRVGAN's and StyleGAN-V's discriminators (groups of 4
  over the 16 clips' 64 x 4 x 4 x 4 features), with ``torch.var`` over the group dimension against
  ``layers.MinibatchStd`` (the variance written out as the mean of squared deviations).
- ``refiner``: progressive's refiner (a residual stack of 3x3 convolutions at full resolution, 8 channels at its CPU
  preset's width 16), as 3D convolutions of (1, 3, 3) over the clip (how it was written before) and as
  ``progressive.Refiner`` (the frames as one batch of images in channels-last memory).

Each is forward and backward under bf16 autocast (the presets' precision on a CPU with AMX), ``--steps`` calls after
3 untimed ones, the two ways alternating ``--repeats`` times; the table shows each way's median and their ratio.
Writes bench/results/layers_cpu.json. Run it alone: another process on the cores slows every call.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from quality import git_commit, public_command  # noqa: E402  (bench/, beside this file)
from vgan.util.cpu import cpu_model  # noqa: E402
from vgan.util.io import write_json  # noqa: E402
from vgan.models.layers import ConvTranspose2d, MinibatchStd, TimeConvTranspose3d  # noqa: E402
from vgan.models.progressive import Refiner  # noqa: E402


class MinibatchStdByVar(MinibatchStd):
    """layers.MinibatchStd with torch.var over the group dimension: the same function, how it was written before."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        grouped = x.reshape(self.group_size, batch // self.group_size, *x.shape[1:])
        feature = (grouped.var(dim=0, unbiased=False) + 1e-8).sqrt().flatten(1).mean(dim=1)
        feature = feature.repeat(self.group_size).reshape(batch, 1, *([1] * (x.dim() - 2)))
        return torch.cat([x, feature.expand(batch, 1, *x.shape[2:])], dim=1)


class Refiner3d(nn.Module):
    """progressive.Refiner as 3D convolutions of (1, 3, 3) over the clip: the same function, the earlier layout."""

    def __init__(self, refiner: Refiner):
        super().__init__()
        self.factor = refiner.factor

        def conv3d(conv: nn.Conv2d) -> nn.Conv3d:
            layer = nn.Conv3d(conv.in_channels, conv.out_channels, (1, 3, 3), 1, (0, 1, 1))
            layer.weight.data.copy_(conv.weight.data.unsqueeze(2))
            layer.bias.data.copy_(conv.bias.data)
            return layer

        def norm3d(norm: nn.BatchNorm2d) -> nn.BatchNorm3d:
            layer = nn.BatchNorm3d(norm.num_features)
            layer.load_state_dict(norm.state_dict())
            return layer

        self.stem = nn.Sequential(conv3d(refiner.stem[0]), nn.ReLU(True))
        self.blocks = nn.ModuleList(
            nn.Sequential(conv3d(b[0]), norm3d(b[1]), nn.ReLU(True), conv3d(b[3]), norm3d(b[4]))
            for b in refiner.blocks)
        self.to_video = conv3d(refiner.to_video)

    def forward(self, low: torch.Tensor) -> torch.Tensor:
        h = self.stem(F.interpolate(low, scale_factor=(1, self.factor, self.factor), mode="trilinear",
                                    align_corners=False))
        for block in self.blocks:
            h = F.relu(h + block(h))
        return torch.tanh(self.to_video(h))


def seconds_per_call(layer: nn.Module, x: torch.Tensor, steps: int) -> float:
    x = x.clone().requires_grad_()
    for call in range(3 + steps):
        if call == 3:
            started = time.perf_counter()
        with torch.autocast("cpu", torch.bfloat16):
            out = layer(x)
        out.float().square().mean().backward()
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed calls per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="alternations of the two ways")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/layers_cpu.json")
    args = parser.parse_args()
    torch.manual_seed(0)
    subpixel = TimeConvTranspose3d(32, 1, (4, 4, 4), (2, 2, 2), 1, subpixel=True)
    plain = TimeConvTranspose3d(32, 1, (4, 4, 4), (2, 2, 2), 1)
    plain.load_state_dict(subpixel.state_dict())
    image_subpixel = ConvTranspose2d(32, 1, 4, 2, 1, subpixel=True)
    image_plain = nn.ConvTranspose2d(32, 1, 4, 2, 1)
    image_plain.load_state_dict(image_subpixel.state_dict())
    refiner = Refiner(1, 8, 2)
    cases = [("output layer 32 -> 1", torch.randn(16, 32, 8, 16, 16), ("nn.ConvTranspose3d", plain),
              ("subpixel_conv_transpose", subpixel)),
             ("image output layer 32 -> 1", torch.randn(256, 32, 16, 16), ("nn.ConvTranspose2d", image_plain),
              ("subpixel_conv_transpose", image_subpixel)),
             ("minibatch std, groups of 4", torch.randn(16, 64, 4, 4, 4), ("torch.var", MinibatchStdByVar(4)),
              ("mean of squared deviations", MinibatchStd(4))),
             ("progressive refiner, width 8", torch.randn(16, 1, 16, 16, 16), ("Conv3d (1, 3, 3)", Refiner3d(refiner)),
              ("frames as images, channels-last", refiner))]
    rows = []
    print(f"{'layer':30s} {'torch / before':>32s} {'ms':>7s} {'this project':>32s} {'ms':>7s} {'ratio':>6s}")
    for name, x, (before_name, before), (after_name, after) in cases:
        with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
            difference = (before(x).float() - after(x).float()).abs().max().item()
        times = {before_name: [], after_name: []}
        for _ in range(args.repeats):
            for label, layer in ((before_name, before), (after_name, after)):
                times[label].append(seconds_per_call(layer, x, args.steps))
        before_s, after_s = statistics.median(times[before_name]), statistics.median(times[after_name])
        rows.append({"layer": name, "input": list(x.shape), "before": before_name,
                     "before_ms": round(before_s * 1e3, 2), "after": after_name, "after_ms": round(after_s * 1e3, 2),
                     "ratio": round(after_s / before_s, 3),
                     "max_output_difference_bf16": round(difference, 4)})
        print(f"{name:30s} {before_name:>32s} {before_s * 1e3:7.2f} {after_name:>32s} {after_s * 1e3:7.2f} "
              f"{after_s / before_s:6.2f}", flush=True)
    result = {"command": public_command("bench/bench_layers.py", sys.argv[1:]), "git_commit": git_commit(),
              "date": datetime.date.today().isoformat(), "device": "cpu", "cpu_model": cpu_model(),
              "cpu_count": os.cpu_count(),
              "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
              "load_average_before": os.getloadavg()[0], "unit": "ms per call, forward and backward, bf16 autocast",
              "rows": rows}
    write_json(args.out, result)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
