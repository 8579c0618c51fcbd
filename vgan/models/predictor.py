"""Video prediction: from the first real frames of a clip, generate the frames that follow.

``model.predictor.context_frames`` real frames are given; the model predicts the remaining
``model.frames - context_frames``, one frame at a time, each from the ``context_frames`` frames before it
(its own predictions once the real ones run out).

Each step is a small U-Net over the context frames and their differences (the noise and label enter at its
coarsest level). It outputs a flow field, a mask and a foreground: the next frame is the last frame warped by
the flow (bilinear sampling), with the foreground painted where the mask opens (what the warp cannot explain:
new content, edges). Moving content is moved rather than repainted, so the model learns the motion in a few
hundred CPU steps (the anomaly detector's needs, `vgan anomaly`); the flow starts at zero (a copy of the last
frame, the baseline it must beat). The discriminator judges context + rolled-out future as one clip; the
reconstruction loss compares each future frame predicted from the real frames before it with the real one
(teacher forcing, ``training_pair``); metrics score the rolled-out future (``reconstruction``).
Objective: ``RECOMMENDED_OVERRIDES`` below.
Longer horizons roll out the same way: ``G(z, y, context, num_frames=n)``.
"""

from __future__ import annotations

import torch
from torch import nn

from vgan.models.base import VideoGenerator
from vgan.models.layers import ConditionalInput, warp
from vgan.models.nets import Conv3dDiscriminator

# DCGAN's objective with a faster generator (lr_g 1e-3; at 2e-4 the reconstruction error after 80 steps was 0.21,
# at 1e-3 0.11) and L1 weighted 100x the adversarial term (pix2pix's lambda). Measured on the moving digits (batch
# 16, CPU; the mean error on normal frames, copying the last frame: 0.036): adversarial/L1 0.5/0.5 and 0.1/1 (with
# gradient clipping) collapsed by step 250 (the discriminator won, the generator's gradient norm reached 400, the
# flow saturated); 0.05/1 reached 0.027 at step 300 and collapsed by step 600 (0.088); 0.01/1 reached 0.021 at 300
# Adam's beta2 is 0.99, not DCGAN's 0.999: with 0.999, training seed 2 spiked at step ~1,620 of 2,000 and its
# freeze/reverse/identity AUC fell to 0.885/0.70/0.81. After a quiet stretch, one sudden large gradient moves a
# weight by up to (1 - beta1) / sqrt(1 - beta2) times the learning rate: ~16x with 0.999, 5x with 0.99. With 0.99:
# no spike on training seeds 0, 1 and 2, every anomaly type at AUC >= 0.9 on every injection seed
# (bench/results/task_anomaly_2000steps_train_seed{0,1,2}_betas099_cpu.json; docs/results.md).
RECOMMENDED_OVERRIDES = ("train.loss=bce", "train.lr_g=1e-3", "train.lr_d=2e-4", "train.betas=[0.5,0.99]",
                         "train.adv_weight=0.01", "train.recon_weight=1", "train.recon_loss=l1")
FLOW_LIMIT = 4.0  # pixels: the flow is FLOW_LIMIT * tanh(head). Unbounded, a 300-step CPU run pushed it to ~1000 px:
# every pixel sampled the black border, a black frame with zero gradient, and training stalled there for good


# The mask's initial logit. Where the mask is open the frame is the foreground, which starts near 0 (mid-grey), so
# an open fraction m fades every rolled-out frame by m towards grey: sigmoid(-3) = 4.7 % per frame compounded (the
# untrained rollout's std fell 0.66 -> 0.51 over 6 frames). sigmoid(-8) = 0.03 %: a copy of the last frame. Adam
# scales steps by the gradient's own size, so the mask still opens where the foreground helps.
MASK_BIAS = -8.0

# The heads (flow, mask, foreground) end in tanh or sigmoid. A training run without a bound (seed 2, 2,000 steps,
# bench/results/task_anomaly_2000steps_train_seed2_diverged_cpu.json) diverged at step ~1,620: one discriminator spike,
# the U-Net's features grew from a mean |h| of 0.18 to 167, every head saturated (the mask wide open, a white frame, the
# flow at its limit) and no gradient came back. The heads therefore see their input features scaled down to an RMS
# of at most HEAD_INPUT_RMS per clip. Features below it (normal training: ~0.2) pass unchanged.
HEAD_INPUT_RMS = 1.0


def _conv(in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel, stride, (kernel - 1) // 2 if stride == 1 else 1),
                         nn.LeakyReLU(0.2, True))


class FlowUNet(nn.Module):
    """Context frames (B, C, Tc, H, W) + code (B, code_dim) -> the next frame (B, C, 1, H, W).

    Three levels (full, 1/2 and 1/4 resolution; widths w, 2w, 4w) with skip connections; the code is added
    at the coarsest level. Heads: flow (2 channels, pixels, at most FLOW_LIMIT), mask (1), foreground (C)."""

    def __init__(self, channels: int, context_frames: int, code_dim: int, width: int):
        super().__init__()
        w = width
        self.down1 = nn.Sequential(_conv(channels * (2 * context_frames - 1), w), _conv(w, w))
        self.down2 = nn.Sequential(_conv(w, 2 * w, 4, 2), _conv(2 * w, 2 * w))
        self.down3 = nn.Sequential(_conv(2 * w, 4 * w, 4, 2), _conv(4 * w, 4 * w))
        self.code = nn.Linear(code_dim, 4 * w)
        self.up2 = nn.Sequential(nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1), nn.LeakyReLU(0.2, True))
        self.merge2 = _conv(4 * w, 2 * w)
        self.up1 = nn.Sequential(nn.ConvTranspose2d(2 * w, w, 4, 2, 1), nn.LeakyReLU(0.2, True))
        self.merge1 = _conv(2 * w, w)
        self.heads = nn.Conv2d(w, 2 + 1 + channels, 3, 1, 1)
        with torch.no_grad():  # start as a copy of the last frame: no flow, the mask shut
            self.heads.weight.mul_(0.1)
            self.heads.bias.zero_()
            self.heads.bias[2] = MASK_BIAS

    def forward(self, context: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        differences = context[:, :, 1:] - context[:, :, :-1]
        h1 = self.down1(torch.cat([context.flatten(1, 2), differences.flatten(1, 2)], dim=1))
        h2 = self.down2(h1)
        h3 = self.down3(h2) + self.code(code)[:, :, None, None]
        h2 = self.merge2(torch.cat([self.up2(h3), h2], dim=1))
        h1 = self.merge1(torch.cat([self.up1(h2), h1], dim=1))
        rms = h1.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt()
        out = self.heads(h1 / (rms / HEAD_INPUT_RMS).clamp(min=1.0))
        flow, mask, foreground = FLOW_LIMIT * torch.tanh(out[:, :2]), torch.sigmoid(out[:, 2:3]), torch.tanh(out[:, 3:])
        warped = warp(context[:, :, -1], flow)
        return (mask * foreground + (1 - mask) * warped)[:, :, None]


class PredictorGenerator(VideoGenerator):
    """Context frames + noise (+ label) -> the next frame by ``FlowUNet``, rolled out one frame at a time."""

    variable_length = True
    task = "prediction"
    input_baseline = "copy_last_frame"

    def __init__(self, z_dim=100, num_classes=0, channels=3, frames=16, resolution=64, width=32, context_frames=4):
        super().__init__(z_dim, num_classes, channels, frames, resolution)
        self.context_frames = context_frames
        self.future_frames = frames - context_frames
        if resolution % 4:
            raise ValueError(f"the predictor's U-Net halves the frame twice: model.resolution {resolution} must be a "
                             f"multiple of 4")
        self.cond = ConditionalInput(z_dim, num_classes)
        self.step = FlowUNet(channels, context_frames, self.cond.out_dim, width)

    def forward(self, z, y=None, context=None, num_frames=None):
        return self._roll_out(self.cond(z, y), context, num_frames or self.future_frames)

    def _roll_out(self, code, context, num_frames):
        if context is None or context.shape[2] != self.context_frames:
            got = None if context is None else tuple(context.shape)
            raise ValueError(f"the predictor needs context frames (B, C, {self.context_frames}, H, W); got {got}")
        frames = []
        for _ in range(num_frames):
            frames.append(self.step(context, code))
            context = torch.cat([context[:, :, 1:], frames[-1]], dim=2)
        return torch.cat(frames, dim=2)

    def views(self, z, y=None, context=None):
        """The rolled-out clip for the discriminator, and the code it was made with (for ``training_pair``)."""
        code = self.cond(z, y)
        return {"video": self.full_clip(context, self._roll_out(code, context, self.future_frames)), "code": code}

    def training_pair(self, views, real):
        """Teacher forcing: every future frame predicted from the real frames before it (the code of ``views``),
        against the real frame. A loss on the rolled-out frames instead collapsed training within 20 CPU steps
        (lr 1e-3: the flow saturated and the mask shut, a black frame with no gradient); one-step errors are also
        what ``vgan anomaly`` scores."""
        c, future = self.context_frames, self.future_frames
        windows = real.unfold(2, c, 1)[:, :, :future]  # (B, C, future, H, W, c): frames j-c..j-1 for j = c..
        windows = windows.permute(0, 2, 1, 5, 3, 4).flatten(0, 1)  # (B * future, C, c, H, W)
        code = views["code"].repeat_interleave(future, dim=0)
        predicted = self.step(windows, code).unflatten(0, (real.shape[0], future))  # (B, future, C, 1, H, W)
        return predicted[:, :, :, 0].transpose(1, 2), real[:, :, c:]

    @property
    def given_frames(self):
        return list(range(self.context_frames))

    def condition(self, real):
        return real[:, :, : self.context_frames]

    def full_clip(self, context, output):
        return torch.cat([context, output], dim=2)

    def baselines(self, context):
        """The last context frame held for the rest of the clip."""
        future = context[:, :, -1:].expand(-1, -1, self.future_frames, -1, -1)
        return {"copy_last_frame": torch.cat([context, future], dim=2)}

    def reconstruction(self, views, real):
        return views["video"][:, :, self.context_frames:], real[:, :, self.context_frames:]


def build(params):
    G = PredictorGenerator(params.z_dim, params.num_classes, params.channels, params.frames, params.resolution,
                           params.width, params.predictor.context_frames)
    D = Conv3dDiscriminator(params.num_classes, params.channels, params.frames, params.resolution, params.discriminator_width,
                            params.spectral_norm)
    return G, {"video": D}
