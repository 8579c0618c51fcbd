"""StyleGAN-V: continuous-time motion (any length, any frame rate), modulated convolutions, time-gap discriminator."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import run_cli, workspace_on
from vgan.models.zoo import build_model
from vgan.models.stylegan_v import ModulatedConv2d
from vgan.params import default_params

TINY = dict(name="stylegan_v", resolution=16, frames=8, width=4, z_dim=8, channels=3)


def tiny_model(**overrides):
    torch.manual_seed(0)
    G, discriminators = build_model(default_params(model={**TINY, **overrides}).model)
    return G.eval(), discriminators["time_gaps"]


def test_shapes_at_training_length_twice_it_and_other_frame_rates():
    G, _ = tiny_model()
    assert G.variable_length and G.continuous_time and G.latent_dim == G.sample_z(1).shape[1]
    with torch.no_grad():
        assert G(G.sample_z(2), None).shape == (2, 3, 8, 16, 16)
        assert G(G.sample_z(2, num_frames=16), None, num_frames=16).shape == (2, 3, 16, 16, 16)
        for frames, step in ((15, 0.5), (4, 2.0), (40, 0.25)):
            video = G(G.sample_z(2, num_frames=frames, time_step=step), None, num_frames=frames, time_step=step)
            assert video.shape == (2, 3, frames, 16, 16) and video.abs().max() <= 1
    with pytest.raises(ValueError, match=r"sample_z\(batch, num_frames=32"):
        G(G.sample_z(1), None, num_frames=32)  # a training-length latent has no motion for 32 frames
    with pytest.raises(ValueError, match="time_step must be > 0"):
        G(G.sample_z(1), None, time_step=0.0)


def test_a_long_clip_continues_the_short_one_and_other_rates_interleave_it():
    G, _ = tiny_model()
    z = G.sample_z(3, num_frames=16)
    with torch.no_grad():
        long = G(z, None, num_frames=16)
        assert torch.allclose(G(z, None), long[:, :, :8], atol=1e-6)  # the first 8 frames are the 1x clip
        assert torch.allclose(G(z[:, : G.latent_dim], None), long[:, :, :8], atol=1e-6)  # and need only its latent
        fine = G(z, None, num_frames=31, time_step=0.5)  # twice the frame rate: frames at 0, 0.5, 1, ..., 15
        assert torch.allclose(fine[:, :, ::2], long, atol=1e-6)
    # consecutive frames change smoothly: a half step moves less than a whole step, frame after frame
    half = (fine[:, :, 1:] - fine[:, :, :-1]).abs().mean(dim=(0, 1, 3, 4))
    whole = (long[:, :, 1:] - long[:, :, :-1]).abs().mean(dim=(0, 1, 3, 4))
    assert whole.min() > 0 and (half[0::2] < whole).all() and (half[1::2] < whole).all()


def test_discriminator_sees_sorted_distinct_frames_and_only_their_gaps_matter():
    _, D = tiny_model()
    video = torch.randn(5, 3, 8, 16, 16)
    torch.manual_seed(3)
    frames, times = D.pick_frames(video)
    assert frames.shape == (5, 3, 3, 16, 16) and times.shape == (5, 3)
    assert (times[:, 1:] > times[:, :-1]).all() and times.min() >= 0 and times.max() <= 7
    for clip in range(5):
        assert torch.equal(frames[clip], video[clip].transpose(0, 1)[times[clip]])
    torch.manual_seed(3)
    assert torch.allclose(D(video), D.judge(frames, times))  # forward = pick, then judge
    picked = frames
    same_gaps = D.judge(picked, times + 2)  # shifted in time, same gaps: the same logits
    assert torch.allclose(same_gaps, D.judge(picked, times), atol=1e-5)
    other_gaps = D.judge(picked, torch.tensor([[0, 1, 7]] * 5))
    assert not torch.allclose(other_gaps, D.judge(picked, torch.tensor([[0, 3, 4]] * 5)), atol=1e-4)


def test_sparse_training_renders_only_the_judged_frames_at_their_times():
    G, D = tiny_model(stylegan_v={"sparse_training": True})
    assert D.view == "sparse" and G.sparse_frames == 3
    z, real = G.sample_z(4), torch.rand(4, 3, 8, 16, 16) * 2 - 1
    torch.manual_seed(5)
    with torch.no_grad():
        views, real_views = G.train().views(z), G.real_views(real)
        whole = G(z)
        assert sorted(G.eval().views(z)) == ["video"]  # in eval mode (previews, EMA statistics) whole clips
    frames, times = views["sparse"], views["sparse_times"]
    assert frames.shape == (4, 3, 3, 16, 16) and times.shape == (4, 3) and (times[:, 1:] > times[:, :-1]).all()
    for clip in range(4):  # a frame depends on its own time only: the whole clip's frames at those times
        torch.testing.assert_close(frames[clip], whole[clip][:, times[clip]], rtol=1e-4, atol=1e-5)
        assert torch.equal(real_views["sparse"][clip], real[clip][:, real_views["sparse_times"][clip]])
    assert torch.equal(real_views["video"], real)
    # given the times, the discriminator judges the frames it is handed; without them it picks from a whole clip
    torch.testing.assert_close(D(frames, times=times), D.judge(frames.transpose(1, 2), times))
    from vgan.train.losses import gradient_penalty, r1_penalty
    from vgan.train.steps import at_times
    torch.testing.assert_close(at_times(D, views)(frames), D(frames, times=times))
    assert at_times(D, {"sparse": frames}) is D
    # the penalties differentiate through the handed frames
    assert torch.isfinite(r1_penalty(at_times(D, real_views), real_views["sparse"]))
    assert torch.isfinite(gradient_penalty(at_times(D, views), real_views["sparse"], frames))


def test_sparse_training_refuses_discriminators_that_judge_whole_clips():
    from vgan.util.errors import ParamsError
    with pytest.raises(ParamsError, match="the pair discriminator judges whole clips: set model.image_discriminator"):
        tiny_model(stylegan_v={"sparse_training": True}, pair_discriminator=2)
    _, discriminators = build_model(default_params(model={**TINY, "pair_discriminator": 2}).model)
    assert sorted(discriminators) == ["pair", "time_gaps"]  # without sparse training they stand side by side


def test_modulated_convolution_demodulation_keeps_unit_output_variance():
    torch.manual_seed(0)
    conv = ModulatedConv2d(64, 48, 3, w_dim=32)
    x = torch.randn(16, 64, 24, 24)
    with torch.no_grad():
        for scale in (0.2, 1.0, 5.0):  # styles of any size: demodulation removes their scale
            out = conv(x, scale * torch.randn(16, 32))[:, :, 1:-1, 1:-1]  # borders see zero padding
            assert 0.8 < out.var().item() < 1.2, (scale, out.var().item())
        plain = ModulatedConv2d(64, 48, 3, w_dim=32, demodulate=False)
        loud = plain(x, 5.0 * torch.randn(16, 32))[:, :, 1:-1, 1:-1].var().item()
        assert loud > 3.0  # without demodulation the styles' scale reaches the output


def gif_frame_count(path) -> int:
    with Image.open(path) as gif:
        return gif.n_frames


def test_tiny_train_then_sample_writes_long_and_frame_rate_clips(tiny_shards, tmp_path):
    root = workspace_on(tiny_shards, tmp_path / "work")
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}
    model = ["--set", "model.name=stylegan_v", "--set", "model.stylegan_v.mapping_layers=2"]
    run_cli("vgan", "train", "--no-progress", *model, "--set", "train.r1_weight=1.0",
            "--set", "model.stylegan_v.sparse_training=true", cwd=root, env=env)
    train = json.loads((root / "metrics/train.json").read_text())
    assert train["steps"] == 6 and np.isfinite(train["loss_d"]) and np.isfinite(train["loss_g"])
    run_cli("vgan", "sample", *model, "--set", "sample.mp4=false", cwd=root, env=env)
    index = json.loads((root / "samples/index.json").read_text())
    (long,) = [r for r in index["outputs"] if r["kind"] == "long"]
    assert long["file"].endswith("long16f.gif") and gif_frame_count(root / "samples" / long["file"]) == 16
    rates = {r["factor"]: r for r in index["outputs"] if r["kind"] == "frame_rate"}
    assert sorted(rates) == [0.5, 2.0]
    assert gif_frame_count(root / "samples" / rates[2.0]["file"]) == 15  # times 0, 0.5, ..., 7
    assert gif_frame_count(root / "samples" / rates[0.5]["file"]) == 4  # times 0, 2, 4, 6
    assert rates[2.0]["time_step"] == 0.5 and "frame_rate" not in index["skipped"]
