"""Presets: an architecture's size and training settings in one word, ``--set model.preset=cpu`` or ``=paper``.

- ``cpu``: the training recipe the default model trains with, shared by the zoo (hinge loss, spectral norm, Adam
  (0, 0.9) at 1e-3 for both networks, lazy R1, EMA 0.99), an image discriminator beside the video one where the
  architecture has none (DVD-GAN's pairing), a pair discriminator and DiffAugment's translation where screens showed
  them to help, and a width, batch and step count that train at least 1,500 steps in
  at most 10 minutes on 2 CPU cores at the default clip size (32x32, 16 frames; ``bench/bench_presets.py`` measures
  it). Where this changes the paper's settings, the preset says why (``vgan models`` prints it).
- ``paper``: the published clip size and batch with the paper's objective (``PAPER_OBJECTIVES``), for a GPU.
  It sets the shards' clip size too (and the moving digits' length where a clip is longer than their default).

A preset's values replace the params file's for the keys it names; ``--set`` overrides replace the preset's. So
``vgan train --set model.name=vgan --set model.preset=cpu --set train.steps=6000`` is the CPU preset with more steps.
Only the generation architectures have presets. Plain data, no torch: ``vgan.params`` reads it.
"""

from __future__ import annotations

from typing import NamedTuple

from vgan.util.errors import ParamsError

PRESET_NAMES = ("cpu", "paper")

# DCGAN's objective and Adam settings (non-saturating BCE, lr 2e-4, betas (0.5, 0.999)), which most papers of
# the zoo train with. params.yaml's defaults are tuned for the default architecture, so the others name theirs.
DCGAN_OBJECTIVE = ("train.loss=bce", "train.lr_g=2e-4", "train.lr_d=2e-4", "train.betas=[0.5,0.999]")

# each generation architecture's paper objective: its module's RECOMMENDED_OVERRIDES (`vgan models` prints them);
# here, without torch, because `vgan.params` resolves the paper preset for every stage
PAPER_OBJECTIVES = {
    "vgan": (*DCGAN_OBJECTIVE, "train.mask_weight=0.1"),  # and the paper's L1 prior on the mask, lambda 0.1
    "tgan": ("train.loss=wgan", "train.svc_every=5", *DCGAN_OBJECTIVE[1:]),
    "mocogan": DCGAN_OBJECTIVE,  # the paper trains with the non-saturating (BCE) objective
    "dvdgan": ("train.loss=hinge", "model.spectral_norm=true", "train.lr_g=5e-5", "train.lr_d=2e-4",
               "train.betas=[0.0,0.999]"),
    "hrvgan": ("train.loss=wgan-gp", "train.gp_weight=10", "train.adv_weight=0.5", "train.recon_weight=0.5",
               "train.recon_loss=l2", "train.n_critic=5", "train.betas=[0.0,0.9]", "train.lr_g=1e-4", "train.lr_d=1e-4"),
    "progressive": DCGAN_OBJECTIVE,  # as VGAN, its base; for stages, see model.progressive.stage
    "stylegan_v": ("train.loss=bce", "train.r1_weight=1.0", "train.lr_g=2.5e-3", "train.lr_d=2.5e-3",
                   "train.betas=[0.0,0.99]", "model.stylegan_v.sparse_training=true"),  # and its sparse training
    "motionshape": ("train.loss=hinge", "train.betas=[0.0,0.9]"),
}

# the default's trainer settings (params.yaml's train group), written out so that a preset does not depend on
# what a params file holds
RECIPE = ("train.loss=hinge", "train.lr_g=1e-3", "train.lr_d=1e-3", "train.betas=[0.0,0.9]", "train.n_critic=1",
          "train.r1_weight=0.1", "train.r1_every=16", "train.ema_decay=0.99", "train.adv_weight=1.0",
          "train.recon_weight=0.0", "train.mask_weight=0.0", "train.svc_every=0", "train.lr_schedule=constant",
          "train.ema_follows_rate=false", "train.image_pretrain_steps=0", "train.freeze_image_generator=false",
          "train.image_generator_lr=1.0",
          "model.spectral_norm=true",
          # the default's discriminator settings (model.motionshape has its own keys for them): 3D video
          # discriminators judge half-resolution clips, and every discriminator's input is multiplied by sqrt(3)
          "model.video_downsample=2", "model.d_input_gain=1.732", "train.augment=[]")
IMAGE_D = ("model.image_discriminator=4",)
PAIR_D = ("model.pair_discriminator=4",)  # judges whether a clip keeps its digit
# DiffAugment's translation for every discriminator input (a whole clip shifted alike): at 1,500 steps it took
# VGAN from 61.7 to 51.6, DVD-GAN from 81.6 to 61.4 and TGAN from 77.4 to 70.3; at full length DVD-GAN ended worse
# with it alone (63.1 / 63.3 against 60.9 / 53.7) but better with it and a pair discriminator (49.1 / 48.5), as
# HRVGAN (51.3 / 49.4 against 64.1 / 69.1) and progressive did (76.0 / 63.0 against 89.0 / 93.4). MoCoGAN's preset
# goes without; StyleGAN-V's too (72.0 / 84.6 against 83.4 / 80.5 at full length: one seed better, one worse;
# docs/training.md, "Translation")
TRANSLATE = ("train.augment=[translation]",)
# the learning rate held for the first quarter of the steps, then decaying linearly to 0: for a model whose curve
# wanders up late in training (MoCoGAN's ended 10 and 31 points lower on its two seeds; docs/training.md)
DECAY = ("train.lr_schedule=linear", "train.lr_decay_start=0.25")
RECIPE_WHY = ("under their papers' objectives every architecture of the zoo stayed 11-178x the static frame's "
              "fd_evaluator on a CPU budget (docs/results.md); under the recipe VGAN went from 2,010 to 77-107 in "
              "1,500 steps, and with the default's discriminator settings from 123 to 73 (docs/training.md)")


class Preset(NamedTuple):
    overrides: tuple[str, ...]
    why: str  # what differs from the paper, and why; for a paper preset, where its values come from


def _paper_size(resolution: int, frames: int, batch: int) -> tuple[str, ...]:
    """The model's clip size, the shards cut to it, and moving digits long enough for one clip."""
    return (f"model.resolution={resolution}", f"model.frames={frames}", f"shards.size={resolution}",
            f"shards.clip_frames={frames}", f"data.frames={max(32, frames)}", f"train.batch_size={batch}")


def _paper(name: str, size: tuple[int, int, int], source: str) -> Preset:
    return Preset((*_paper_size(*size), *PAPER_OBJECTIVES[name]), source)


# cpu: (width, batch, steps, extra overrides, why beyond the recipe). Sizes from bench/bench_presets.py (2 cores, bf16,
# 64 timed steps; bench/results/presets_cpu.json). On the Xeons with AMX of sessions before #22 a batch-16 step took
# 0.13-0.16 s (StyleGAN-V's sparse step 0.077), each architecture's steps filling 7.7-9.8 of the 10 minutes, and in
# slow half hours VGAN's, TGAN's and HRVGAN's projected 10.1-10.7 (this machine's speed varies by a third:
# docs/training.md, #21); the file's last run, on an AMD EPYC without AMX and with the faster layers of #22, put every
# preset at 5.7-8.3 minutes. At batch 32, 1,500 steps took 4.7-8.1 minutes
_CPU = {
    "vgan": (32, 16, 3500, (*IMAGE_D, *PAIR_D, *TRANSLATE, "train.lr_g=2e-3"), "an image discriminator on 4 frames per clip beside the "
             "3D one, a pair discriminator (the first frame beside 4 later ones) and DiffAugment's translation: each "
             "lowered fd_evaluator at 1,500 steps on both seeds screened (pairs: 61.7 and 66.2 against 73.2 and 73.8; "
             "translation: 51.6 and 61.8 against 61.7 and 66.2, though at 3,500 steps the same on average: 48.9 and "
             "43.8 against 45.3 and 47.4; docs/training.md)"),
    "tgan": (32, 16, 4250, (*IMAGE_D, "model.minibatch_std=4", *TRANSLATE), "hinge with spectral norm instead of "
             "WGAN with singular value clipping; an image discriminator on 4 frames per clip; a minibatch-stddev "
             "feature in the video discriminator (seed 0 collapsed to one shape without it: fd_evaluator 142 against "
             "77 at 1,500 steps, docs/training.md); DiffAugment's translation (64.9 and 49.1 against 80.8 and 68.7 at "
             "its 4,250 steps)"),
    "mocogan": (32, 16, 5000, (*PAIR_D, *DECAY, "model.mocogan.image_frames=4", "train.image_pretrain_steps=2000",
                               "train.image_generator_lr=0.03"),
                "its own image discriminator stays, on 4 frames per clip; the first 2,000 steps train its image "
                "generator alone as a plain image GAN (4 random frames per clip against that discriminator, as "
                "MoCoGAN-HD starts from a pretrained image generator), then the whole model with the image generator "
                "at 0.03 of the rate: 58.3 and 70.3 against 72.9 and 95.1 without pretraining, 64.4 and 79.8 at 0.1 "
                "of the rate and 86.5 and 86.7 at the full rate (docs/training.md, image pretraining); a pair "
                "discriminator (the first frame beside 4 later ones) beside the image and video ones: 75.9 and 73.5 "
                "against 90.7 and 71.2 at 1,500 steps; the learning rate decaying linearly to 0 from step 1,250 (its "
                "curves wandered up late: 72.9 and 95.1 with it against 83.3 and 126 without)"),
    "dvdgan": (32, 16, 3500, ("model.dvdgan.generator=3d", *PAIR_D, *TRANSLATE),
               "its dual discriminators stay; the 3D-deconvolution generator instead of the ConvGRU one, which took "
               "5.7x longer per step on a CPU (0.56 against 0.10 s at width 16, batch 8, one thread); the recipe's "
               "equal learning rates; VGAN's pair discriminator (the first frame beside 4 later ones) and "
               "DiffAugment's translation: 49.1 and 48.5 at 3,500 steps against 60.9 and 53.7 at 4,000 without "
               "(docs/training.md)"),
    "hrvgan": (32, 16, 3500, (*IMAGE_D, *PAIR_D, *TRANSLATE), "hinge with spectral norm instead of WGAN-GP with 5 "
               "critic steps (a fifth of the generator steps on a CPU), no pixel loss (an MSE between a generated "
               "clip and an unrelated real one pulls every sample to the mean clip); an image discriminator on 4 "
               "frames per clip; VGAN's pair discriminator and DiffAugment's translation: 51.3 and 49.4 at 3,500 "
               "steps against 64.1 and 69.1 at 3,750 without (docs/training.md)"),
    "progressive": (16, 16, 3250, (*IMAGE_D, *PAIR_D, *TRANSLATE), "joint stage, width 16 (at 32 a step took "
                    "2x as long, and since the refiner runs frames as images, width 32 scored 87.8 and 64.7 where 16 "
                    "scored 55.0 and 64.9 on one machine); an image discriminator on 4 frames per clip; VGAN's pair "
                    "discriminator and DiffAugment's translation: 76.0 and 63.0 at 3,250 steps against 89.0 and 93.4 "
                    "at 3,750 without (docs/training.md)"),
    "stylegan_v": (32, 16, 6000, ("train.r1_weight=1.0", "model.d_input_gain=1.0",
                                  "model.stylegan_v.sparse_training=true"),
                   "hinge instead of the non-saturating loss, the recipe's learning rates; R1 weight 1 and no input "
                   "gain, as before the other presets took the default's discriminator settings (its discriminator "
                   "is 2D: with them it scored 109 against 92 at 1,500 steps, seed 0); the paper's sparse training "
                   "(the generator renders only the 3 frames its discriminator judges: a step about 0.4x as long), "
                   "so 6,000 steps where 2,750 took as long: 68.9 and 58.1 against 83.4 and 80.5 (docs/training.md)"),
    "motionshape": (32, 32, 4000, (), "the default configuration (params.yaml): the recipe is its own"),
}

_PAPER = {
    "vgan": ((64, 32, 64), "Vondrick et al. 2016: 64x64 clips of 32 frames, batch 64, Adam 2e-4 (0.5, 0.999), "
             "an L1 prior on the mask (weight 0.1)"),
    "tgan": ((64, 16, 64), "Saito et al. 2017: 64x64 clips of 16 frames, WGAN with singular value clipping "
             "(batch 64: this project's choice)"),
    "mocogan": ((64, 16, 64), "Tulyakov et al. 2018: 64x64 frames, 16-frame clips, non-saturating loss "
                "(batch 64: this project's choice)"),
    "dvdgan": ((128, 48, 512), "Clark et al. 2019: 128x128 clips of 48 frames, batch 512, hinge, lr 5e-5 / 2e-4"),
    "hrvgan": ((256, 32, 64), "HRVGAN: up to 256x256 clips of 32 frames, WGAN-GP + MSE (batch 64: this "
               "project's choice)"),
    "progressive": ((256, 32, 64), "progressive video GANs: 256x256 clips of 32 frames from a 64x64 base "
                    "(batch 64: this project's choice)"),
    "stylegan_v": ((256, 16, 64), "Skorokhodov et al. 2022: 256x256 frames, batch 64, R1, lr 2.5e-3"),
    "motionshape": ((64, 16, 64), "no published size: 64x64 clips of 16 frames, batch 64, its hinge objective"),
}


def preset(name: str, which: str) -> Preset:
    """The preset ``which`` (cpu | paper) of architecture ``name``; a ParamsError names what exists."""
    if which not in PRESET_NAMES:
        raise ParamsError(f"parameter model.preset = {which!r}: expected one of {', '.join(PRESET_NAMES)} (or null)")
    if name not in _CPU:
        raise ParamsError(f"parameter model.preset = {which!r}: {name} has no presets (only the generation "
                          f"architectures have: {', '.join(_CPU)}); set its sizes directly")
    if which == "paper":
        return _paper(name, *_PAPER[name])
    width, batch, steps, extra, why = _CPU[name]
    sizes = (f"model.width={width}", f"train.batch_size={batch}", f"train.steps={steps}")
    return Preset((*RECIPE, *extra, *sizes), why if name == "motionshape" else
                  f"the recipe instead of the paper's objective; {why}")


def presets_of(name: str) -> dict[str, Preset] | None:
    """Both presets of an architecture, or None for one without (the conditional tasks)."""
    return {which: preset(name, which) for which in PRESET_NAMES} if name in _CPU else None
