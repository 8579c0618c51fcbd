"""Model parameters (the `model` group of params.yaml); pydantic only, no torch."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

# the model zoo: each name is a module vgan.models.<name> (see vgan.models.zoo)
ARCHITECTURES = ("vgan", "tgan", "mocogan", "dvdgan", "hrvgan", "motionshape", "progressive", "predictor",
                 "stylegan_v", "vsr", "interp", "inpaint")

# the architectures whose 3D video discriminator model.video_downsample pools
POOLED_VIDEO_D = ("vgan", "tgan", "mocogan", "hrvgan", "progressive")


class _Strict(BaseModel):
    """The base of every params group (here and in ``vgan.params``): unknown keys are errors, and so are infinity and
    NaN, never a sensible setting (a learning rate of inf, a frame rate of nan)."""
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class MocoganOptions(_Strict):
    motion_dim: int = Field(ge=1, description="GRU state and per-frame motion noise size")
    image_frames: int = Field(ge=1, description="random frames per clip the image discriminator judges")
    motion_step: float | None = Field(gt=0, le=1, description=(
        "null: each frame's motion code is the GRU's state (the paper); a number: the code moves from the initial "
        "state by at most this much per frame and coordinate, a residual step the GRU state scales (MoCoGAN-HD)"))


class DvdganOptions(_Strict):
    k_frames: int = Field(ge=1, description="full-resolution frames per clip the spatial discriminator judges")
    temporal_downsample: Literal[1, 2, 4] = Field(description="spatial pooling before the temporal discriminator")
    generator: Literal["recurrent", "3d"] = Field(description="ConvGRU (any length) or 3D deconvs")


class HrvganOptions(_Strict):
    minibatch_std_group: int = Field(ge=1, description="group size of the discriminator's minibatch std feature")
    max_channels: int = Field(ge=8, description="channel cap of the widest layers")


class MotionshapeOptions(_Strict):
    max_displacement: float = Field(ge=0, le=2, description="largest motion, in half-frame widths; 0 = none: the "
                                    "appearance generator alone, a plain image GAN (docs/training.md, the ladder)")
    flow_resolution: Literal[1, 8, 16, 32, 64, 128, 256] = Field(
        description="side of the generated motion field, upsampled to model.resolution (smooth, and cheap); "
                    "1 = one displacement per frame (rigid motion)")
    image_frames: int = Field(ge=0, description="random frames per clip an image discriminator judges (0 = none)")
    video_downsample: Literal[1, 2, 4] = Field(
        description="the video discriminator sees clips average-pooled by this factor in space (DVD-GAN's "
                    "temporal discriminator; the image discriminator keeps full resolution)")
    d_input_gain: float = Field(gt=0, le=10, description="the discriminators multiply their input by this")
    shape_width: int | None = Field(ge=8, description="width of the appearance (shape) generator; null = model.width")
    warp: Literal["bilinear", "bicubic"] = Field(
        description="how each frame samples the appearance at its displaced grid: bilinear blurs a sub-pixel shift "
                    "more than bicubic (bench/shift_blur.py), yet the default trained worse with bicubic "
                    "(docs/training.md)")


class ProgressiveOptions(_Strict):
    refine_factor: Literal[2, 4] = Field(description="spatial upsampling of the refiner")
    stage: Literal["joint", "base", "refiner"] = Field(
        description="joint = both at once; base = low-resolution G only; refiner = frozen base + refiner")
    base_weights: str | None = Field(description="stage=refiner: checkpoint or generator.pt of a stage=base run")


class PredictorOptions(_Strict):
    context_frames: int = Field(ge=1, description="real frames given; the model predicts frames - context_frames")


class StyleganVOptions(_Strict):
    w_dim: int = Field(ge=8, description="width of the mapping network's style vector w (content)")
    mapping_layers: int = Field(ge=1, description="fully connected layers of the mapping network z -> w")
    motion_dim: int = Field(ge=2, description="width of each random motion latent and of the learned sinusoids")
    motion_anchor_every: float = Field(gt=0, description="training frames between consecutive random motion "
                                                         "latents; the trajectory is smooth between them")
    d_frames: int = Field(ge=2, description="frames per clip the discriminator sees, at random time gaps")
    sparse_training: bool = Field(description="the generator renders only the discriminator's frames in training "
                                              "(the paper's sparse training); false: the whole clip")


class VsrOptions(_Strict):
    scale: Literal[2, 4] = Field(description="the model's input is the clip area-downscaled by this factor")
    blocks: int = Field(ge=0, description="residual 3D-conv blocks of the network (at the low resolution)")


class InterpOptions(_Strict):
    every: int = Field(ge=2, description="keyframes: every this many frames from the first, and the last")
    blocks: int = Field(ge=0, description="residual 3D-conv blocks of the network (at half resolution)")


class InpaintOptions(_Strict):
    box_fraction: float = Field(gt=0, lt=1, description="side of the masked box, as a fraction of the frame's")
    moving_share: float = Field(ge=0, le=1, description="share of clips whose box moves (the rest: a static box)")
    blocks: int = Field(ge=0, description="residual 3D-conv blocks of the network (at half resolution)")


class ModelParams(_Strict):
    name: str
    preset: Literal["cpu", "paper"] | None = Field(
        description="cpu | paper: a size and training settings per architecture (vgan.models.presets), over the "
                    "params file's values; --set overrides replace the preset's; null = none")
    resolution: Literal[16, 32, 64, 128, 256]
    frames: int = Field(ge=4, le=64, multiple_of=4)
    channels: Literal["auto", 1, 3] = Field(
        description="channels the models paint and judge: auto = the shards' (1 when every clip is grey, "
                    "from their manifest), 1 = grey, 3 = colour")
    z_dim: int = Field(ge=1)
    num_classes: int = Field(ge=0, description="0 = unconditional")
    width: int = Field(ge=4, description="base channel width of G and D")
    spectral_norm: bool
    image_discriminator: int = Field(ge=0, description="frames per clip an added spectral-norm image discriminator "
                                     "judges, for generation models that have none (0 = none)")
    pair_discriminator: int = Field(ge=0, description="later frames per clip an added spectral-norm pair "
                                    "discriminator judges beside the clip's first frame (0 = none): it sees whether "
                                    "the clip keeps showing the same thing")
    pair_compare: Literal["stacked", "centred", "embedded"] = Field(
        description="how the pair discriminator compares a clip's first frame with a later one: stacked as channels "
                    "(pixel by pixel), stacked after each frame is shifted so its brightness centroid sits at the "
                    "centre (the digit overlaps itself wherever it has moved), or each embedded by one shared network "
                    "and the embeddings compared")
    video_downsample: Literal[1, 2, 4] = Field(
        description="the zoo's 3D video discriminators see clips average-pooled by this factor in space (DVD-GAN's "
                    "temporal discriminator has model.dvdgan.temporal_downsample, the default model.motionshape's)")
    d_input_gain: float = Field(gt=0, le=10, description="the zoo's discriminators multiply their input by this "
                                "(the default has model.motionshape.d_input_gain)")
    discriminators: Literal["all", "image", "video"] = Field(
        description="which discriminators train G: all | image (the image discriminators alone: appearance) | video "
                    "(the others alone); the ladder of docs/training.md")
    minibatch_std: int = Field(ge=0, description="group size of a minibatch-std feature in the video "
                                                 "discriminator, so it sees a lack of variety (0 = off)")
    coarse_frames: int | None = Field(
        ge=1, description="frames at the coarsest (4x4) level of the 3D generators (vgan, progressive's base, "
                          "hrvgan, dvdgan's 3d): null = the fewest that doubling per layer allows (2 for 16 frames "
                          "at 32x32), 1 = one coarse layout for the whole clip")
    attention: bool = Field(
        description="a self-attention layer (SAGAN's) in VGAN's foreground stream at its 8x8 features, over every "
                    "frame and position")
    skip_z: bool = Field(description="the foreground batch norms of VGAN's generator (progressive's base too) take "
                         "per-clip gains and biases from the latent (BigGAN's skip-z); refused for other models")
    mocogan: MocoganOptions
    dvdgan: DvdganOptions
    hrvgan: HrvganOptions
    motionshape: MotionshapeOptions
    progressive: ProgressiveOptions
    predictor: PredictorOptions
    stylegan_v: StyleganVOptions
    vsr: VsrOptions
    interp: InterpOptions
    inpaint: InpaintOptions

    @field_validator("channels", mode="before")
    @classmethod
    def _auto_grey_or_colour(cls, channels):
        # before pydantic's own check: one plain line, and a boolean (true == 1 in Python) is no channel count
        if isinstance(channels, bool) or channels not in ("auto", 1, 3):
            raise ValueError("expected auto (the shards' channels), 1 (grey) or 3 (colour)")
        return channels

    @field_validator("coarse_frames")
    @classmethod
    def _frames_grow_from_coarse(cls, coarse: int | None, info: ValidationInfo) -> int | None:
        frames = info.data.get("frames")
        growth = frames // coarse if coarse and frames else 1
        if coarse is not None and frames is not None and (frames % coarse or growth & (growth - 1)):
            raise ValueError(f"model.frames {frames} must be {coarse} times a power of two: the generators' layers "
                             f"double (or quadruple) time from their coarsest level")
        return coarse

    @field_validator("skip_z")
    @classmethod
    def _skip_z_where_built(cls, skip_z: bool, info: ValidationInfo) -> bool:
        if skip_z and info.data.get("name") not in ("vgan", "progressive"):
            raise ValueError(f"only VGAN's generator (and progressive's, a VGAN base) has it, not "
                             f"{info.data.get('name')}'s")
        return skip_z

    @field_validator("name")
    @classmethod
    def _known_architecture(cls, name: str) -> str:
        if name not in ARCHITECTURES:
            raise ValueError(f"unknown architecture; expected one of {', '.join(sorted(ARCHITECTURES))}")
        return name

    @field_validator("video_downsample", "dvdgan", "motionshape")
    @classmethod
    def _pooled_video_input_big_enough(cls, value, info: ValidationInfo):
        """A discriminator fed average-pooled clips needs 8x8: the zoo's 3D video discriminators
        (model.video_downsample), DVD-GAN's temporal one and the default's video one (their own keys)."""
        own_key = {"dvdgan": "temporal_downsample", "motionshape": "video_downsample"}.get(info.field_name)
        factor, pooled_for = (getattr(value, own_key), (info.field_name,)) if own_key else (value, POOLED_VIDEO_D)
        pooled = info.data.get("resolution", 64) // factor
        if info.data.get("name") in pooled_for and pooled < 8:
            raise ValueError(f"{own_key or 'factor'} {factor} leaves {pooled}x{pooled} frames; the discriminator "
                             f"that sees them needs at least 8x8")
        return value

    @field_validator("progressive")
    @classmethod
    def _refiner_reachable(cls, options: ProgressiveOptions, info: ValidationInfo) -> ProgressiveOptions:
        if info.data.get("name") != "progressive":
            return options
        low = info.data.get("resolution", 64) // options.refine_factor
        if low < 8:
            raise ValueError(f"refine_factor {options.refine_factor} leaves a {low}x{low} base; "
                             f"the base generator needs at least 8x8")
        if options.stage == "refiner" and not options.base_weights:
            raise ValueError("stage 'refiner' needs base_weights: the checkpoint of a stage 'base' run")
        return options

    @field_validator("predictor")
    @classmethod
    def _future_left(cls, options: PredictorOptions, info: ValidationInfo) -> PredictorOptions:
        frames = info.data.get("frames")
        if info.data.get("name") == "predictor" and frames is not None and options.context_frames >= frames:
            raise ValueError(f"context_frames {options.context_frames} must be below model.frames {frames} "
                             f"so that frames remain to predict")
        return options

    @field_validator("interp")
    @classmethod
    def _frames_between(cls, options: InterpOptions, info: ValidationInfo) -> InterpOptions:
        frames = info.data.get("frames")
        if info.data.get("name") == "interp" and frames is not None and options.every >= frames - 1:
            raise ValueError(f"every {options.every} must be below model.frames - 1 = {frames - 1} so that "
                             f"in-between frames remain between at least three keyframes")
        return options
