"""MLflow pyfunc model (logged as code): seeds, and labels for conditional models, in; uint8 videos out.

This file is copied into every logged model and executed by ``mlflow.pyfunc.load_model``, so it
imports only torch, numpy, pandas and mlflow: a consumer needs no vgan installation.

Input: a DataFrame with an integer ``seed`` column and, for class-conditional models, an optional
integer ``label`` column (missing labels are drawn from the seed). Output: uint8 array
(N, T, H, W, 3), one RGB video per row, whatever the model paints (a grey model's one channel, ``channels`` 1 in
the model's metadata, is repeated: every consumer gets video it can show); the same seed always gives the same video.
"""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.pyfunc import PythonModel

BATCH_SIZE = 32
OUTPUT_CHANNELS = 3  # RGB out, also from grey models


def latent_for_seed(seed: int, latent_dim: int, num_classes: int) -> tuple[torch.Tensor, int | None]:
    """The latent (1, latent_dim) and default label for one seed, as ``G.sample_z``/``sample_labels`` draw them."""
    generator = torch.Generator().manual_seed(int(seed))
    z = torch.randn(1, latent_dim, generator=generator)
    label = int(torch.randint(0, num_classes, (1,), generator=generator)) if num_classes else None
    return z, label


def to_uint8_videos(video: torch.Tensor) -> np.ndarray:
    """float (B, C, T, H, W) in [-1, 1], C 1 or 3 -> uint8 (B, T, H, W, 3).

    vgan.util.media's ``to_uint8`` does the same inside vgan; this file may import nothing of vgan."""
    video = video.expand(-1, OUTPUT_CHANNELS, -1, -1, -1) if video.shape[1] == 1 else video
    scaled = ((video.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return scaled.permute(0, 2, 3, 4, 1).contiguous().numpy()


class VideoGeneratorModel(PythonModel):
    def load_context(self, context):
        import mlflow.pytorch

        with open(context.artifacts["spec"]) as handle:
            self.spec = json.load(handle)
        # saved in eval mode; an exported (pt2) module must not be switched (it refuses eval())
        self.generator = mlflow.pytorch.load_model(context.artifacts["generator"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        if "seed" not in frame.columns:
            raise ValueError("input needs an integer 'seed' column (one video per row)")
        num_classes = int(self.spec["num_classes"])
        labels_given = frame["label"].tolist() if "label" in frame.columns else [None] * len(frame)
        latents, labels = [], []
        for seed, given in zip(frame["seed"].tolist(), labels_given):
            z, drawn = latent_for_seed(seed, int(self.spec["latent_dim"]), num_classes)
            latents.append(z)
            if num_classes:
                label = drawn if given is None or pd.isna(given) else int(given)
                if not 0 <= label < num_classes:
                    raise ValueError(f"label {label} is outside 0..{num_classes - 1}")
                labels.append(label)
        if not latents:
            shape = (0, self.spec["frames"], self.spec["resolution"], self.spec["resolution"], OUTPUT_CHANNELS)
            return np.zeros(shape, dtype=np.uint8)
        z_all = torch.cat(latents)
        y_all = torch.tensor(labels, dtype=torch.int64) if num_classes else None
        outputs = []
        with torch.no_grad():
            for start in range(0, len(z_all), BATCH_SIZE):
                chunk = slice(start, start + BATCH_SIZE)
                args = (z_all[chunk],) if y_all is None else (z_all[chunk], y_all[chunk])
                outputs.append(to_uint8_videos(self.generator(*args)))
        return np.concatenate(outputs)


mlflow.models.set_model(VideoGeneratorModel())
