"""Video inpainting (model.name=inpaint): its masks, fills and baselines, the pixels it must keep, training that
improves on its starting fill, and the sample + evaluate outputs."""

from __future__ import annotations

import json
import math

import pytest
import torch

from test_evaluate import evaluation_setup, logger  # noqa: F401 (fixture)
from test_sample import gif_frames, outputs
from test_vsr_interp import moving_squares, short_l1_fit, tiny
from vgan.models.inpaint import biharmonic_fill, blur_fill, box_corners, box_mask, crop_boxes, temporal_fill
from vgan.train.losses import reconstruction_loss

FILLS = {"temporal_fill", "biharmonic_fill", "blur_fill"}


def test_condition_masks_a_box_in_every_frame_fixed_in_eval_mode_random_in_training():
    G, _ = tiny("inpaint")  # 16x16 frames, box 0.375 -> 6 pixels
    real = moving_squares(8)
    G.eval()
    context = G.condition(real)
    assert context.shape == (8, 4, 8, 16, 16) and G.box == 6
    mask = context[:, 3:] > 0.5
    assert torch.equal(mask.sum(dim=(3, 4)), torch.full((8, 1, 8), 36))  # one 6x6 box per frame
    assert torch.equal(context[:, :3], real.masked_fill(mask, 0.0))
    assert torch.equal(G.condition(real), context)  # the same clips get the same boxes
    _, moving = G.corners(8)
    moved = (mask[:, 0, 0] != mask[:, 0, -1]).flatten(1).any(1)
    assert torch.equal(moved[~moving], torch.zeros_like(moved[~moving]))  # static boxes stay put
    G.train()
    torch.manual_seed(1)
    assert not torch.equal(G.condition(real), context)


def test_moving_boxes_go_in_a_straight_line_and_a_share_of_zero_keeps_every_box_still():
    corners, moving = box_corners(64, 9, 32, 12, 0.5, torch.Generator().manual_seed(0))
    assert corners.shape == (64, 9, 2) and 10 < int(moving.sum()) < 54
    assert corners.min() >= 0 and corners.max() <= 20
    steps = corners[moving].diff(dim=1).float()
    assert (steps - steps.mean(dim=1, keepdim=True)).abs().max() <= 1  # constant velocity, up to rounding
    still, moving = box_corners(16, 9, 32, 12, 0.0, torch.Generator().manual_seed(0))
    assert not moving.any() and torch.equal(still, still[:, :1].expand_as(still))


def test_the_model_changes_only_the_box_and_an_untrained_one_returns_its_starting_fill():
    G, _ = tiny("inpaint")
    G.eval()
    real = moving_squares(4)
    context = G.condition(real)
    mask = (context[:, 3:] > 0.5).expand_as(real)
    near = G(G.sample_z(4), None, context)
    assert (near - G.fill(context)).abs().max() < 0.05  # the last layer starts near zero
    with torch.no_grad():
        G.refiner.conv_out.weight.normal_()  # a residual far from zero: the rest must still be exact
    video = G.views(G.sample_z(4), None, context)["video"]
    assert torch.equal(video[~mask], real[~mask]) and video.abs().max() <= 1
    assert not torch.allclose(video[mask], near[mask])
    with pytest.raises(ValueError, match="masked clips and their mask"):
        G(G.sample_z(4), None, real)


def test_temporal_fill_copies_the_nearest_visible_frame_and_says_where_none_shows_the_pixel():
    clip = torch.arange(6, dtype=torch.float32).view(1, 1, 6, 1, 1).expand(1, 1, 6, 4, 4).clone()  # frame t = t
    mask = torch.zeros(1, 1, 6, 4, 4, dtype=torch.bool)
    mask[:, :, 1:4, 0, 0] = True  # frames 1-3 hide pixel (0, 0): frame 1 <- 0, 2 <- 0 (tie with 4), 3 <- 4
    mask[:, :, :, 3, 3] = True  # hidden in every frame (a static box)
    filled, missing = temporal_fill(clip.masked_fill(mask, 0.0), mask)
    assert filled[0, 0, :, 0, 0].tolist() == [0, 0, 0, 4, 4, 5]  # nearest visible frame, the earlier one on ties
    assert missing[0, 0, :, 3, 3].all() and int(missing.sum()) == 6


def test_biharmonic_and_blur_fills_keep_smooth_images_and_the_visible_pixels():
    ramp = torch.linspace(-0.8, 0.8, 16).view(1, 1, 1, 1, 16).expand(2, 1, 3, 16, 16).clone()
    mask = box_mask(box_corners(2, 3, 16, 6, 0.5, torch.Generator().manual_seed(0))[0], 16, 6)
    masked = ramp.masked_fill(mask, 0.0)
    assert torch.allclose(biharmonic_fill(masked, mask), ramp, atol=1e-4)  # a linear ramp is biharmonic
    flat = torch.full_like(ramp, 0.3)
    assert torch.allclose(blur_fill(flat.masked_fill(mask, 0.0), mask), flat, atol=1e-5)
    for fill in (biharmonic_fill, blur_fill):
        assert torch.equal(fill(masked, mask)[~mask], ramp[~mask])


def test_metrics_score_the_box_pixels_of_every_frame():
    G, _ = tiny("inpaint")
    real = torch.randn(3, 3, 8, 16, 16).clamp(-1, 1)
    corners, _ = G.corners(3, fixed=True)
    mask = box_mask(corners, 16, 6).expand_as(real)
    fake, target = G.reconstruction({"video": real * 0.5}, real)
    assert target.shape == (3, 3, 8, 6, 6)
    assert torch.equal(target.flatten(), real[mask]) and torch.equal(fake, target * 0.5)
    assert torch.equal(crop_boxes(real, corners, 6), target)


def test_a_short_l1_fit_beats_its_starting_fill():
    G, _ = tiny("inpaint", width=16)
    torch.manual_seed(0)  # the training boxes
    model, held_out, context = short_l1_fit(G)
    start = reconstruction_loss("l1", *G.reconstruction({"video": G.fill(context)}, held_out))
    assert model < 0.9 * start, (float(model), float(start))


def test_inpaint_sample_and_evaluate_show_and_score_the_fills(tmp_path, monkeypatch, logger):  # noqa: F811
    from vgan.evaluate.evaluate_stage import evaluate
    from vgan.sample import write_samples

    params, generator = evaluation_setup(tmp_path, monkeypatch, "model.name=inpaint", "evaluate.num_samples=8",
                                         "model.inpaint.box_fraction=0.75")  # a 12x12 box: SSIM's 11x11 window fits
    index = write_samples(params, generator)
    shown = outputs(index, "inpainting")
    assert shown[0]["panels"] == ["masked", "model", "temporal_fill", "biharmonic_fill", "blur_fill", "truth"]
    row = gif_frames(tmp_path / "samples" / shown[0]["file"])
    assert row.shape[0] == 8 and row.shape[2] > 6 * row.shape[1] - 30  # six panels side by side
    metrics = evaluate(params, generator)
    assert set(metrics["task_baselines"]) == {"model", "masked"} | FILLS
    for key in ("psnr", "ssim", "fd_evaluator", *(f"psnr_{name}" for name in FILLS),
                *(f"fd_evaluator_{name}" for name in FILLS)):
        assert math.isfinite(metrics[key]), key
    assert metrics["inpaint_static_box_clips"] + metrics["inpaint_moving_box_clips"] == metrics["num_task_clips"] == 8
    table = json.loads((tmp_path / "metrics/evaluate_baselines.json").read_text())
    assert FILLS <= set(table["scores"])
    report = (tmp_path / "reports/evaluation.md").read_text()
    assert "## Inpainting (" in report and "| biharmonic_fill |" in report and "masked input | model" in report
