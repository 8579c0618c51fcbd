"""train.image_pretrain_steps: TGAN's and MoCoGAN's image generator trained first as a plain image GAN."""

from __future__ import annotations

import pytest
import torch

from test_trainer_features import clip_batches, one_thread, tiny  # noqa: F401 (one_thread: an autouse fixture)
from vgan.models.zoo import build_model
from vgan.train.loop import Trainer
from vgan.util.errors import ParamsError


def weights(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def changed(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(old, new) for old, new in zip(before, module.parameters()))


@pytest.mark.parametrize("name", ["tgan", "mocogan"])
def test_random_frames_are_frames_of_the_clip_the_generator_makes(name, tmp_path):
    params = tiny(tmp_path, f"model.name={name}")
    G, _ = build_model(params.model)
    G.eval()
    z = G.sample_z(3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        clips, frames = G(z), G.random_frames(z, count=2)
    assert frames.shape == (3, clips.shape[1], 2, *clips.shape[3:])
    for clip, picked in zip(clips, frames):
        for t in range(2):  # each painted frame is one of its clip's frames, and the two are different frames
            distances = (clip - picked[:, t, None]).abs().flatten(2).amax(dim=(0, 2))
            assert distances.min() < 1e-5
        assert not torch.equal(picked[:, 0], picked[:, 1])


def test_pretraining_steps_train_the_image_generator_against_the_image_discriminator_alone(tmp_path, monkeypatch):
    params = tiny(tmp_path, "model.name=mocogan", "train.steps=3", "train.image_pretrain_steps=3")
    trainer = Trainer(params, clip_batches(), out_root=tmp_path)
    painted = []
    forward = trainer.G.image.forward
    monkeypatch.setattr(trainer.G.image, "forward", lambda h: painted.append(h.shape[0]) or forward(h))
    video_d, image_d, image_g = weights(trainer.Ds["video"]), weights(trainer.Ds["image"]), weights(trainer.G.image)
    trainer.run(progress=False)
    assert not changed(video_d, trainer.Ds["video"])  # the video discriminator waited
    assert changed(image_d, trainer.Ds["image"]) and changed(image_g, trainer.G.image)
    # one frame per clip of the batch of 4 (model.mocogan.image_frames: 1), not the 8 frames of a clip
    assert painted[:3] == [4, 4, 4]


def test_frozen_image_generator_is_its_pretrained_average_while_the_motion_path_trains(tmp_path):
    params = tiny(tmp_path, "model.name=mocogan", "train.steps=2", "train.image_pretrain_steps=2",
                  "train.freeze_image_generator=true")
    Trainer(params, clip_batches(), out_root=tmp_path).run(progress=False)
    params.train.steps = 4
    trainer = Trainer(params, clip_batches(), out_root=tmp_path)  # resumes at step 2: pretraining is over
    trainer.resume()
    average, motion, video_d = weights(trainer.G_ema.image), weights(trainer.G.motion), weights(trainer.Ds["video"])
    trainer.run(progress=False)
    # from the end of pretraining G and G_ema paint with the pretraining's average, batch-norm statistics included
    assert not changed(average, trainer.G.image) and not changed(average, trainer.G_ema.image)
    for held, ema in zip(trainer.G.image.buffers(), trainer.G_ema.image.buffers()):
        assert torch.equal(held, ema)
    assert changed(motion, trainer.G.motion) and changed(video_d, trainer.Ds["video"])


def test_frozen_image_generator_paints_a_frame_from_its_own_latent_alone(tmp_path):
    """In train mode a batch norm normalises by the batch: a frame's look would follow the other frames' latents,
    which the video phase moves (TGAN's first frame, frozen, went from 38.6 to 52.2 in 500 steps; docs/training.md)."""
    params = tiny(tmp_path, "model.name=mocogan", "train.steps=3", "train.image_pretrain_steps=2",
                  "train.freeze_image_generator=true")
    trainer = Trainer(params, clip_batches(), out_root=tmp_path)
    trainer.run(progress=False)
    G = trainer.G.train()
    latents = G.frame_latents(G.sample_z(4, generator=torch.Generator().manual_seed(0))).flatten(0, 1).detach()
    with torch.no_grad():
        alone, among_others = G.image(latents[:1]), G.image(torch.cat([latents[:1], 3 * latents[1:]]))[:1]
    assert torch.allclose(alone, among_others, atol=1e-6)
    assert trainer.G.image.training is False and trainer.G.motion.training is True


@pytest.mark.parametrize("overrides, message", [
    (("model.name=vgan", "train.image_pretrain_steps=5"),
     "parameter train.image_pretrain_steps = 5: vgan's frames are not painted one by one by an image generator"),
    (("model.name=tgan", "train.image_pretrain_steps=5", "model.image_discriminator=0"),
     "parameter train.image_pretrain_steps = 5: tgan has no image discriminator to pretrain against"),
    (("model.name=mocogan", "train.freeze_image_generator=true"),
     "parameter train.freeze_image_generator = true: it freezes the image generator after "
     "train.image_pretrain_steps, which is 0"),
])
def test_image_pretraining_is_refused_in_one_line_where_it_cannot_run(overrides, message, tmp_path):
    with pytest.raises(ParamsError, match="^" + message.replace("(", r"\(").replace(".", r"\.")):
        Trainer(tiny(tmp_path, *overrides), clip_batches(), out_root=tmp_path)


def test_image_generator_learns_slower_after_pretraining_when_asked(tmp_path):
    params = tiny(tmp_path, "model.name=mocogan", "train.steps=4", "train.image_pretrain_steps=2",
                  "train.image_generator_lr=0.1", "train.lr_g=1e-3")
    trainer = Trainer(params, clip_batches(), out_root=tmp_path)
    rates = []  # each generator step's rates; the image generator's group is the second
    trainer.opt_g.register_step_pre_hook(lambda opt, *_: rates.append([group["lr"] for group in opt.param_groups]))
    trainer.run(progress=False)
    assert [rate for both in rates for rate in both] == pytest.approx([1e-3, 1e-3] * 2 + [1e-3, 1e-4] * 2)
    image = {id(p) for p in trainer.G.image.parameters()}
    assert {id(p) for p in trainer.opt_g.param_groups[1]["params"]} == image


def test_a_slower_image_generator_without_pretraining_is_refused_in_one_line(tmp_path):
    with pytest.raises(ParamsError, match=r"^parameter train\.image_generator_lr = 0\.1: it slows the image generator "
                                          r"after train\.image_pretrain_steps, which is 0"):
        Trainer(tiny(tmp_path, "model.name=mocogan", "train.image_generator_lr=0.1"), clip_batches(), out_root=tmp_path)
