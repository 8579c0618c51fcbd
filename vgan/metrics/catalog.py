"""What the metrics stage can measure, by name: baselines and protocols (no torch, no numpy).

Params validation reads these names at every stage, so they live apart from the code that computes them.
"""

from __future__ import annotations

from dataclasses import dataclass

BASELINE_NAMES = ("real_vs_real", "static", "shuffled", "noise")
ISV_PROTOCOL = "isv2048_ucf"  # 2048 generated 16-frame clips, 10 splits, as StyleGAN-V (vgan.metrics.c3d)


@dataclass(frozen=True)
class Protocol:
    """How a distance is measured: network, clip counts, frames per clip and their spacing."""

    name: str
    network: str  # "i3d" or "inception"
    num_real: int
    num_generated: int
    num_frames: int
    subsample: int = 1
    one_frame_per_clip: bool = False  # image metrics: one seeded frame of each clip

    @property
    def frames_needed(self) -> int:
        return (self.num_frames - 1) * self.subsample + 1

    @property
    def kernel_name(self) -> str:
        return self.name.replace("fvd", "kvd", 1).replace("fid", "kid", 1)


PROTOCOLS = {protocol.name: protocol for protocol in (
    Protocol("fvd2048_16f", "i3d", 2048, 2048, 16),
    Protocol("fvd2048_128f", "i3d", 2048, 2048, 128),
    Protocol("fvd2048_128f_subsample8f", "i3d", 2048, 2048, 16, subsample=8),
    Protocol("fid_frames2048", "inception", 2048, 2048, 1, one_frame_per_clip=True),
)}


def baseline_key(name: str, metric: str) -> str:
    """The metric (and version tag ``metric.<key>``) holding a baseline's value of ``metric``."""
    return f"baseline_{name}_{metric}"
