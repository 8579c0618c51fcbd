"""The self-trained evaluator: a small 3D-conv classifier of real clips whose features define
the always-available metrics (Fréchet distance, KVD, inception-style score in its space)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
import torch.nn.functional as F

from vgan.util.media import rgb


class EvaluatorNet(nn.Module):
    """Conv3d blocks -> global average pool -> features -> class logits.

    Trained on the real clips as stored (3 channels); grey clips (a 1-channel model's) are widened by ``rgb``,
    so every candidate is embedded alike."""

    def __init__(self, num_classes: int, channels: int = 3, width: int = 16):
        super().__init__()
        blocks, in_ch = [], channels
        for index, out_ch in enumerate((width, 2 * width, 4 * width, 8 * width)):
            pool = (1, 2, 2) if index == 0 else (2, 2, 2)
            blocks += [nn.Conv3d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm3d(out_ch), nn.ReLU(True),
                       nn.MaxPool3d(pool, ceil_mode=True)]
            in_ch = out_ch
        self.body = nn.Sequential(*blocks)
        self.classifier = nn.Linear(in_ch, num_classes)
        self.feature_dim = in_ch
        self.num_classes = num_classes

    def features(self, video: torch.Tensor) -> torch.Tensor:
        return self.body(rgb(video)).mean(dim=(2, 3, 4))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(video))


def train_evaluator(batches, num_classes: int, steps: int, lr: float, width: int, seed: int,
                    progress: bool = True) -> EvaluatorNet:
    """Train on an endless iterator of (video, labels) with light augmentation (flips in time, shifts)."""
    from vgan.util.progress import progress_bar

    torch.manual_seed(seed)
    net = EvaluatorNet(num_classes, width=width)
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    net.train()
    for _ in progress_bar(range(steps), desc="evaluator", unit="step", disable=not progress):
        video, labels = next(batches)
        if torch.rand(()) < 0.5:  # the label does not depend on the direction of time
            video = video.flip(2)
        shift = [int(s) for s in torch.randint(-2, 3, (2,))]
        video = torch.roll(video, shifts=shift, dims=(3, 4))
        loss = F.cross_entropy(net(video), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return net.eval()


@torch.no_grad()
def accuracy(net: EvaluatorNet, clips) -> float:
    correct = total = 0
    for video, labels in clips:
        correct += int((net(video).argmax(1) == labels).sum())
        total += len(labels)
    return correct / max(total, 1)


def save_evaluator(net: EvaluatorNet, path: str | Path, info: dict) -> None:
    """Weights plus ``info`` (val accuracy, label names) in one atomic file."""
    from vgan.util.torch_files import atomic_save

    atomic_save({"state": net.state_dict(), "num_classes": net.num_classes, "width": net.feature_dim // 8,
                 "info": info}, path)


def load_evaluator(path: str | Path, map_location="cpu") -> tuple[EvaluatorNet, dict]:
    """The trained evaluator and its info (val accuracy, label names)."""
    from vgan.util.errors import VganError

    from vgan.util.torch_files import load_torch_file

    state = load_torch_file(path, "evaluator", "run `vgan evaluator` to train it", map_location=map_location)
    if not isinstance(state, dict) or not {"num_classes", "width", "state", "info"} <= set(state):
        raise VganError(f"{path} is not a vgan evaluator; run `vgan evaluator` to train it again")
    net = EvaluatorNet(state["num_classes"], width=state["width"])
    net.load_state_dict(state["state"])
    return net.eval(), dict(state["info"])
