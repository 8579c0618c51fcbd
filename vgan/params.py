"""Typed, validated params: params.yaml grouped by stage, plus `--set key.path=value` overrides.

The repository's params.yaml is the one source of every default: the schema below declares each key's type and
bounds only (every field is required), and a params file that leaves a key out takes params.yaml's value
(``default_tree``). One declarative class per group in the file's order (the model group's architecture options are
in ``vgan.models.options``), so a key and its check sit in one place that reads like the file; reading files,
overrides and the checks every group shares are in ``vgan.params_tree``.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator

from vgan.models.options import ModelParams, _Strict
from vgan.params_tree import (  # noqa: F401 (STAGE_OUTPUTS, dotted, outputs_outside: used as vgan.params.*)
    STAGE_OUTPUTS,
    apply_override,
    check_values,
    describe_error,
    dotted,
    merged,
    outputs_outside,
    read_tree,
)
from vgan.util.errors import ParamsError


def _names_from(names: list[str], known, what: str) -> list[str]:
    """``names`` when each is one of ``known`` and none is repeated; else a ValueError naming the culprit."""
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown {what} {unknown[0]!r}; expected names from {', '.join(known)}")
    if len(set(names)) != len(names):
        raise ValueError(f"a {what} is listed twice")
    return names


class UrlSource(_Strict):
    url: str
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    filename: str | None = None  # optional key of a data.urls entry: params.yaml lists no entry to hold it


class DataParams(_Strict):
    source: Literal["moving_digits", "folder", "urls", "ucf101"]
    raw_dir: str
    seed: int
    # moving_digits
    num_videos: int = Field(ge=2)
    frames: int = Field(ge=2, description="frames per synthesised video")
    frame_size: int = Field(ge=16)
    digit_size: int = Field(ge=8, description="digit side in pixels after upscaling")
    digits_per_video: int = Field(ge=1, le=4)
    fps: int = Field(ge=1)
    mnist_dir: str | None
    # folder
    folder: str | None
    # urls
    urls: list[UrlSource]
    # ucf101: the official archive and split lists; their sha256 must be supplied (none is invented here)
    ucf101_split: Literal[1, 2, 3]
    ucf101_url: str
    ucf101_splits_url: str
    ucf101_sha256: str | None = Field(pattern=r"^[0-9a-fA-F]{64}$")
    ucf101_splits_sha256: str | None = Field(pattern=r"^[0-9a-fA-F]{64}$")
    # downloads are cached outside raw_dir (DVC empties raw_dir before re-running fetch)
    download_dir: str | None = Field(description="null = a 'downloads' folder beside raw_dir")
    # downloads and extraction
    download_retries: int = Field(ge=0)
    max_download_gb: float = Field(gt=0, description="refuse a download larger than this (declared or "
                                                     "arriving)")
    max_extract_gb: float = Field(gt=0)


class ShardsParams(_Strict):
    out_dir: str
    clip_frames: int = Field(ge=1)
    frame_stride: int = Field(ge=1)
    clips_per_video: int = Field(ge=0, description="0 = every non-overlapping window")
    size: int = Field(ge=8)
    fps: float | None = Field(gt=0, description="resample to this fps; null keeps the source's")
    resize_mode: Literal["crop", "squash", "pad"]
    val_fraction: float = Field(ge=0, lt=1)
    shard_mb: float = Field(gt=0)
    workers: int = Field(ge=0, description="0 = all cores")
    executor: str = Field(description="local = a process pool of `workers`; "
                                      "dask://host:port = the workers of that Dask scheduler")
    seed: int
    decode_timeout_s: float = Field(gt=0)

    @field_validator("executor")
    @classmethod
    def _local_or_dask(cls, value: str) -> str:
        match = re.fullmatch(r"dask://[^\s/]+:(\d{1,5})", value)
        if value == "local" or (match and 0 < int(match.group(1)) < 65536):
            return value
        raise ValueError("expected 'local' or 'dask://host:port' (the address of a running `dask scheduler`)")


class TrainParams(_Strict):
    steps: int = Field(ge=1)
    max_minutes: float = Field(ge=0, description="0 = no time budget")
    batch_size: int = Field(ge=1)
    lr_g: float = Field(gt=0)
    lr_d: float = Field(gt=0)
    betas: tuple[float, float]
    lr_schedule: Literal["constant", "linear", "cosine"]
    lr_decay_start: float = Field(ge=0, lt=1, description="fraction of steps at which the schedule starts to decay")
    loss: Literal["bce", "hinge", "lsgan", "wgan", "wgan-gp"]
    n_critic: int = Field(ge=1)
    gp_weight: float = Field(ge=0)
    r1_weight: float = Field(ge=0)
    r1_every: int = Field(ge=1, description="lazy R1: every N steps, weight x N (StyleGAN2)")
    weight_clip: float = Field(gt=0, description="critic weight clipping for loss=wgan")
    svc_every: int = Field(ge=0, description="singular value clipping every N steps; 0 = off")
    adv_weight: float = Field(ge=0)
    recon_weight: float = Field(ge=0, description="weight of the reconstruction loss")
    recon_loss: Literal["l1", "l2"]
    mask_weight: float = Field(ge=0, description="L1 on VGAN's foreground mask (its prior; 0 = off)")
    grad_clip: float = Field(ge=0, description="0 = off")
    augment: list[Literal["color", "translation", "cutout"]] = Field(
        description="differentiable augmentation of every clip the discriminators see (DiffAugment)")
    ema_decay: float = Field(ge=0, lt=1)
    top_k: float = Field(gt=0, le=1, description="the generator's loss over the clips rated most real, this fraction "
                         "of the batch at the last step (from 1 at step 0, linearly); 1 = every clip")
    ema_follows_rate: bool = Field(description="each step counts in the EMA by the rate's multiplier (decay ** it)")
    image_pretrain_steps: int = Field(ge=0, description="first N steps: the image generator as an image GAN")
    freeze_image_generator: bool = Field(description="after image pretraining: its average, frozen with its statistics")
    image_generator_lr: float = Field(gt=0, le=1, description="after image pretraining, its rate as a fraction of lr_g")
    checkpoint_dir: str
    resume_from: str | None = Field(description="a checkpoint file to start from when this run has none")
    checkpoint_every: int = Field(ge=1)
    keep_checkpoints: int = Field(ge=1)
    log_every: int = Field(ge=1)
    sample_every: int = Field(ge=1)
    max_bad_steps: int = Field(ge=1)
    seed: int
    device: Literal["auto", "cpu", "cuda"]
    precision: Literal["auto", "fp32", "bf16"]
    channels_last: bool
    compile: bool
    deterministic: bool
    sync_batchnorm: bool = Field(description="DDP: batch-norm statistics over the global batch, as one "
                                             "process would compute them (off = per-rank statistics)")
    num_workers: int = Field(ge=0)
    shuffle_buffer: int = Field(ge=0)
    shards_url: str = Field(pattern=r"^$|^[a-z][a-z0-9+.-]*://.+",
                            description="read the train shards from this URL prefix (s3://bucket/shards, "
                                        "http(s)://…) instead of shards.out_dir; empty = the local folder")


class SampleParams(_Strict):
    out_dir: str
    num_samples: int = Field(ge=1)
    seed: int
    fps: int = Field(ge=1)
    use_ema: bool
    interpolation_steps: int = Field(ge=2)
    long_frames: int = Field(ge=0, description="0 = twice the training length where the model can roll out")
    loop_frames: int = Field(ge=3, description="frames of a seamless loop around a closed latent path")
    per_class: int = Field(ge=1, description="clips per class row (conditional models)")
    mp4: bool = Field(description="an MP4 next to each clip's GIF (needs ffmpeg)")
    frame_rate_factors: list[float] = Field(
        description="continuous-time models (stylegan_v): clips of the training duration at these multiples of the "
                    "training frame rate, played that much faster; [] = none")

    @field_validator("frame_rate_factors")
    @classmethod
    def _positive_factors(cls, factors: list[float]) -> list[float]:
        if any(factor <= 0 or factor > 8 for factor in factors):
            raise ValueError("every factor must be in (0, 8]")
        return factors


class EvaluateParams(_Strict):
    num_samples: int = Field(ge=2, description="n: clips in every compared set (reference = real train clips, "
                                               "generated, real val clips and the baselines made of them); "
                                               "at most the real val and the real train clips")
    batch_size: int = Field(ge=1)
    seed: int
    use_ema: bool
    evaluator_path: str
    evaluator_steps: int = Field(ge=1)
    evaluator_batch_size: int = Field(ge=1)
    evaluator_lr: float = Field(gt=0)
    evaluator_width: int = Field(ge=4)
    evaluator_num_workers: int = Field(ge=0, description="loader worker processes of the evaluator's training")
    evaluator_shuffle_buffer: int = Field(ge=0, description="clips shuffled together for the evaluator's "
                                                            "training (its batch order depends on it)")
    min_evaluator_accuracy: float = Field(ge=0, le=1, description="fail evaluate below this")
    # external feature networks (local files only; none is downloaded)
    protocols: list[str]
    i3d_weights: str | None
    i3d_sha256: str | None
    inception_weights: str | None
    inception_sha256: str | None
    c3d_weights: str | None
    c3d_sha256: str | None
    cache_dir: str
    protocol_real_split: Literal["train", "val"] = Field(description="real clips of the external protocols")
    psnr_cap_db: float = Field(gt=0, description="per-frame PSNR cap (identical frames give infinity)")
    ci_level: float = Field(gt=0, lt=1, description="confidence level of the fd_evaluator bootstrap intervals")
    bootstrap_resamples: int = Field(ge=10, description="resamples of the fd_evaluator bootstrap")

    @field_validator("protocols")
    @classmethod
    def _known_protocols(cls, names: list[str]) -> list[str]:
        if not names:
            return names
        from vgan.metrics.catalog import ISV_PROTOCOL, PROTOCOLS

        return _names_from(names, [*PROTOCOLS, ISV_PROTOCOL], "protocol")


class RegistryParams(_Strict):
    model_name: str | None = Field(description="null = vgan-<data.source>-<model.name>")
    metric: str
    direction: Literal["minimize", "maximize"]
    min_improvement: float = Field(ge=0)
    gate_baselines: list[str] = Field(description="quality gate: a version becomes champion only when "
                                                  "its `metric` beats each listed baseline's (same n, same direction); "
                                                  "[] = no gate")

    @field_validator("gate_baselines")
    @classmethod
    def _known_baselines(cls, names: list[str]) -> list[str]:
        from vgan.metrics.catalog import BASELINE_NAMES

        return _names_from(names, BASELINE_NAMES, "baseline")


class RateParams(_Strict):
    """`vgan rate`: a human two-alternative forced-choice rating served as a local web page."""
    mode: Literal["real", "models"] = Field(description="real: a generated vs a real clip, which is real? "
                                                        "models: model A vs model B, which is more realistic?")
    samples_dir: str = Field(description="the generated clips (GIFs, e.g. `vgan sample`'s folder); "
                                         "mode models: model A's")
    other_dir: str | None = Field(description="mode models: model B's folder of GIFs")
    real_split: Literal["train", "val"] = Field(description="mode real: real clips from this split of "
                                                            "shards.out_dir")
    rounds: int = Field(ge=1, description="pairs to rate")
    seed: int
    fps: float = Field(ge=1, le=50, description="every clip is played at this frame rate (browsers play GIF "
                                                "frames no faster than 50 per second)")
    display_px: int = Field(ge=32, description="side of each clip on the page, in CSS pixels")
    out_dir: str
    session: str | None = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                                description="folder under out_dir; null = <mode>-seed<seed>; "
                                            "the same session resumes")
    host: str = Field(description="address to listen on; one that is not loopback is warned about")
    port: int = Field(ge=0, le=65535, description="0 = any free port")
    ci_level: float = Field(gt=0, lt=1, description="level of the Wilson interval of the score")
    mlflow: bool = Field(description="log the finished rating as an MLflow run")


class AnomalyParams(_Strict):
    generator: str = Field(description="a predictor's generator file (model.name=predictor)")
    checkpoint: str | None = Field(description="the training checkpoint whose discriminator also scores the "
                                               "clips; null = the newest of the generator's own training run "
                                               "under train.checkpoint_dir (none found: that score is skipped)")
    input: Literal["shards", "folder"] = Field(description="shards: a split of shards.out_dir; "
                                                           "folder: every video file under anomaly.folder")
    split: str = Field(description="input=shards: the split to score")
    folder: str | None = Field(description="input=folder: the folder of video files (decoded with ffmpeg, "
                                           "cut into clips of the generator's length)")
    resize_mode: Literal["crop", "squash", "pad"]
    max_clips: int = Field(ge=0, description="score at most this many clips (0 = all)")
    inject: bool = Field(description="inject synthetic anomalies and report ROC AUC per type")
    types: list[Literal["teleport", "freeze", "reverse", "identity", "noise"]] = Field(
        description="anomaly types injected, in turn (vgan/data/anomalies.py)")
    fraction: float = Field(gt=0, lt=1, description="share of the clips made anomalous")
    seed: int
    min_frames: int = Field(ge=1, description="anomalous frames at least: onsets lie in "
                                              "[max(2, context_frames), frames - min_frames]")
    noise_frames: int = Field(ge=1, description="frames of a noise burst")
    noise_std: float = Field(gt=0, description="noise burst: standard deviation as a fraction of 255")
    motion_floor: float = Field(gt=0, description="the predictor's score is its error / (the context's mean "
                                                  "frame difference + this), on [0, 1] pixels")
    batch_size: int = Field(ge=1)
    use_ema: bool
    device: Literal["auto", "cpu", "cuda"]
    out_dir: str = Field(description="clips.csv (per-clip scores) and frames.csv (per-frame scores)")
    report_clips: int = Field(ge=1, description="most anomalous clips shown in reports/anomaly.png")

    @field_validator("types")
    @classmethod
    def _each_type_once(cls, names: list[str]) -> list[str]:
        if len(set(names)) != len(names):
            raise ValueError("an anomaly type is listed twice")
        return names


class Params(_Strict):
    data: DataParams
    shards: ShardsParams
    model: ModelParams
    train: TrainParams
    sample: SampleParams
    evaluate: EvaluateParams
    registry: RegistryParams
    rate: RateParams
    anomaly: AnomalyParams

    def registry_model_name(self) -> str:
        return self.registry.model_name or f"vgan-{self.data.source}-{self.model.name}".replace("_", "-")

    def run_identity(self) -> str:
        """Hash of what determines a training run's result, not its length or bookkeeping.

        Checkpoints live in ``<train.checkpoint_dir>/<run_identity>/``: the same run resumes (also with
        more ``train.steps``), a run with other model/objective/data params starts afresh.
        """
        bookkeeping = {"steps", "max_minutes", "checkpoint_dir", "resume_from", "checkpoint_every", "keep_checkpoints",
                       "log_every", "sample_every", "num_workers", "device", "compile"}
        blob = json.dumps({"model": self.model.model_dump(mode="json"), "shards": self.shards.model_dump(mode="json"),
                           "data": self.data.model_dump(mode="json"),
                           "train": {k: v for k, v in self.train.model_dump(mode="json").items()
                                     if k not in bookkeeping}}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def group_hash(self, *groups: str) -> str:
        """Stable hash of the named groups (all when none): tags runs, guards checkpoint resume."""
        names = groups or tuple(Params.model_fields)
        blob = json.dumps({g: getattr(self, g).model_dump(mode="json") for g in names}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# -- the defaults: the repository's params.yaml, the only copy -------------------------------------------------
DEFAULTS_FILE = Path(__file__).resolve().parent.parent / "params.yaml"
"""The repository's params.yaml, found beside the vgan package (the checkout, which `make setup` installs editable).
A vgan installed without its checkout has none: its params file must then list every key (a missing one is named)."""


@functools.lru_cache(maxsize=4)
def _defaults_read(path: Path, stamp: tuple[int, int]) -> dict:
    return read_tree(path)  # once per version of the file (``stamp``: its mtime and size)


def default_tree() -> dict:
    """params.yaml's values as nested dicts (a fresh copy), or {} where vgan runs without its checkout."""
    try:
        stat = DEFAULTS_FILE.stat()
    except FileNotFoundError:
        return {}
    return copy.deepcopy(_defaults_read(DEFAULTS_FILE, (stat.st_mtime_ns, stat.st_size)))


def params_from(tree: dict) -> Params:
    """Validate a params tree that may leave keys out (params.yaml's values fill them); pydantic's ValidationError
    for a bad value. Also reads back the params a generator file or checkpoint holds."""
    return Params.model_validate(merged(default_tree(), tree))


def default_params(**groups: dict) -> Params:
    """params.yaml's params, with each named group's given keys instead (nested groups merge the same way), e.g.
    ``default_params(model={"name": "vgan", "width": 8}).model``; a bad value raises pydantic's ValidationError."""
    if not DEFAULTS_FILE.exists():
        raise ParamsError(f"no defaults: {str(DEFAULTS_FILE)!r} does not exist (vgan runs without its repository "
                          f"checkout, whose params.yaml holds every default)")
    return params_from(groups)


def apply_preset(tree: dict, overrides) -> None:
    """``model.preset`` (from the overrides, else the file, else params.yaml) writes its values into ``tree``, over the
    file's; the overrides, applied after, replace them (``vgan.models.presets``)."""
    chosen: dict = {}
    for assignment in overrides:
        apply_override(chosen, assignment)
    model = merged(merged(default_tree().get("model", {}), tree.get("model", {})), chosen.get("model", {}))
    if model.get("preset") is None:
        return
    from vgan.models.presets import preset

    for assignment in preset(model.get("name"), model["preset"]).overrides:
        apply_override(tree, assignment)


def load_params(path: str | Path = "params.yaml", overrides: list[str] | tuple[str, ...] = ()) -> Params:
    """Read and validate params. The file is required; a key it leaves out takes the value in the repository's
    params.yaml (``default_tree``), so a params file may hold only what it changes."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"params file {str(path)!r} does not exist (every stage reads its parameters from it; "
                          f"start from the repository's params.yaml)")
    tree = read_tree(path)
    apply_preset(tree, overrides)
    for assignment in overrides:
        apply_override(tree, assignment)
    try:
        params = params_from(tree)
    except ValidationError as exc:
        raise ParamsError(describe_error(exc.errors()[0])) from None
    check_values(params, tree)
    return params
