"""Video inpainting: a clip with a box masked in every frame (+ the mask) -> the clip with the box filled.

The box is ``model.inpaint.box_fraction`` of the frame's side; on ``model.inpaint.moving_share`` of the clips it
moves in a straight line across the clip, on the rest it stays put. The condition is the masked clip (masked
pixels 0) and the mask as one more channel. The generator starts from the temporal fill (each masked pixel copied
from the nearest frame where it is visible) with a blur fill where no frame shows it (every pixel of a static
box), and adds a residual inside the box that a small 3D-conv network computes from the fill and the mask (at half
resolution, pixel-unshuffled; its last layer starts near zero, so training starts at that fill). Pixels outside the
box pass through exactly. A temporal discriminator (strided 3D convolutions) judges the whole clip.
Objective: ``--set train.recon_loss=l2 train.recon_weight=1 train.adv_weight=0.01``.
Boxes: random (the global torch generator, which checkpoints restore) while G trains; in eval mode a fixed
sequence (``MASK_SEED``) by position in the batch, so the same clips always get the same boxes and the metrics,
samples and baselines agree. Metrics score the box only (PSNR, SSIM of its pixels; Fréchet distances of whole clips).
Baselines: temporal fill (the biharmonic fill where no frame shows the pixel: a static box has none), the
biharmonic fill of each frame (scikit-image's ``inpaint_biharmonic``) and a blur fill (normalised Gaussian
convolution of the visible pixels).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from vgan.models.base import VideoGenerator
from vgan.models.conditioning import ResidualRefiner, pixel_shuffle, pixel_unshuffle
from vgan.models.nets import Conv3dDiscriminator

# L2 targets PSNR (with L1 the box's PSNR stayed below the biharmonic fill's: 15.26 against 15.37 after 1,500 steps
# of bench/task_inpaint.py, L2 15.91; both beat every fill on fd_evaluator)
RECOMMENDED_OVERRIDES = ("train.recon_loss=l2", "train.recon_weight=1", "train.adv_weight=0.01")
SHUFFLE = 2  # the network works at half resolution on pixel-unshuffled frames
MASK_SEED = 20261205  # the eval-mode boxes: the i-th clip of a batch always gets the i-th box of this sequence
BLUR_SIGMA = 3.0  # pixels: the blur fill's Gaussian


def box_corners(batch: int, frames: int, side: int, box: int, moving_share: float,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, 2) top-left corners (row, column) of each clip's box per frame, and (B,) which clips' boxes move.

    A moving box goes in a straight line from one random corner to another over the clip."""
    span = side - box
    start = torch.randint(0, span + 1, (batch, 2), generator=generator, device="cpu")
    end = torch.randint(0, span + 1, (batch, 2), generator=generator, device="cpu")
    moving = torch.rand(batch, generator=generator, device="cpu") < moving_share
    end = torch.where(moving[:, None], end, start)
    share = torch.linspace(0, 1, frames, device="cpu")[None, :, None]
    corners = (start[:, None] + share * (end - start)[:, None]).round().long()
    return corners, moving


def box_mask(corners: torch.Tensor, side: int, box: int) -> torch.Tensor:
    """(B, 1, T, H, W) bool: True inside each frame's box."""
    rows = torch.arange(side, device=corners.device)
    inside_rows = (rows >= corners[..., 0, None]) & (rows < corners[..., 0, None] + box)  # (B, T, H)
    inside_cols = (rows >= corners[..., 1, None]) & (rows < corners[..., 1, None] + box)  # (B, T, W)
    return (inside_rows[..., :, None] & inside_cols[..., None, :])[:, None]


def temporal_fill(clips: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each masked pixel from the nearest frame (earlier first on ties) where it is visible; and (B, 1, T, H, W)
    True where no frame shows it (those pixels keep the masked clip's value)."""
    filled, missing = clips.clone(), mask.clone()
    frames = clips.shape[2]
    for offset in range(1, frames):
        for shift in (offset, -offset):  # frame t - offset, then t + offset
            source = torch.roll(clips, shift, dims=2)
            visible = ~torch.roll(mask, shift, dims=2)
            valid = torch.zeros_like(visible)
            if shift > 0:
                valid[:, :, shift:] = visible[:, :, shift:]
            else:
                valid[:, :, :shift] = visible[:, :, :shift]
            take = missing & valid
            filled = torch.where(take, source, filled)
            missing = missing & ~take
    return filled, missing


def blur_fill(clips: torch.Tensor, mask: torch.Tensor, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """Masked pixels from a normalised Gaussian convolution of each frame's visible pixels."""
    radius = int(3 * sigma)
    taps = torch.exp(-torch.arange(-radius, radius + 1, dtype=clips.dtype) ** 2 / (2 * sigma ** 2))
    taps = taps / taps.sum()

    def blur(x):  # separable, frame by frame: (B, C, T, H, W)
        flat = x.transpose(1, 2).flatten(0, 1)  # (B*T, C, H, W)
        channels = flat.shape[1]
        flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="replicate"),
                        taps.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
        flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="replicate"),
                        taps.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
        return flat.unflatten(0, (x.shape[0], x.shape[2])).transpose(1, 2)

    known = (~mask).to(clips.dtype)
    estimate = blur(clips * known) / blur(known).clamp_min(1e-6)
    return torch.where(mask, estimate, clips)


def biharmonic_fill(clips: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked pixels by scikit-image's biharmonic inpainting of each frame (each channel alike)."""
    from skimage.restoration import inpaint_biharmonic

    out = clips.clone()
    images = clips.permute(0, 2, 3, 4, 1).numpy().astype(np.float64)  # (B, T, H, W, C)
    holes = mask[:, 0].numpy()
    for b, t in zip(*np.nonzero(holes.any(axis=(2, 3)))):
        filled = inpaint_biharmonic(images[b, t], holes[b, t], channel_axis=-1)
        out[b, :, t] = torch.from_numpy(filled).permute(2, 0, 1).to(clips.dtype)
    return out.clamp(-1, 1)


class InpaintingGenerator(VideoGenerator):
    """Masked clip + mask (+ noise, label) -> temporal/blur fill + learned residual inside the box."""

    task = "inpainting"
    input_baseline = "masked"

    def __init__(self, z_dim=100, num_classes=0, channels=3, frames=16, resolution=32, width=32, box_fraction=0.375,
                 moving_share=0.5, blocks=3):
        super().__init__(z_dim, num_classes, channels, frames, resolution)
        self.box = max(1, round(box_fraction * resolution))
        self.moving_share = moving_share
        self.refiner = ResidualRefiner((2 * channels + 1) * SHUFFLE ** 2, channels * SHUFFLE ** 2, width, blocks,
                                       z_dim, num_classes)

    def corners(self, batch: int, fixed: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The boxes of a batch (corners, moving): random while training, the ``MASK_SEED`` sequence in eval mode
        or where ``fixed``."""
        fixed = not self.training if fixed is None else fixed
        generator = torch.Generator().manual_seed(MASK_SEED) if fixed else None
        return box_corners(batch, self.frames, self.resolution, self.box, self.moving_share, generator)

    def condition(self, real):
        corners, _ = self.corners(real.shape[0])
        mask = box_mask(corners, self.resolution, self.box).to(real.device)
        return torch.cat([real.masked_fill(mask, 0.0), mask.to(real.dtype)], dim=1)

    @staticmethod
    def split(context):
        """(masked clips, bool mask) of a condition."""
        return context[:, :-1], context[:, -1:] > 0.5

    def fill(self, context):
        """The fill the residual starts from: temporal, then blur where no frame shows the pixel."""
        masked, mask = self.split(context)
        filled, missing = temporal_fill(masked, mask)
        return torch.where(missing, blur_fill(masked, mask), filled)

    def baselines(self, context):
        masked, mask = self.split(context)
        biharmonic = biharmonic_fill(masked, mask)
        filled, missing = temporal_fill(masked, mask)
        return {"masked": masked, "temporal_fill": torch.where(missing, biharmonic, filled),
                "biharmonic_fill": biharmonic, "blur_fill": blur_fill(masked, mask)}

    def forward(self, z, y=None, context=None, num_frames=None):
        self.check_num_frames(num_frames)
        expected = (self.channels + 1, self.frames, self.resolution, self.resolution)
        if context is None or tuple(context.shape[1:]) != expected:
            got = None if context is None else tuple(context.shape)
            raise ValueError(f"inpainting needs masked clips and their mask (B, {expected[0]}, "
                             f"{', '.join(map(str, expected[1:]))}); got {got}")
        masked, mask = self.split(context)
        base = self.fill(context)
        inputs = torch.cat([base, masked, mask.to(base.dtype)], dim=1)
        residual = pixel_shuffle(self.refiner(pixel_unshuffle(inputs, SHUFFLE), z, y), SHUFFLE)
        return torch.where(mask, (base + residual).clamp(-1, 1), masked)

    def reconstruction(self, views, real):
        """The box's pixels (B, C, T, box, box) of the eval-mode boxes for this many clips (what the metrics
        score: outside the box the model returns the input)."""
        corners, _ = self.corners(real.shape[0], fixed=True)
        corners = corners.to(real.device)
        return crop_boxes(views["video"], corners, self.box), crop_boxes(real, corners, self.box)

    def training_pair(self, views, real):
        """Whole clips: outside the box they agree exactly, so the loss is the box's (the training boxes are
        random and not known here)."""
        return views["video"], real


def crop_boxes(clips: torch.Tensor, corners: torch.Tensor, box: int) -> torch.Tensor:
    """(B, C, T, box, box): each frame's box."""
    batch, channels, frames = clips.shape[:3]
    offsets = torch.arange(box, device=corners.device)
    rows = (corners[..., 0, None] + offsets)[:, None, :, :, None].expand(batch, channels, frames, box, box)
    cols = (corners[..., 1, None] + offsets)[:, None, :, None, :].expand(batch, channels, frames, box, box)
    picked_rows = torch.gather(clips, 3, rows[..., :, :1].expand(-1, -1, -1, -1, clips.shape[4]))
    return torch.gather(picked_rows, 4, cols)


def build(params):
    options = params.inpaint
    G = InpaintingGenerator(params.z_dim, params.num_classes, params.channels, params.frames, params.resolution,
                            params.width, options.box_fraction, options.moving_share, options.blocks)
    D = Conv3dDiscriminator(params.num_classes, params.channels, params.frames, params.resolution, params.discriminator_width,
                            params.spectral_norm)
    return G, {"video": D}
