"""The one training loop: every architecture, several discriminators, exact resume.

Imports only torch/numpy at module level; MLflow logging arrives through ``logger``.
The ``Trainer`` owns the state that makes resume bit-exact (weights, optimisers, data position, every random
stream, the EMA's statistics) and the checkpoint round trip; the D and G steps are functions of the modules in
``steps``, and the parts that need no such state live beside it (``checkpoint``, ``ema``, ``distributed``,
``vgan.train.losses``, ``vgan.train.augment``).

``videos_per_s`` (logged and in ``metrics/train.json``) is one thing everywhere, also in ``bench/``: real
training clips drawn per second of step time, i.e. global batch x ``n_critic`` per step.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import functools
import itertools
import json
import math
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from vgan.data.loader import to_model_range
from vgan.models.layers import to_channels_last_3d
from vgan.models.zoo import build_model
from vgan.train import checkpoint as ckpt
from vgan.train import distributed, steps
from vgan.train.ema import standing_statistics
from vgan.train.generator_file import save_generator
from vgan.util.devices import select_device
from vgan.util.errors import TrainingError
from vgan.util.io import atomic_path

PLOT_FILE = "plots/train_losses.csv"
GENERATOR_FILE = "models/generator.pt"
EMA_STATISTICS_CLIPS = 256  # generated clips behind G_ema's standing batch-norm statistics
TRAIN_METRICS_FILE = "metrics/train.json"


class NullLogger:
    """Stands in for MLflow when none is wanted (benchmarks, GPU machines without the stack)."""

    def log_params(self, params: dict) -> None: ...
    def log_metrics(self, metrics: dict, step: int | None = None) -> None: ...
    def log_artifact(self, path, artifact_path: str | None = None) -> None: ...


@dataclass
class TrainState:
    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    consecutive_bad_steps: int = 0
    skipped_steps: int = 0
    history: list = field(default_factory=list)


# Random streams of one run, each derived from train.seed by a fixed rule so no two coincide: the preview
# latents and labels, the training latents (shared by every rank), each rank's draws inside the models, and
# each epoch's data order.
PREVIEW_LATENTS, PREVIEW_LABELS, TRAINING_LATENTS = 1, 2, 3  # seed + this
RANK_STRIDE = 1_000_003  # rank r's global streams: seed + RANK_STRIDE * r (+ the step, after a world-size change)
EPOCH_STRIDE = 100_003  # epoch e's data order: seed * EPOCH_STRIDE + e


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def learning_rate_factor(schedule: str, step: int, total: int) -> float:
    progress = min(step / max(total, 1), 1.0)
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    return 1.0


class Trainer:
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
        self.use_bf16 = self.device.type == "cuda" and self.cfg.precision in ("auto", "bf16")
        if self.cfg.deterministic:
            torch.use_deterministic_algorithms(True)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = not self.cfg.deterministic
        seed_everything(self.cfg.seed)
        self.G, discriminators = build_model(params.model)
        self.Ds = nn.ModuleDict(discriminators)
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
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=self.cfg.lr_g, betas=self.cfg.betas, fused=fused)
        self.opt_d = torch.optim.Adam(self.Ds.parameters(), lr=self.cfg.lr_d, betas=self.cfg.betas, fused=fused)
        self.gan = steps.GanModules(self.G, self.G_ema, self.Ds, self.opt_g, self.opt_d, world_size, self._autocast,
                                    concatenate=self.device.type == "cuda")
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

    # -- state -----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        s = self.state
        return {
            "format": ckpt.CHECKPOINT_FORMAT, "params": self.params.model_dump(mode="json"),
            "model_hash": self.model_hash, "step": s.step,
            "G": self.G.state_dict(), "G_ema": self.G_ema.state_dict(), "D": self.Ds.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "data": {"epoch": s.epoch, "batches_in_epoch": s.batches_in_epoch},
            "guard": {"consecutive_bad_steps": s.consecutive_bad_steps, "skipped_steps": s.skipped_steps},
            "history": s.history, "rng": ckpt.rng_state(), "latent_rng": self.latent_rng.get_state(),
        }

    def _rank_state(self) -> dict:
        """What differs between ranks: data position and the global RNG streams."""
        return {"epoch": self.state.epoch, "batches_in_epoch": self.state.batches_in_epoch, "rng": ckpt.rng_state()}

    def resume(self) -> bool:
        """Continue from this run's newest readable checkpoint, else from ``train.resume_from``."""
        # load to CPU: RNG states must be CPU tensors; load_state_dict moves weights and optimiser state
        found = ckpt.load_latest_checkpoint(self.checkpoint_dir, map_location="cpu")
        if found is None and self.cfg.resume_from:
            found = ckpt.load_checkpoint(self.cfg.resume_from, map_location="cpu"), Path(self.cfg.resume_from)
        self._check_ranks_resume_alike(found)
        if found is None:
            return False
        state, path = found
        if state["model_hash"] != self.model_hash:
            raise TrainingError(
                f"checkpoint {path} was trained with different model params (hash {state['model_hash']} != "
                f"{self.model_hash}); restore the model params or move {self.checkpoint_dir} away to start afresh")
        self.G.load_state_dict(state["G"])
        self.G_ema.load_state_dict(state["G_ema"])
        self.Ds.load_state_dict(state["D"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        own = {"epoch": state["data"]["epoch"], "batches_in_epoch": state["data"]["batches_in_epoch"],
               "rng": state["rng"]}
        ranks = state.get("ranks")
        if self.world_size > 1 or ranks:
            if ranks and len(ranks) == self.world_size:
                own = ranks[self.rank]
            else:  # another world size: shards split differently, so restart the epoch with fresh streams
                if self.rank == 0:
                    warnings.warn(f"{path} was written by {len(ranks) if ranks else 1} rank(s), this run has "
                                  f"{self.world_size}: the data epoch restarts and per-rank random streams are "
                                  f"re-seeded (the weights and optimiser state resume exactly)")
                seed_everything(self.cfg.seed + RANK_STRIDE * self.rank + state["step"])
                own = {"epoch": own["epoch"] + 1, "batches_in_epoch": 0, "rng": None}
        self.state = TrainState(step=state["step"], epoch=own["epoch"], batches_in_epoch=own["batches_in_epoch"],
                                consecutive_bad_steps=state["guard"]["consecutive_bad_steps"],
                                skipped_steps=state["guard"]["skipped_steps"], history=list(state["history"]))
        if own["rng"] is not None:
            ckpt.restore_rng_state(own["rng"])
        self.latent_rng.set_state(state["latent_rng"])
        self._last_saved = self.state.step
        if self.rank == 0:
            print(f"resumed from {path} at step {self.state.step}")
        return True

    def _check_ranks_resume_alike(self, found: tuple[dict, Path] | None) -> None:
        """Raise on every rank unless every rank found a checkpoint of the same step (or none found one)."""
        if self.world_size <= 1:
            return
        # each rank reads the checkpoint folder itself, and rank 0 alone writes it: on nodes that do not share
        # the folder, rank 0 would resume while the others start afresh, and their lockstep collectives would
        # mix two trainings. Every rank takes the same decision here, so none is left waiting for the others.
        steps = distributed.gather_objects(None if found is None else int(found[0]["step"]), self.world_size)
        if len(set(steps)) > 1:
            seen = ", ".join(f"rank {rank}: {'none' if step is None else f'step {step}'}"
                             for rank, step in enumerate(steps))
            raise TrainingError(f"the ranks found different checkpoints to resume from in {self.checkpoint_dir} "
                                f"({seen}); rank 0 alone writes checkpoints, so put train.checkpoint_dir on a "
                                f"filesystem every node shares")

    def save_checkpoint(self) -> Path | None:
        """Rank 0 writes; every rank must call it (their data positions and RNG states are gathered)."""
        ranks = distributed.gather_objects(self._rank_state(), self.world_size) if self.world_size > 1 else None
        self._last_saved = self.state.step
        if self.rank != 0:
            return None
        path = ckpt.checkpoint_path(self.checkpoint_dir, self.state.step)
        state = self.state_dict()
        if ranks is not None:
            state["ranks"] = ranks
        ckpt.atomic_save(state, path)
        ckpt.prune_checkpoints(self.checkpoint_dir, self.cfg.keep_checkpoints)
        self.write_plots()
        return path

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

    def _device_batches(self, timer: dict) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """``_batches`` on the training device; adds the seconds spent waiting to ``timer["data_wait"]``."""
        batches = self._batches()
        while True:
            tick = time.monotonic()
            batch = self._to_device(*next(batches))
            timer["data_wait"] += time.monotonic() - tick
            yield batch

    # -- one step ----------------------------------------------------------------------------------
    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.use_bf16 else contextlib.nullcontext()

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

    # -- outputs -----------------------------------------------------------------------------------
    def refresh_ema_statistics(self) -> None:
        """Standing batch-norm statistics for G_ema from its own clips; every rank calls it (DDP all-reduces).

        Seeded by the step, so a resumed run computes what an uninterrupted one did; each rank draws the
        global batch and keeps its slice, as in training.
        """
        if self._ema_statistics_step == self.state.step:
            return  # G_ema's weights have not changed since (the last step is often also a sample step)
        if self.G.conditional and self._preview_context is None:
            return  # no real context clips yet (a resume at the final step): keep the checkpoint's statistics
        rng = torch.Generator(device=self.device).manual_seed(self.cfg.seed + self.state.step)
        local = self.cfg.batch_size // self.world_size
        batches = max(4, EMA_STATISTICS_CLIPS // self.cfg.batch_size)

        def inputs(_):
            z = self.G.sample_z(self.cfg.batch_size, device=self.device, generator=rng)
            labels = self.G.sample_labels(self.cfg.batch_size, device=self.device, generator=rng)
            mine = slice(self.rank * local, (self.rank + 1) * local)
            context = None
            if self.G.conditional:
                picks = torch.arange(self.cfg.batch_size, device=self.device) % len(self._preview_context)
                context = self._preview_context[picks[mine]]
            return z[mine], None if labels is None else labels[mine], context

        with self._autocast():
            standing_statistics(self.G_ema, inputs, batches)
        self._ema_statistics_step = self.state.step

    @torch.no_grad()
    def fixed_samples(self) -> torch.Tensor:
        """Fixed-noise samples of the EMA generator (conditional models get the conditions of fixed real clips)."""
        context = self._preview_context if self.G.conditional else None
        count = 8 if context is None else len(context)
        labels = None if self.fixed_y is None else self.fixed_y[:count]
        return self.G_ema.views(self.fixed_z[:count], labels, context)["video"]

    def log_sample_grid(self) -> None:
        """A GIF grid of fixed-noise samples at this step (once per step, also after a resume)."""
        path = self.root / "plots" / "training_samples" / f"step-{self.state.step:08d}.gif"
        if self.rank != 0 or path.exists() or (self.G.conditional and self._preview_context is None):
            return
        from vgan.util.media import to_uint8, upscale, video_grid, write_gif

        videos = to_uint8(self.fixed_samples())
        write_gif(upscale(video_grid(videos), 2), path, fps=8)
        self.logger.log_artifact(path, "training_samples")

    def write_plots(self) -> None:
        if self.rank != 0:
            return
        path = self.root / PLOT_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self.state.history:
            return
        columns = sorted({key for row in self.state.history for key in row}, key=lambda k: (k != "step", k))
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.state.history)

    def export_generator(self) -> Path:
        return save_generator(self.root / GENERATOR_FILE, self.params, self.model_hash, self.state.step, self.G,
                              self.G_ema)

    # -- the loop ----------------------------------------------------------------------------------
    def _lr_schedulers(self) -> list:
        """One ``LambdaLR`` per optimiser, positioned at the current step. The rate is a function of the step
        alone, so a resumed run rebuilds its schedulers from the step and checkpoints carry no scheduler state."""
        factor = functools.partial(learning_rate_factor, self.cfg.lr_schedule, total=self.cfg.steps)
        schedulers = []
        for opt, base in ((self.opt_g, self.cfg.lr_g), (self.opt_d, self.cfg.lr_d)):
            for group in opt.param_groups:
                group["initial_lr"] = base
            schedulers.append(torch.optim.lr_scheduler.LambdaLR(opt, factor, last_epoch=self.state.step - 1))
        return schedulers

    def run(self, progress: bool = True) -> dict:
        from vgan.util.progress import progress_bar

        cfg = self.cfg
        self.resume()
        lr_schedulers = self._lr_schedulers()
        timer = {"data_wait": 0.0}
        batches = self._device_batches(timer)
        started = time.monotonic()
        deadline = started + cfg.max_minutes * 60 if cfg.max_minutes else None
        step_seconds = 0.0
        videos_seen = 0
        stopped_by_budget = False
        bar = progress_bar(total=cfg.steps, initial=self.state.step, desc="train", unit="step", disable=not progress)
        running: dict[str, torch.Tensor] = {}
        while self.state.step < cfg.steps:
            # every rank must stop at the same step, or the others wait in an all-reduce for ever; with several
            # ranks the clock is compared (one collective) every log_every steps only
            if deadline and (self.world_size == 1 or self.state.step % cfg.log_every == 0) and distributed.any_rank(
                    time.monotonic() > deadline, self.world_size, self.device):
                stopped_by_budget = True
                break
            lr_g, lr_d = (scheduler.get_last_lr()[0] for scheduler in lr_schedulers)  # this step's rates
            tick = time.monotonic()
            step_losses, finite, clips = self.train_step(batches)
            tock = time.monotonic()
            step_seconds += tock - tick
            videos_seen += clips * self.world_size  # real training clips drawn, all ranks (VIDEOS_PER_S)
            self.state.step += 1
            for scheduler in lr_schedulers:
                scheduler.step()
            if finite:
                self.state.consecutive_bad_steps = 0
            else:
                self.state.consecutive_bad_steps += 1
                self.state.skipped_steps += 1
                if self.state.consecutive_bad_steps >= cfg.max_bad_steps:
                    bar.close()
                    kept = ckpt.list_checkpoints(self.checkpoint_dir)
                    raise TrainingError(
                        f"{self.state.consecutive_bad_steps} consecutive non-finite losses at step {self.state.step}; "
                        f"stopped (last good checkpoint: {kept[-1] if kept else 'none'}). Lower the learning rates "
                        f"or enable train.grad_clip")
            running.update(step_losses)
            bar.update(1)
            if self.state.step % cfg.log_every == 0 or self.state.step == cfg.steps:
                if self.device.type == "cuda":
                    torch.cuda.synchronize()  # the queued kernels belong to the time measured
                    step_seconds += time.monotonic() - tock
                values = {k: float(v) for k, v in running.items()}  # the one host read of losses per log row
                row = {"step": self.state.step, **{k: round(v, 6) for k, v in values.items()},
                       "videos_per_s": round(videos_seen / max(step_seconds, 1e-9), 2),
                       "data_wait_fraction": round(timer["data_wait"] / max(step_seconds, 1e-9), 4),
                       "skipped_steps": self.state.skipped_steps, "lr_g": round(lr_g, 10), "lr_d": round(lr_d, 10)}
                self.state.history.append(row)
                self.logger.log_metrics({k: v for k, v in row.items() if k != "step"}, step=self.state.step)
                bar.set_postfix(d=f"{values.get('loss_d', 0):.3f}", g=f"{values.get('loss_g', 0):.3f}")
            if self.state.step % cfg.sample_every == 0:
                self.refresh_ema_statistics()
                self.log_sample_grid()
            at_checkpoint = self.state.step % cfg.checkpoint_every == 0 or self.state.step == cfg.steps
            if at_checkpoint and self.state.consecutive_bad_steps == 0:  # never checkpoint inside a bad streak
                self.save_checkpoint()
        bar.close()
        self.refresh_ema_statistics()
        self.log_sample_grid()  # the final generator's grid, whatever sample_every says
        if stopped_by_budget and self.state.consecutive_bad_steps == 0 and self._last_saved != self.state.step:
            self.save_checkpoint()  # every rank decides alike (rank 0 alone could see the folder)
        self.write_plots()
        generator_path = self.export_generator() if self.rank == 0 else None
        distributed.barrier(self.world_size)
        elapsed = step_seconds
        summary = {
            "steps": self.state.step, "stopped_by_time_budget": stopped_by_budget,
            "skipped_steps": self.state.skipped_steps,
            "videos_per_s": round(videos_seen / elapsed, 2) if elapsed else 0.0,
            "data_wait_fraction": round(timer["data_wait"] / elapsed, 4) if elapsed else 0.0,
            **{k: v for k, v in (self.state.history[-1] if self.state.history else {}).items()
               if k.startswith("loss")},
        }
        if self.rank == 0:
            metrics_path = self.root / TRAIN_METRICS_FILE
            metrics_path.parent.mkdir(parents=True, exist_ok=True)
            metrics_path.write_text(json.dumps(summary, indent=2) + "\n")
        summary["generator"] = str(generator_path)
        return summary
