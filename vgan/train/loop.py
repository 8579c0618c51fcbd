"""The one training loop: every architecture, several discriminators, exact resume.

Imports only torch/numpy at module level; MLflow logging arrives through ``logger``.
The ``Trainer`` builds the models and optimisers, draws the batches and runs the loop; its parts live beside it:
the D and G steps are functions in ``steps`` (the benchmark calls them directly), the checkpoint round trip and the
random streams that make resume bit-exact in ``resume`` (``Resumable``), and what training leaves behind (EMA
statistics, previews, the loss CSV, the generator file, ``metrics/train.json``) in ``outputs``
(``TrainingOutputs``); ``checkpoint``, ``ema``, ``distributed``, ``losses`` and ``augment`` hold no trainer state.

``videos_per_s`` (logged and in ``metrics/train.json``) is one thing everywhere, also in ``bench/``: real
training clips drawn per second of step time, i.e. global batch x ``n_critic`` per step.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import itertools
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

import torch
from torch import nn

from vgan.data.loader import to_model_range
from vgan.models.layers import to_channels_last_3d
from vgan.models.zoo import build_model
from vgan.train import checkpoint as ckpt
from vgan.train import distributed, steps
from vgan.train.outputs import TrainingOutputs
from vgan.train.resume import (EPOCH_STRIDE, PREVIEW_LABELS, PREVIEW_LATENTS, RANK_STRIDE, TRAINING_LATENTS,
                               Resumable, TrainState, seed_everything)
from vgan.train.steps import learning_rate_factor  # noqa: F401 (tests import it from here)
from vgan.util.cpu import native_bf16
from vgan.util.devices import select_device
from vgan.util.errors import ParamsError, TrainingError


class NullLogger:
    """Stands in for MLflow when none is wanted (benchmarks, GPU machines without the stack)."""

    def log_params(self, params: dict) -> None: ...
    def log_metrics(self, metrics: dict, step: int | None = None) -> None: ...
    def log_artifact(self, path, artifact_path: str | None = None) -> None: ...


def bf16_compute(precision: str, device_type: str) -> bool:
    """Whether the forwards run under bf16 autocast: ``bf16`` always; ``auto`` on CUDA and on a CPU that multiplies
    bf16 in hardware with no ISA pin (vgan.util.cpu.native_bf16: AMX or AVX512-BF16; elsewhere bf16 is emulated,
    slower than fp32, and the avx2 pin keeps its bit-exact fp32 paths); ``fp32`` never. Weights, optimiser state,
    losses and the R1/GP penalties stay fp32 (bf16 has fp32's exponent range: no loss scaler)."""
    if precision == "auto":
        return device_type == "cuda" or (device_type == "cpu" and native_bf16())
    return precision == "bf16"


class Trainer(Resumable, TrainingOutputs):
    """Owns models, optimisers and state; ``run()`` trains until steps or the time budget is reached."""

    def __init__(self, params, batches: Callable[[int, int], Iterable], logger=None, out_root: str | Path = ".",
                 rank: int = 0, world_size: int = 1):
        """``batches(epoch, seed)`` returns a deterministic iterable of (video, labels) for that epoch."""
        self.params = params
        self.rank, self.world_size = rank, world_size
        self.cfg = params.train
        self.make_batches = batches
        self.logger = logger or NullLogger()
        self.root = Path(out_root)
        self.checkpoint_dir = self.root / self.cfg.checkpoint_dir / params.run_identity()
        self.device = select_device(self.cfg.device)
        self.use_bf16 = bf16_compute(self.cfg.precision, self.device.type)
        if self.cfg.deterministic:
            torch.use_deterministic_algorithms(True)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = not self.cfg.deterministic
        seed_everything(self.cfg.seed)
        self.G, discriminators = build_model(params.model)
        if self.cfg.mask_weight and not self.G.has_mask:
            raise ParamsError(f"parameter train.mask_weight = {self.cfg.mask_weight}: {params.model.name}'s generator "
                              f"has no foreground mask to keep sparse (vgan's has); set it to 0")
        self.Ds = nn.ModuleDict(discriminators)
        self.image_Ds = self._image_pretraining_discriminators(params)
        if world_size > 1:
            # same initial weights everywhere; draws inside models (MoCoGAN's frame pick, WGAN-GP's
            # interpolation) are independent per rank, latents come from the shared stream below
            seed_everything(self.cfg.seed + RANK_STRIDE * rank)
            if self.cfg.sync_batchnorm:
                distributed.convert_batchnorm(self.G, self.device.type)
                distributed.convert_batchnorm(self.Ds, self.device.type)
        # one latent stream on every rank: each draws the global batch's latents and keeps its slice, so N
        # ranks see the noise one process with the global batch would
        self.latent_rng = torch.Generator(device=self.device).manual_seed(self.cfg.seed + TRAINING_LATENTS)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        for module in (self.G, self.Ds, self.G_ema):
            module.to(self.device)
            if self.device.type == "cuda" and self.cfg.channels_last:
                to_channels_last_3d(module)
        fused = self.device.type == "cuda"  # one kernel per optimiser step; CPU keeps the default implementation
        self.opt_g = torch.optim.Adam(self._generator_groups(), lr=self.cfg.lr_g, betas=self.cfg.betas, fused=fused)
        self.opt_d = torch.optim.Adam(self.Ds.parameters(), lr=self.cfg.lr_d, betas=self.cfg.betas, fused=fused)
        self.gan = steps.GanModules(self.G, self.G_ema, self.Ds, self.opt_g, self.opt_d, world_size, self._autocast,
                                    concatenate=self.device.type == "cuda")
        self.image_gan = steps.GanModules(self.G, self.G_ema, self.image_Ds, self.opt_g, self.opt_d, world_size,
                                          self._autocast, concatenate=self.device.type == "cuda")
        if self.cfg.compile:
            self.G.compile()  # compiles G's forward in place, so every view uses it
        self.model_hash = params.group_hash("model")
        self.state = TrainState()
        self._last_saved = -1
        self._preview_context = None
        self._ema_statistics_step = -1  # the step G_ema's batch-norm statistics were computed at
        preview = torch.Generator().manual_seed(self.cfg.seed + PREVIEW_LATENTS)
        self.fixed_z = self.G.sample_z(16, generator=preview).to(self.device)
        self.fixed_y = self.G.sample_labels(16, generator=torch.Generator().manual_seed(self.cfg.seed + PREVIEW_LABELS))
        self.fixed_y = None if self.fixed_y is None else self.fixed_y.to(self.device)

    def _image_pretraining_discriminators(self, params) -> nn.ModuleDict:
        """The image discriminators ``train.image_pretrain_steps`` trains against (none when it is 0); a ParamsError
        where the generator paints no frame alone or no image discriminator judges frames."""
        from vgan.models.base import FrameByFrameGenerator
        from vgan.models.nets import ImageDiscriminator

        cfg = self.cfg
        if not cfg.image_pretrain_steps:
            if cfg.freeze_image_generator:
                raise ParamsError("parameter train.freeze_image_generator = true: it freezes the image generator "
                                  "after train.image_pretrain_steps, which is 0; set both or neither")
            return nn.ModuleDict()
        setting = f"parameter train.image_pretrain_steps = {cfg.image_pretrain_steps}"
        if not isinstance(self.G, FrameByFrameGenerator):
            raise ParamsError(f"{setting}: {params.model.name}'s frames are not painted one by one by an image "
                              f"generator (tgan's and mocogan's are); set it to 0")
        if cfg.recon_weight:
            raise ParamsError(f"{setting}: single frames have no reconstruction target; set train.recon_weight to 0")
        chosen = {name: D for name, D in self.Ds.items() if isinstance(D, ImageDiscriminator)}
        if not chosen:
            raise ParamsError(f"{setting}: {params.model.name} has no image discriminator to pretrain against; "
                              f"set model.image_discriminator (frames per clip) or model.discriminators=all")
        return nn.ModuleDict(chosen)

    def _generator_groups(self) -> list[dict]:
        """G's parameter groups: one, or, where ``train.image_generator_lr`` slows the image generator after its
        pretraining, the rest first and the image generator second (``_lr_schedulers`` scales the second)."""
        if self.cfg.image_generator_lr == 1.0:
            return [{"params": list(self.G.parameters())}]
        if not self.cfg.image_pretrain_steps:
            raise ParamsError(f"parameter train.image_generator_lr = {self.cfg.image_generator_lr}: it slows the image "
                              f"generator after train.image_pretrain_steps, which is 0; set both or neither")
        image = {id(p) for p in self.G.image.parameters()}
        return [{"params": [p for p in self.G.parameters() if id(p) not in image]},
                {"params": list(self.G.image.parameters())}]

    # -- data --------------------------------------------------------------------------------------
    def _batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless batches; the (epoch, position) pair is the data position saved in checkpoints."""
        while True:
            skip = self.state.batches_in_epoch
            produced = 0
            iterator = iter(self.make_batches(self.state.epoch, self.cfg.seed * EPOCH_STRIDE + self.state.epoch))
            for index in itertools.count():
                if index == 0:  # a loader's iterator draws its base seed from the global RNGs when it starts
                    with ckpt.preserved_rng():  # (the epoch's first batch); training's streams stay exact
                        batch = next(iterator, None)
                else:
                    batch = next(iterator, None)
                if batch is None:
                    break
                if index < skip:
                    continue
                produced += 1
                self.state.batches_in_epoch = index + 1
                yield batch
            if produced == 0 and skip == 0:
                raise TrainingError("the training shards yield no batch: lower train.batch_size or add data")
            self.state.epoch += 1
            self.state.batches_in_epoch = 0

    def _device_batches(self, meter: dict) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """``_batches`` on the training device; adds the seconds spent waiting to ``meter["data_wait"]``."""
        batches = self._batches()
        while True:
            tick = time.monotonic()
            batch = self._to_device(*next(batches))
            meter["data_wait"] += time.monotonic() - tick
            yield batch

    # -- one step ----------------------------------------------------------------------------------
    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.use_bf16 else contextlib.nullcontext()

    def _to_device(self, real, labels):
        real = real.to(self.device, non_blocking=True)
        if real.dtype == torch.uint8:  # clips as stored (B, T, H, W, C): widened here, on the device
            real = to_model_range(real)
        channels_last = self.device.type == "cuda" and self.cfg.channels_last
        real = real.contiguous(memory_format=torch.channels_last_3d if channels_last else torch.contiguous_format)
        labels = labels.to(self.device, non_blocking=True) if self.G.num_classes else None
        return real, labels

    def _latents(self, local_batch: int) -> torch.Tensor:
        """This rank's slice of the global batch's latents (all ranks draw the same global tensor)."""
        z = self.G.sample_z(local_batch * self.world_size, device=self.device, generator=self.latent_rng)
        return z[self.rank * local_batch:(self.rank + 1) * local_batch]

    def train_step(self, batches: Iterator) -> tuple[dict, bool, int]:
        """``n_critic`` discriminator steps (each on a fresh batch of ``batches``), then one generator step.

        Returns (losses as tensors, finite, clips drawn). With one critic step the generator's clips of the
        discriminator step also train the generator (one forward per step, as the DCGAN reference does).
        """
        cfg, gan = self.cfg, self.gan
        if self.state.step < cfg.image_pretrain_steps:
            return self.image_pretrain_step(batches)
        if cfg.freeze_image_generator and not self.G.hold_image_statistics:  # once, also in a resumed run
            self.G.image.requires_grad_(False)
            if self.state.step == cfg.image_pretrain_steps:  # (a resumed run has these in its checkpoint)
                # the pretrained image generator is its average, with standing statistics, for G and G_ema alike
                self.refresh_ema_statistics()
                self.G.image.load_state_dict(self.G_ema.image.state_dict())
            # its batch norms keep those statistics: in train mode they follow the batch, whose frames' latents
            # the video phase moves (a frame's look would change with the others')
            for G in (self.G, self.G_ema):
                G.hold_image_statistics = True
                G.image.eval()
        losses, finite, clips = {}, True, 0
        reuse = cfg.n_critic == 1
        for _ in range(cfg.n_critic):
            real, labels = next(batches)
            clips += real.shape[0]
            z = self._latents(real.shape[0])
            with torch.set_grad_enabled(reuse), self._autocast():
                views = self.G.views(z, labels, self.G.condition(real))
            d_losses, ok = steps.discriminator_step(gan, cfg, self.G.real_views(real), views, labels, self.state.step)
            losses.update(d_losses)
            finite &= ok
        if self.G.conditional and self._preview_context is None:
            self._preview_context = self.G.condition(real[:8]).detach().clone()
        if finite:
            if not reuse:
                with self._autocast():
                    views = self.G.views(self._latents(real.shape[0]), labels, self.G.condition(real))
            g_losses, ok = steps.generator_step(gan, cfg, views, real, labels, self.state.step)
            losses.update(g_losses)
            finite &= ok
        return losses, finite, clips

    def image_pretrain_step(self, batches: Iterator) -> tuple[dict, bool, int]:
        """One step of a plain image GAN (``train.image_pretrain_steps``): each clip's generator paints only as many
        random frames as the image discriminators judge, and the image discriminators alone judge them against
        random frames of real clips. Returns what ``train_step`` returns."""
        real, labels = next(batches)
        count = max(D.frames_per_clip for D in self.image_Ds.values())
        with self._autocast():
            views = {"video": self.G.random_frames(self._latents(real.shape[0]), labels, count)}
        losses, finite = steps.discriminator_step(self.image_gan, self.cfg, self.G.real_views(real), views, labels,
                                                  self.state.step)
        if finite:
            g_losses, finite = steps.generator_step(self.image_gan, self.cfg, views, real, labels, self.state.step)
            losses.update(g_losses)
        return losses, finite, real.shape[0]

    # -- the loop ----------------------------------------------------------------------------------
    def _lr_schedulers(self) -> list:
        """One ``LambdaLR`` per optimiser, positioned at the current step. The rate is a function of the step
        alone, so a resumed run rebuilds its schedulers from the step and checkpoints carry no scheduler state."""
        factor = functools.partial(learning_rate_factor, self.cfg.lr_schedule, total=self.cfg.steps,
                                   decay_start=self.cfg.lr_decay_start)
        pretrain, slower = self.cfg.image_pretrain_steps, self.cfg.image_generator_lr

        def image_factor(step: int) -> float:  # the image generator's group, where it has one
            return factor(step) * (slower if step >= pretrain else 1.0)

        schedulers = []
        for opt, base in ((self.opt_g, self.cfg.lr_g), (self.opt_d, self.cfg.lr_d)):
            for group in opt.param_groups:
                group["initial_lr"] = base
            factors = [factor, image_factor][:len(opt.param_groups)]
            schedulers.append(torch.optim.lr_scheduler.LambdaLR(opt, factors, last_epoch=self.state.step - 1))
        return schedulers

    def run(self, progress: bool = True) -> dict:
        """Train from the newest checkpoint (or scratch) to ``train.steps`` or the time budget; returns the
        summary written to ``metrics/train.json`` plus the generator file's path."""
        from vgan.util.progress import progress_bar

        cfg = self.cfg
        self.resume()
        lr_schedulers = self._lr_schedulers()
        meter = {"data_wait": 0.0, "step_seconds": 0.0, "videos": 0}
        batches = self._device_batches(meter)
        deadline = time.monotonic() + cfg.max_minutes * 60 if cfg.max_minutes else None
        stopped_by_budget = False
        bar = progress_bar(total=cfg.steps, initial=self.state.step, desc="train (bf16)" if self.use_bf16 else "train",
                           unit="step", disable=not progress)
        running: dict[str, torch.Tensor] = {}
        while self.state.step < cfg.steps:
            if self._past_deadline(deadline):
                stopped_by_budget = True
                break
            lr_g, lr_d = (scheduler.get_last_lr()[0] for scheduler in lr_schedulers)  # this step's rates
            tick = time.monotonic()
            step_losses, finite, clips = self.train_step(batches)
            tock = time.monotonic()
            meter["step_seconds"] += tock - tick
            meter["videos"] += clips * self.world_size  # real training clips drawn, all ranks (videos_per_s)
            self.state.step += 1
            for scheduler in lr_schedulers:
                scheduler.step()
            self._count_bad_step(finite, bar)
            running.update(step_losses)
            bar.update(1)
            if self.state.step % cfg.log_every == 0 or self.state.step == cfg.steps:
                if self.device.type == "cuda":
                    torch.cuda.synchronize()  # the queued kernels belong to the time measured
                    meter["step_seconds"] += time.monotonic() - tock
                self._log_row(running, meter, lr_g, lr_d, bar)
            if self.state.step % cfg.sample_every == 0:
                self.refresh_ema_statistics()
                self.log_sample_grid()
            at_checkpoint = self.state.step % cfg.checkpoint_every == 0 or self.state.step == cfg.steps
            if at_checkpoint and self.state.consecutive_bad_steps == 0:  # never checkpoint inside a bad streak
                self.save_checkpoint()
        bar.close()
        return self._finish(meter, stopped_by_budget)

    def _past_deadline(self, deadline: float | None) -> bool:
        """Whether the time budget is spent. Every rank must stop at the same step, or the others wait in an
        all-reduce for ever; with several ranks the clock is compared (one collective) every log_every steps."""
        if not deadline or (self.world_size > 1 and self.state.step % self.cfg.log_every):
            return False
        return distributed.any_rank(time.monotonic() > deadline, self.world_size, self.device)

    def _count_bad_step(self, finite: bool, bar) -> None:
        """The non-finite guard: a step with a non-finite loss changed no weight; too many in a row stop training."""
        if finite:
            self.state.consecutive_bad_steps = 0
            return
        self.state.consecutive_bad_steps += 1
        self.state.skipped_steps += 1
        if self.state.consecutive_bad_steps >= self.cfg.max_bad_steps:
            bar.close()
            kept = ckpt.list_checkpoints(self.checkpoint_dir)
            raise TrainingError(
                f"{self.state.consecutive_bad_steps} consecutive non-finite losses at step {self.state.step}; "
                f"stopped (last good checkpoint: {kept[-1] if kept else 'none'}). Lower the learning rates "
                f"or enable train.grad_clip")

    def _log_row(self, running: dict, meter: dict, lr_g: float, lr_d: float, bar) -> None:
        """One row of the loss history (plots, MLflow): the latest losses, speed and rates."""
        seconds = max(meter["step_seconds"], 1e-9)
        values = {k: float(v) for k, v in running.items()}  # the one host read of losses per log row
        row = {"step": self.state.step, **{k: round(v, 6) for k, v in values.items()},
               "videos_per_s": round(meter["videos"] / seconds, 2),
               "data_wait_fraction": round(meter["data_wait"] / seconds, 4),
               "skipped_steps": self.state.skipped_steps, "lr_g": round(lr_g, 10), "lr_d": round(lr_d, 10)}
        self.state.history.append(row)
        self.logger.log_metrics({k: v for k, v in row.items() if k != "step"}, step=self.state.step)
        bar.set_postfix(d=f"{values.get('loss_d', 0):.3f}", g=f"{values.get('loss_g', 0):.3f}")

    def _finish(self, meter: dict, stopped_by_budget: bool) -> dict:
        """The final grid, checkpoint (after a budget stop), plots, generator file and metrics/train.json."""
        self.refresh_ema_statistics()
        self.log_sample_grid()  # the final generator's grid, whatever sample_every says
        if stopped_by_budget and self.state.consecutive_bad_steps == 0 and self._last_saved != self.state.step:
            self.save_checkpoint()  # every rank decides alike (rank 0 alone could see the folder)
        self.write_plots()
        generator_path = self.export_generator() if self.rank == 0 else None
        distributed.barrier(self.world_size)
        elapsed = meter["step_seconds"]
        summary = {
            "steps": self.state.step, "stopped_by_time_budget": stopped_by_budget,
            "skipped_steps": self.state.skipped_steps,
            "videos_per_s": round(meter["videos"] / elapsed, 2) if elapsed else 0.0,
            "data_wait_fraction": round(meter["data_wait"] / elapsed, 4) if elapsed else 0.0,
            **{k: v for k, v in (self.state.history[-1] if self.state.history else {}).items()
               if k.startswith("loss")},
        }
        self.write_train_metrics(summary)
        summary["generator"] = str(generator_path)
        return summary
