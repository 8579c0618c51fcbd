"""Super-resolution (model.name=vsr) and frame interpolation (model.name=interp): their inputs and baselines,
the conditional-generator contract, training that improves on the baseline, and sample + evaluate outputs."""

from __future__ import annotations

import json
import math

import pytest
import torch

from test_evaluate import evaluation_setup, logger  # noqa: F401 (fixture)
from test_sample import gif_frames, outputs
from vgan.util.errors import ParamsError
from vgan.train.losses import reconstruction_loss
from vgan.models.conditioning import blend_weights, downscale, hold_weights, keyframe_indices, mix_keyframes, upscale
from vgan.models.zoo import build_model
from vgan.params import default_params, load_params

from conftest import write_tiny_params


def tiny(name: str, **overrides):
    torch.manual_seed(0)
    return build_model(default_params(model={"name": name, "resolution": 16, "frames": 8, "width": 8, "z_dim": 8,
                                              "channels": 3, **overrides}).model)


def moving_squares(batch: int, frames: int = 8, size: int = 16, seed: int = 0) -> torch.Tensor:
    """A bright 4x4 square moving one pixel a frame from a random place: (B, 3, T, H, W) in [-1, 1]."""
    rng = torch.Generator().manual_seed(seed)
    video = -torch.ones(batch, 3, frames, size, size)
    for b in range(batch):
        top, left = torch.randint(0, size - 4, (2,), generator=rng).tolist()
        step = 1 if b % 2 else -1
        for t in range(frames):
            col = (left + step * t) % (size - 4)
            video[b, :, t, top:top + 4, col:col + 4] = 1.0
    return video


def test_keyframes_include_the_first_and_last_frame():
    assert keyframe_indices(16, 4) == [0, 4, 8, 12, 15]
    assert keyframe_indices(8, 4) == [0, 4, 7]
    assert keyframe_indices(9, 4) == [0, 4, 8]


def test_linear_blending_of_a_linearly_changing_clip_is_perfect_and_repetition_holds_keyframes():
    frames, keys = 16, keyframe_indices(16, 4)
    time = torch.arange(frames, dtype=torch.float32)
    slope = torch.rand(2, 3, 1, 5, 5) * 0.1
    clip = -0.8 + slope * time[None, None, :, None, None]  # every pixel changes linearly in time
    blended = mix_keyframes(clip[:, :, keys], blend_weights(frames, keys))
    assert torch.allclose(blended, clip, atol=1e-6)
    held = mix_keyframes(clip[:, :, keys], hold_weights(frames, keys))
    assert torch.equal(held[:, :, 5], clip[:, :, 4]) and torch.equal(held[:, :, 14], clip[:, :, 12])
    assert torch.equal(held[:, :, 15], clip[:, :, 15])


def test_vsr_input_is_the_area_downscale_and_nearest_upscaling_shows_it_unchanged():
    G, _ = tiny("vsr")
    real = moving_squares(2)
    low = G.condition(real)
    assert low.shape == (2, 3, 8, 8, 8)
    assert torch.allclose(low[..., 1, 2], real[..., 2:4, 4:6].mean(dim=(-1, -2)))  # the mean of a 2x2 block
    baselines = G.baselines(low)
    assert set(baselines) == {"bicubic", "nearest"} and G.input_baseline == "nearest"
    assert torch.equal(downscale(baselines["nearest"], 2), low)
    flat = torch.full((1, 3, 4, 6, 6), 0.3)
    assert torch.allclose(upscale(flat, 2, "bicubic"), torch.full((1, 3, 4, 12, 12), 0.3), atol=1e-6)
    video = G.views(G.sample_z(2), None, low)["video"]
    assert video.shape == real.shape and video.abs().max() <= 1
    # an untrained model is its baseline to within a few grey levels (its last layer starts near zero)
    assert (video - baselines["bicubic"]).abs().max() < 0.05
    with pytest.raises(ValueError, match="low-resolution clips"):
        G(G.sample_z(2), None, real)


def test_interp_passes_keyframes_through_and_scores_only_the_frames_between():
    G, _ = tiny("interp")
    with torch.no_grad():
        G.refiner.conv_out.weight.normal_()  # a residual far from zero: keyframes must still be exact
    real = moving_squares(2)
    keys = G.condition(real)
    assert G.keyframes == [0, 4, 7] and G.given_frames == [0, 4, 7] and keys.shape == (2, 3, 3, 16, 16)
    video = G.views(G.sample_z(2), None, keys)["video"]
    assert torch.equal(video[:, :, [0, 4, 7]], real[:, :, [0, 4, 7]])
    assert not torch.allclose(video[:, :, 2], G.baselines(keys)["linear_blend"][:, :, 2])
    fake, target = G.reconstruction({"video": video}, real)
    assert fake.shape[2] == target.shape[2] == 5 and torch.equal(target, real[:, :, [1, 2, 3, 5, 6]])


def short_l1_fit(G, steps: int = 40):
    """Train G's reconstruction alone (L1, Adam 2e-3) on 16 moving-square clips, batch 4; then, in eval mode, its
    L1 on 8 held-out clips and those clips with their conditions."""
    optimiser = torch.optim.Adam(G.parameters(), lr=2e-3)
    clips = moving_squares(16, seed=1)
    for step in range(steps):
        batch = clips[step % 4 * 4:(step % 4 + 1) * 4]
        loss = reconstruction_loss("l1", *G.training_pair(G.views(G.sample_z(4), None, G.condition(batch)), batch))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    G.eval()
    held_out = moving_squares(8, seed=2)
    context = G.condition(held_out)
    with torch.no_grad():
        model = reconstruction_loss("l1", *G.reconstruction(G.views(G.sample_z(8), None, context), held_out))
    return model, held_out, context


@pytest.mark.parametrize("name, baseline", [("vsr", "bicubic"), ("interp", "linear_blend")])
def test_a_short_l1_fit_beats_the_baseline(name, baseline):
    G, _ = tiny(name, width=16)
    model, held_out, context = short_l1_fit(G)
    base = reconstruction_loss("l1", *G.reconstruction({"video": G.baselines(context)[baseline]}, held_out))
    assert model < 0.9 * base, (float(model), float(base))


def test_interp_every_that_leaves_no_frame_between_keyframes_is_rejected(tmp_path):
    path = write_tiny_params(tmp_path / "params.yaml")
    with pytest.raises(ParamsError, match="every 7 must be below model.frames - 1"):
        load_params(path, ["model.name=interp", "model.frames=8", "model.interp.every=7"])
    assert load_params(path, ["model.name=vgan", "model.frames=8", "model.interp.every=7"]).model.interp.every == 7


def test_vsr_sample_and_evaluate_write_side_by_side_pictures_and_bicubic_nearest_metrics(tmp_path, monkeypatch, logger):  # noqa: F811
    from vgan.evaluate.evaluate_stage import evaluate
    from vgan.sample import write_samples

    params, generator = evaluation_setup(tmp_path, monkeypatch, "model.name=vsr", "evaluate.num_samples=8")
    index = write_samples(params, generator)
    shown = outputs(index, "super_resolution")
    assert [r["file"] for r in shown] == [f"vsr_step7_seed0_vsr_{i:03d}.gif" for i in range(4)]
    assert shown[0]["panels"] == ["nearest", "model", "bicubic", "truth"]
    row = gif_frames(tmp_path / "samples" / shown[0]["file"])
    assert row.shape[0] == 8 and row.shape[2] > 4 * row.shape[1] - 20  # four panels side by side
    (sheet,) = outputs(index, "super_resolution_sheet")
    assert (tmp_path / "samples" / sheet["file"]).stat().st_size > 0
    metrics = evaluate(params, generator)
    for key in ("psnr", "ssim", "psnr_bicubic", "psnr_nearest", "ssim_bicubic", "ssim_nearest",
                "fd_evaluator_bicubic", "fd_evaluator_nearest", "fd_evaluator"):
        assert math.isfinite(metrics[key]), key
    assert metrics["vsr_scale"] == 2 and metrics["num_task_clips"] == 8
    assert set(metrics["task_baselines"]) == {"model", "bicubic", "nearest"}
    assert abs(metrics["psnr"] - metrics["psnr_bicubic"]) < 1.5  # untrained: bicubic to within a few grey levels
    table = json.loads((tmp_path / "metrics/evaluate_baselines.json").read_text())
    assert set(table["scores"]) == {"model", "real_vs_real", "static", "shuffled", "noise", "bicubic", "nearest"}
    assert table["scores"]["bicubic"]["fd_evaluator"] == pytest.approx(metrics["fd_evaluator_bicubic"], rel=1e-4)
    report = (tmp_path / "reports/evaluation.md").read_text()
    assert "## Super-resolution (8x8 input" in report and "| bicubic |" in report
    assert "vsr_step7_seed0_vsr_grid.gif)" in report


def test_interp_evaluate_scores_in_between_frames_against_linear_blending(tmp_path, monkeypatch, logger):  # noqa: F811
    from vgan.evaluate.evaluate_stage import evaluate

    params, generator = evaluation_setup(tmp_path, monkeypatch, "model.name=interp", "evaluate.num_samples=8")
    metrics = evaluate(params, generator)
    assert metrics["interp_keyframes"] == [0, 4, 7] and metrics["interp_inbetween_frames"] == 5
    for key in ("psnr", "psnr_linear_blend", "psnr_repeat", "fd_motion_linear_blend", "fd_motion_repeat"):
        assert math.isfinite(metrics[key]), key
    # an untrained model is the linear blend to within a few grey levels
    assert abs(metrics["psnr"] - metrics["psnr_linear_blend"]) < 1.5
    assert "## Frame interpolation (keyframes [0, 4, 7]" in (tmp_path / "reports/evaluation.md").read_text()
