"""The model zoo: every architecture honours the contract the trainer is written against."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from pydantic import ValidationError

from vgan.models import overview
from vgan.models.layers import (ConvTranspose2d, LatentBatchNorm, MinibatchStd, TimeConvTranspose3d, sample_frames,
                                subpixel_conv_transpose, to_channels_last_3d)
from vgan.models.options import ModelParams
from vgan.models.overview import check_models, format_check, format_table, model_table
from vgan.models.zoo import ARCHITECTURES, build_model
from vgan.params import default_params
from vgan.train import losses
from vgan.util.errors import DataError, ParamsError

NAMES = list(ARCHITECTURES)
# restoration models start at their baseline (bicubic upscale, linear blend), as good as real to a fresh
# discriminator: test_vsr_interp.py and test_inpaint.py check that their training improves on the baseline instead
FROM_NOISE = [name for name in NAMES if name not in ("vsr", "interp", "inpaint")]
TINY = dict(resolution=16, frames=8, width=4, z_dim=8, channels=3)
BATCH = 2


def model_params(**keys) -> ModelParams:
    """params.yaml's model group with these keys instead (the schema has no defaults of its own)."""
    return default_params(model=keys).model


def tiny(name: str, **overrides) -> ModelParams:
    return model_params(name=name, **{**TINY, **overrides})


def moving_squares(batch: int, frames: int = 8, size: int = 16) -> torch.Tensor:
    """A bright 4x4 square sliding right on a dark background, from a different row per clip."""
    video = -torch.ones(batch, 3, frames, size, size)
    for b in range(batch):
        row = (3 * b) % (size - 4)
        for t in range(frames):
            col = t % (size - 4)
            video[b, :, t, row:row + 4, col:col + 4] = 1.0
    return video


def context_of(G, real):
    return G.condition(real)


@pytest.mark.parametrize("name", NAMES)
def test_generator_output_shape_and_range(name):
    torch.manual_seed(0)
    G, discriminators = build_model(tiny(name))
    real = moving_squares(BATCH)
    context = context_of(G, real)
    video = G(G.sample_z(BATCH), None, context)
    assert video.shape == (BATCH, 3, 8 - G.context_frames, 16, 16)
    assert torch.isfinite(video).all() and video.abs().max() <= 1.0
    views, real_views = G.views(G.sample_z(BATCH), None, context), G.real_views(real)
    assert views["video"].shape == real.shape
    for D in discriminators.values():
        assert views[D.view].shape == real_views[D.view].shape
        logits = D(views[D.view])
        assert logits.shape[0] == BATCH and torch.isfinite(logits).all()


@pytest.mark.parametrize("name", NAMES)
def test_labels_change_the_clip_for_the_same_noise(name):
    torch.manual_seed(0)
    G, discriminators = build_model(tiny(name, num_classes=3))
    G.eval()
    z = G.sample_z(1).expand(2, -1)
    context = context_of(G, moving_squares(1).expand(2, -1, -1, -1, -1))
    video = G(z, torch.tensor([0, 1]), context)
    assert (video[0] - video[1]).abs().max() > 1e-4
    with pytest.raises(ValueError, match="labels"):
        G(z, None, context)
    clip = moving_squares(1)
    for D in discriminators.values():
        view = G.real_views(clip)[D.view]
        torch.manual_seed(1)  # image discriminators sample frames: the same frames for both labels
        first = D(view, torch.tensor([0]))
        torch.manual_seed(1)
        second = D(view, torch.tensor([1]))
        assert not torch.allclose(first, second)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name):
    torch.manual_seed(0)
    G, discriminators = build_model(tiny(name, num_classes=3))
    real = moving_squares(BATCH)
    labels = torch.tensor([0, 2])
    views = G.views(G.sample_z(BATCH), labels, context_of(G, real))
    real_views = G.real_views(real)
    loss = losses.reconstruction_loss("l2", *G.reconstruction(views, real))
    for D in discriminators.values():
        fake_logits = D(views[D.view], labels)
        loss = loss + losses.discriminator_loss("bce", D(real_views[D.view], labels), fake_logits)
        loss = loss + losses.generator_loss("bce", fake_logits)
    loss.backward()
    for owner, module in {"G": G, **discriminators}.items():
        for pname, param in module.named_parameters():
            assert param.grad is not None, f"{owner}.{pname} gets no gradient"
            assert param.grad.abs().sum() > 0, f"{owner}.{pname} gets a zero gradient"
            assert torch.isfinite(param.grad).all()


def _margin(G, discriminators, real, z, context) -> float:
    """Mean over discriminators of mean D(real) - mean D(fake)."""
    with torch.no_grad():
        fake_views, real_views = G.views(z, None, context), G.real_views(real)
        total = 0.0
        for D in discriminators.values():
            torch.manual_seed(7)  # the same frames for image discriminators at every measurement
            real_score = D(real_views[D.view]).mean()
            torch.manual_seed(7)
            total += float(real_score - D(fake_views[D.view]).mean())
    return total / len(discriminators)


@pytest.mark.parametrize("name", FROM_NOISE)
def test_short_training_widens_the_real_fake_margin(name):
    torch.manual_seed(0)
    G, discriminators = build_model(tiny(name))
    d_params = [p for D in discriminators.values() for p in D.parameters()]
    opt_d = torch.optim.Adam(d_params, lr=1e-3, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam([p for p in G.parameters() if p.requires_grad], lr=2e-4, betas=(0.5, 0.999))
    real = moving_squares(4)
    context = context_of(G, real)
    fixed_z = G.sample_z(4)
    before = _margin(G, discriminators, real, fixed_z, context)
    for _ in range(6):
        fake_views = G.views(G.sample_z(4), None, context)
        real_views = G.real_views(real)
        loss_d = sum(losses.discriminator_loss("bce", D(real_views[D.view]), D(fake_views[D.view].detach()))
                     for D in discriminators.values())
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        views = G.views(G.sample_z(4), None, context)
        loss_g = sum(losses.generator_loss("bce", D(views[D.view])) for D in discriminators.values())
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
    after = _margin(G, discriminators, real, fixed_z, context)
    assert after > before + 0.05, (before, after)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("resolution,frames", [(32, 16), (64, 32), (128, 16), (256, 32)])
def test_every_configured_size_builds_with_the_right_shapes(name, resolution, frames):
    with torch.device("meta"):  # shapes only: no memory, no arithmetic
        G, discriminators = build_model(model_params(name=name, resolution=resolution, frames=frames, width=8,
                                                     z_dim=16, num_classes=4, channels=3))
        labels = torch.zeros(2, dtype=torch.long)
        real = torch.empty(2, 3, frames, resolution, resolution)
        views = G.views(G.sample_z(2), labels, context_of(G, real))
        assert views["video"].shape == real.shape
        for D in discriminators.values():
            assert D(views[D.view], labels).shape[0] == 2


def test_mocogan_rolls_past_the_training_length():
    torch.manual_seed(0)
    G, _ = build_model(tiny("mocogan"))
    G.eval()
    assert G.variable_length and G.latent_dim == G.sample_z(1).shape[1]
    z = G.sample_z(2, num_frames=20)
    long_clip = G(z, num_frames=20)
    assert long_clip.shape == (2, 3, 20, 16, 16)
    # the GRU is causal: the first 8 frames do not depend on the later motion noise
    torch.testing.assert_close(G(z, num_frames=8), long_clip[:, :, :8])
    with pytest.raises(ValueError, match="sample_z"):
        G(G.sample_z(2), num_frames=20)
    with pytest.raises(ValueError, match="sample_z"):
        G(torch.randn(2, G.z_dim))


def test_mocogan_residual_motion_moves_each_frames_code_by_at_most_the_step():
    torch.manual_seed(0)
    z = build_model(tiny("mocogan"))[0].sample_z(4)
    steps = {}
    for step in (None, 0.05):
        torch.manual_seed(1)
        G, _ = build_model(tiny("mocogan", mocogan={"motion_step": step}))
        assert G(z).shape == (4, 3, 8, 16, 16)
        codes = G.motion_codes(z)
        steps[step] = (codes[:, 1:] - codes[:, :-1]).abs().amax().item()
    assert 0 < steps[0.05] <= 0.05 < steps[None]  # the paper's GRU states jump further between frames
    with pytest.raises(ValidationError, match="greater than 0"):
        tiny("mocogan", mocogan={"motion_step": 0})


def test_skip_z_gives_vgans_foreground_norms_gains_from_the_clip_latent_and_is_refused_elsewhere():
    torch.manual_seed(0)
    for name in ("vgan", "progressive"):
        G, _ = build_model(tiny(name, skip_z=True))
        norms = [m for m in G.modules() if isinstance(m, LatentBatchNorm)]
        assert norms and G(G.sample_z(BATCH)).shape == (BATCH, 3, 8, 16, 16)
    norm, x, latent = LatentBatchNorm(4, 6), torch.randn(2, 4, 3, 5, 5), torch.randn(2, 6)
    torch.testing.assert_close(norm(x, latent), nn.BatchNorm3d(4)(x))  # untrained: plain batch norm
    nn.init.normal_(norm.to_gain_bias.weight)
    moved = norm(x, latent) - nn.BatchNorm3d(4)(x)
    assert not torch.allclose(moved[0], moved[1])  # each clip its own gains, the same at every frame and pixel
    with pytest.raises(ValidationError, match="only VGAN's generator"):
        tiny("tgan", skip_z=True)


def test_dvdgan_recurrent_generator_makes_any_length_causally():
    torch.manual_seed(0)
    G, discriminators = build_model(tiny("dvdgan"))
    G.eval()
    z = G.sample_z(2, num_frames=12)
    long_clip = G(z, num_frames=12)
    assert long_clip.shape == (2, 3, 12, 16, 16)
    torch.testing.assert_close(G(z), long_clip[:, :, :8])
    spatial = discriminators["spatial"]
    assert spatial(long_clip).shape == (2, 8)  # k_frames full-resolution frames per clip
    assert discriminators["temporal"].downsample == 2


def test_fixed_length_models_refuse_other_lengths():
    G, _ = build_model(tiny("vgan"))
    assert not G.variable_length
    with pytest.raises(ValueError, match="exactly 8 frames"):
        G(G.sample_z(1), num_frames=16)
    G3d, _ = build_model(tiny("dvdgan", dvdgan={"generator": "3d"}))
    assert G3d(G3d.sample_z(2)).shape == (2, 3, 8, 16, 16)


def test_predictor_keeps_the_context_and_reconstructs_only_the_future():
    torch.manual_seed(0)
    G, _ = build_model(tiny("predictor", predictor={"context_frames": 3}))
    real = moving_squares(2)
    context = real[:, :, :3]
    views = G.views(G.sample_z(2), None, context)
    torch.testing.assert_close(views["video"][:, :, :3], context)
    fake, target = G.reconstruction(views, real)
    assert fake.shape == target.shape == (2, 3, 5, 16, 16)
    torch.testing.assert_close(target, real[:, :, 3:])
    assert G(G.sample_z(2), None, context, num_frames=12).shape == (2, 3, 12, 16, 16)
    # the training loss's pair: each future frame predicted from the 3 real frames before it (teacher forcing)
    taught, target = G.training_pair(views, real)
    torch.testing.assert_close(target, real[:, :, 3:])
    for j in (3, 7):
        torch.testing.assert_close(taught[:, :, j - 3], G.step(real[:, :, j - 3:j], views["code"])[:, :, 0])
    assert not torch.allclose(taught[:, :, 4], fake[:, :, 4])  # frame 7 from real frames, not from predictions
    with pytest.raises(ValueError, match="context"):
        G(G.sample_z(2))



def test_predictor_starts_as_copy_last_frame_and_its_flow_is_bounded():
    from vgan.models.predictor import FLOW_LIMIT

    torch.manual_seed(0)
    G, _ = build_model(tiny("predictor", predictor={"context_frames": 3}))
    context = moving_squares(2)[:, :, :3]
    first = G(G.sample_z(2), None, context, num_frames=1)[:, :, 0]
    # untrained: the last context frame (the shut mask lets 0.03 % of the foreground through: no fade; the small
    # initial flow moves edges by a fraction of a pixel)
    assert (first - context[:, :, -1]).abs().mean() < 0.005
    # a head driven far out (what a diverging run does) still moves pixels by FLOW_LIMIT at most: the frame
    # shifted left by FLOW_LIMIT whole pixels, not a frame of border pixels
    with torch.no_grad():
        G.step.heads.weight.zero_()
        G.step.heads.bias.copy_(torch.tensor([1e4, 0.0, -1e4, 0.0, 0.0, 0.0]))
    moved = G(G.sample_z(2), None, context, num_frames=1)[:, :, 0]
    shift = int(FLOW_LIMIT)
    torch.testing.assert_close(moved[..., :-shift], context[:, :, -1, :, shift:])


def test_predictor_heads_keep_their_gradient_when_its_features_blow_up():
    """Seed 2 of the 2,000-step anomaly bench diverged when the U-Net's features grew ~1,000x and every head
    saturated (a white frame, no gradient). The heads see features bounded to HEAD_INPUT_RMS: normal features pass
    unchanged, blown-up ones leave the heads unsaturated and trainable."""
    from vgan.models import predictor

    torch.manual_seed(0)
    G, _ = build_model(tiny("predictor", predictor={"context_frames": 3}))
    context, code = moving_squares(2)[:, :, :3], G.cond(G.sample_z(2), None)
    bounded = G.step(context, code)
    unbounded_rms = predictor.HEAD_INPUT_RMS
    predictor.HEAD_INPUT_RMS = float("inf")
    try:
        torch.testing.assert_close(G.step(context, code), bounded, rtol=0, atol=0)  # normal features: no change
        with torch.no_grad():
            G.step.merge1[0].weight.mul_(1e4)  # the features of a diverged run
        saturated = G.step(context, code)
    finally:
        predictor.HEAD_INPUT_RMS = unbounded_rms
    frame = G.step(context, code)
    last = context[:, :, -1:]
    assert (saturated - last).abs().mean() > 0.2  # without the bound: saturated heads paint over the frame
    assert (frame - last).abs().mean() < 0.05  # with it: still (nearly) the untrained model's copy of the last frame
    (frame - last).abs().mean().backward()
    assert G.step.heads.weight.grad.abs().sum() > 0 and G.step.down1[0][0].weight.grad.abs().sum() > 0

def test_progressive_views_and_stages(tmp_path):
    torch.manual_seed(0)
    G, discriminators = build_model(tiny("progressive", resolution=32, progressive={"refine_factor": 4}))
    real = moving_squares(2, size=32)
    views, real_views = G.views(G.sample_z(2)), G.real_views(real)
    assert views["low"].shape == real_views["low"].shape == (2, 3, 8, 8, 8)
    assert {D.view for D in discriminators.values()} == {"low", "video"}

    base_G, base_ds = build_model(tiny("progressive", progressive={"stage": "base"}))
    assert base_G.refiner is None and set(base_ds) == {"low"}
    assert base_G(base_G.sample_z(2)).shape == (2, 3, 8, 16, 16)
    weights = tmp_path / "generator.pt"
    torch.save({"G": base_G.state_dict(), "G_ema": base_G.state_dict()}, weights)
    refiner = {"stage": "refiner", "base_weights": str(weights)}
    refiner_G, refiner_ds = build_model(tiny("progressive", progressive=refiner))
    assert set(refiner_ds) == {"video"}
    for key, value in base_G.base.state_dict().items():
        torch.testing.assert_close(refiner_G.base.state_dict()[key], value)
    assert not any(p.requires_grad for p in refiner_G.base.parameters())
    assert all(p.requires_grad for p in refiner_G.refiner.parameters())
    refiner_G.train()
    assert not refiner_G.base.training  # frozen base keeps its batch-norm statistics


def test_progressive_refiner_refines_each_frame_on_its_own(tmp_path):
    """The refiner runs frame by frame (a batch of images): a frame's output depends on that frame alone."""
    torch.manual_seed(0)
    G, _ = build_model(tiny("progressive", progressive={"refine_factor": 2}))
    G.eval()
    low = torch.randn(2, 3, 8, 8, 8)
    changed = low.clone()
    changed[:, :, 5] = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        before, after = G.refine(low), G.refine(changed)
    assert before.shape == (2, 3, 8, 16, 16)
    same = [t for t in range(8) if t != 5]
    torch.testing.assert_close(after[:, :, same], before[:, :, same])
    assert (after[:, :, 5] - before[:, :, 5]).abs().mean() > 0.01
    # a generator file written when the refiner's kernels were 3D (1, 3, 3) still loads, to the same function
    old_file = {key: value.unsqueeze(2) if key.startswith("refiner.") and value.dim() == 4 else value
                for key, value in G.state_dict().items()}
    again, _ = build_model(tiny("progressive", progressive={"refine_factor": 2}))
    again.load_state_dict(old_file)
    again.eval()
    with torch.no_grad():
        torch.testing.assert_close(again.refine(low), before)


@pytest.mark.parametrize("kernel, stride, padding, shape", [
    ((4, 4, 4), (2, 2, 2), (0, 1, 1), (2, 6, 3, 4, 5)),   # a 3D generator's last layer
    ((3, 4, 4), (1, 2, 2), (1, 1, 1), (2, 6, 3, 4, 4)),   # time kept, space doubled
    ((8, 4, 4), (4, 2, 2), (0, 1, 1), (1, 5, 2, 3, 3)),   # time x4
    ((6, 4, 4), (4, 2, 2), (0, 1, 1), (1, 5, 3, 3, 3)),   # a kernel that is no multiple of its stride
    ((5, 3), (2, 2), (1, 0), (2, 4, 3, 4)),
    ((4, 4), (2, 2), (1, 1), (3, 6, 5, 7)),               # an image generator's last layer
    ((4, 4), (2, 2), (0, 0), (3, 6, 4, 4)),
])
def test_subpixel_transposed_convolution_is_torchs(kernel, stride, padding, shape):
    """``subpixel_conv_transpose`` (a generator's narrow last layers) is torch's transposed convolution, forward and
    backward."""
    torch.manual_seed(0)
    x = torch.randn(*shape, requires_grad=True)
    weight = torch.randn(shape[1], 2, *kernel, requires_grad=True)
    bias = torch.randn(2, requires_grad=True)
    torch_op = torch.nn.functional.conv_transpose3d if len(kernel) == 3 else torch.nn.functional.conv_transpose2d
    ours, theirs = subpixel_conv_transpose(x, weight, bias, stride, padding), torch_op(x, weight, bias, stride, padding)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    direction = torch.randn_like(theirs)
    for a, b in zip(torch.autograd.grad((ours * direction).sum(), (x, weight, bias)),
                    torch.autograd.grad((theirs * direction).sum(), (x, weight, bias))):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-5)


def test_subpixel_output_layers_keep_torchs_weights_and_function():
    """A generator's output layer computed sub-pixel has torch's parameters and output (edge frames as
    ``TimeConvTranspose3d`` pads them); one it cannot compute that way is refused when built."""
    torch.manual_seed(0)
    ours = TimeConvTranspose3d(8, 1, (4, 4, 4), (2, 2, 2), 1, subpixel=True)
    plain = TimeConvTranspose3d(8, 1, (4, 4, 4), (2, 2, 2), 1)
    plain.load_state_dict(ours.state_dict())
    x = torch.randn(2, 8, 4, 5, 5)
    torch.testing.assert_close(ours(x), plain(x), atol=1e-5, rtol=1e-5)
    assert ours(x).shape == (2, 1, 8, 10, 10)
    with pytest.raises(ValueError, match="no dilation"):
        TimeConvTranspose3d(8, 1, (3, 4, 4), (2, 2, 2), 1, dilation=2, subpixel=True)
    image_layer = ConvTranspose2d(8, 1, 4, 2, 1, subpixel=True)
    image_plain = torch.nn.ConvTranspose2d(8, 1, 4, 2, 1)
    image_plain.load_state_dict(image_layer.state_dict())
    frames = torch.randn(3, 8, 5, 5)
    torch.testing.assert_close(image_layer(frames), image_plain(frames), atol=1e-5, rtol=1e-5)
    G, _ = build_model(tiny("tgan"))
    assert G.image.body[-2].subpixel  # TGAN's (and MoCoGAN's) image generators render every frame with it


def test_progressive_refiner_with_missing_weights_is_a_params_error(tmp_path):
    params = tiny("progressive", progressive={"stage": "refiner", "base_weights": str(tmp_path / "none.pt")})
    with pytest.raises(ParamsError, match="base_weights"):
        build_model(params)
    G, _ = build_model(params, pretrained=False)  # rebuilding a saved refiner: its state dict holds the base
    assert G.refiner is not None

@pytest.mark.parametrize("overrides,message", [
    ({"name": "nope"}, "unknown architecture"),
    ({"name": "predictor", "frames": 8, "predictor": {"context_frames": 8}}, "context_frames"),
    ({"name": "progressive", "resolution": 16, "progressive": {"refine_factor": 4}}, "8x8"),
    ({"name": "progressive", "progressive": {"stage": "refiner"}}, "base_weights"),
    ({"name": "dvdgan", "resolution": 16, "dvdgan": {"temporal_downsample": 4}}, "8x8"),
    ({"name": "motionshape", "resolution": 16, "motionshape": {"video_downsample": 4}}, "8x8"),
    ({"name": "mocogan", "resolution": 16, "video_downsample": 4}, "8x8"),
    ({"mocogan": {"motion_dimension": 3}}, "extra"),
])
def test_bad_model_params_are_rejected(overrides, message):
    with pytest.raises(ValidationError, match=message):
        model_params(**overrides)


def test_options_of_other_architectures_are_not_cross_checked():
    assert model_params(name="vgan", frames=4).predictor.context_frames == 4


def test_mocogan_image_discriminator_judges_single_frames():
    G, discriminators = build_model(tiny("mocogan", mocogan={"image_frames": 3}))
    assert set(discriminators) == {"image", "video"}
    assert discriminators["image"](moving_squares(2)).shape == (2, 3)


def test_motionshape_rigid_grey_variant_translates_one_grey_image():
    params = tiny("motionshape", resolution=32, channels=1, motionshape={"flow_resolution": 1, "image_frames": 2,
                                                                        "video_downsample": 2})
    G, discriminators = build_model(params)
    assert set(discriminators) == {"image", "video"}
    flow = G.motion_field(G.cond(G.sample_z(BATCH), None))
    assert flow.shape == (BATCH, 2, 8, 32, 32)
    assert torch.equal(flow, flow[..., :1, :1].expand_as(flow))  # one displacement per frame: rigid motion
    video = G(G.sample_z(BATCH))
    assert video.shape == (BATCH, 1, 8, 32, 32)  # grey: one channel
    assert discriminators["image"](video).shape == (BATCH, 2)
    assert discriminators["video"](video).shape == (BATCH,)


def test_motionshape_without_motion_is_a_plain_image_gan():
    """The ladder's first rung: max_displacement 0 repeats one generated image, judged by the image D alone."""
    G, discriminators = build_model(tiny("motionshape", resolution=32, channels=1, discriminators="image",
                                         motionshape={"max_displacement": 0, "image_frames": 1}))
    assert list(discriminators) == ["image"]
    video = G(G.sample_z(BATCH))
    assert video.shape == (BATCH, 1, 8, 32, 32)
    assert torch.allclose(video, video[:, :, :1].expand_as(video), atol=1e-6)  # every frame the same image
    assert video[0].std() > 0 and not torch.allclose(video[0], video[1])  # an image, one per latent
    discriminators["image"](video).mean().backward()
    assert all(p.grad is None for p in G.motion.parameters())  # the motion stream takes no part


def test_discriminators_option_keeps_the_image_or_the_video_discriminators():
    from vgan.models.nets import ImageDiscriminator

    for name, extra in (("vgan", {"image_discriminator": 2}), ("mocogan", {}), ("dvdgan", {})):
        _, every = build_model(tiny(name, **extra))
        _, image = build_model(tiny(name, discriminators="image", **extra))
        _, video = build_model(tiny(name, discriminators="video", **extra))
        assert image and all(isinstance(D, ImageDiscriminator) for D in image.values()), name
        assert video and not any(isinstance(D, ImageDiscriminator) for D in video.values()), name
        assert sorted([*image, *video]) == sorted(every), name
    with pytest.raises(ParamsError, match=r"model.discriminators = 'image': vgan has no such discriminator; it has "
                                          r"video \(set model.image_discriminator > 0 to add one\)"):
        build_model(tiny("vgan", discriminators="image"))
    with pytest.raises(ValidationError, match="discriminators"):
        tiny("vgan", discriminators="both")


def test_motionshape_coarse_flow_is_upsampled_smoothly():
    G, _ = build_model(tiny("motionshape", resolution=32, motionshape={"flow_resolution": 8}))
    flow = G.motion_field(G.cond(G.sample_z(BATCH), None))
    assert flow.shape == (BATCH, 2, 8, 32, 32)
    assert flow.abs().max() <= G.max_displacement
    # bilinear from 8x8: neighbouring pixels differ far less than the field's range
    assert (flow[..., 1:] - flow[..., :-1]).abs().max() < 0.25 * (flow.max() - flow.min())


class FixedImage(torch.nn.Module):
    """An appearance generator that paints the same image for every latent."""

    def __init__(self, image: torch.Tensor):
        super().__init__()
        self.image = image

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.image.expand(h.shape[0], -1, -1, -1)


@pytest.mark.parametrize("warp", ["bilinear", "bicubic"])
def test_motionshape_half_pixel_shift_blurs_less_with_bicubic_warp(warp, monkeypatch):
    params = tiny("motionshape", resolution=32, channels=1, motionshape={"flow_resolution": 1, "warp": warp})
    G, _ = build_model(params)
    G.eval()
    stripes = torch.where(torch.arange(32) // 2 % 2 == 0, 1.0, -1.0).expand(1, 1, 32, 32)  # 2-pixel stripes
    G.shape = FixedImage(stripes)
    half_pixel = 2 / 31 / 2  # grid units (align_corners): half of one pixel's step
    monkeypatch.setattr(G, "motion_field", lambda h: torch.zeros(h.shape[0], 2, 8, 32, 32).index_fill_(
        1, torch.tensor([0]), half_pixel))
    with torch.no_grad():
        video = G(G.sample_z(1))
    assert video.shape == (1, 1, 8, 32, 32)
    contrast = video[..., 4:-4].abs().mean().item()  # 1.0 for unblurred stripes
    # bilinear averages the two pixels a half-pixel shift falls between: the stripes lose half their contrast
    assert contrast == pytest.approx(0.5, abs=0.02) if warp == "bilinear" else contrast > 0.6


def test_motionshape_shape_width_sizes_only_the_appearance_generator():
    narrow, _ = build_model(tiny("motionshape", resolution=32, width=32))
    wide, _ = build_model(tiny("motionshape", resolution=32, width=32, motionshape={"shape_width": 64}))
    assert (narrow.shape.start_channels, wide.shape.start_channels) == (128, 256)  # widest layer: width x 4
    motion_size = [sum(p.numel() for p in G.motion.parameters()) for G in (narrow, wide)]
    assert motion_size[0] == motion_size[1]
    with pytest.raises(ValidationError, match="shape_width"):
        model_params(motionshape={"shape_width": 4})


def test_motionshape_discriminators_judge_their_input_times_the_gain():
    options = {"image_frames": 2, "video_downsample": 2, "d_input_gain": 1.0}
    torch.manual_seed(0)
    _, plain = build_model(tiny("motionshape", resolution=32, channels=1, motionshape=options))
    torch.manual_seed(0)
    _, gained = build_model(tiny("motionshape", resolution=32, channels=1, motionshape={**options, "d_input_gain": 3.0}))
    video = torch.rand(BATCH, 1, 8, 32, 32) * 2 - 1
    for view in ("image", "video"):
        plain[view].eval(), gained[view].eval()  # spectral norm's power iteration stays put
        torch.manual_seed(1)  # the image discriminator picks random frames
        expected = plain[view](video * 3.0)
        torch.manual_seed(1)
        torch.testing.assert_close(gained[view](video), expected)
        assert not torch.allclose(gained[view](video), plain[view](video))


ZOO = ["vgan", "tgan", "mocogan", "dvdgan", "hrvgan", "progressive", "stylegan_v"]


@pytest.mark.parametrize("name", ZOO)
def test_zoo_discriminators_judge_their_input_times_the_gain(name):
    torch.manual_seed(0)
    _, plain = build_model(tiny(name, resolution=32, channels=1, image_discriminator=2))
    torch.manual_seed(0)
    _, gained = build_model(tiny(name, resolution=32, channels=1, image_discriminator=2, d_input_gain=3.0))
    video = torch.rand(BATCH, 1, 8, 32, 32) * 2 - 1
    for view, D in plain.items():
        inputs = {"low": torch.nn.functional.avg_pool3d(video, (1, 2, 2))}.get(view, video)
        D.eval(), gained[view].eval()  # spectral norm's power iteration stays put
        torch.manual_seed(1)  # some discriminators pick random frames
        expected = D(inputs * 3.0)
        torch.manual_seed(1)
        torch.testing.assert_close(gained[view](inputs), expected)


@pytest.mark.parametrize("name", ["vgan", "tgan", "mocogan", "hrvgan", "progressive"])
def test_zoo_video_discriminator_pools_its_input_with_video_downsample(name):
    _, discriminators = build_model(tiny(name, resolution=32, video_downsample=2))
    assert discriminators["video"].downsample == 2
    assert discriminators["video"](torch.rand(BATCH, 3, 8, 32, 32)).shape == (BATCH,)


VIDEO_VIEW = {"vgan": "video", "tgan": "video", "mocogan": "video", "dvdgan": "temporal", "progressive": "video",
              "stylegan_v": "time_gaps"}


@pytest.mark.parametrize("name", VIDEO_VIEW)
def test_zoo_video_discriminator_adds_the_minibatch_std_feature_it_is_asked_for(name):
    _, plain = build_model(tiny(name, resolution=32))
    _, with_std = build_model(tiny(name, resolution=32, minibatch_std=2))
    assert plain[VIDEO_VIEW[name]].minibatch_std is None
    assert with_std[VIDEO_VIEW[name]].minibatch_std is not None
    # the feature sees the batch: a clip's logit changes with the clip beside it
    D = with_std[VIDEO_VIEW[name]].eval()
    torch.manual_seed(0)
    clips = torch.rand(3, 3, 8, 32, 32) * 2 - 1
    torch.manual_seed(1)
    first = D(clips[:2])[0]
    torch.manual_seed(1)
    assert not torch.allclose(first, D(clips[[0, 2]])[0])


def test_sample_frames_picks_distinct_frames_of_each_clip():
    video = torch.arange(8.0).view(1, 1, 8, 1, 1).expand(2, 3, 8, 4, 4).contiguous()
    frames = sample_frames(video, 5)
    assert frames.shape == (10, 3, 4, 4)
    picked = frames[:, 0, 0, 0].view(2, 5)
    assert all(len(set(row.tolist())) == 5 for row in picked)


def test_minibatch_std_appends_the_group_standard_deviation():
    x = torch.tensor([0.0, 2.0, 4.0, 6.0]).view(4, 1, 1, 1, 1).expand(4, 2, 1, 2, 2)
    out = MinibatchStd(group_size=2)(x)
    assert out.shape == (4, 3, 1, 2, 2)
    # groups are (x0, x2) and (x1, x3): both have population std 2
    torch.testing.assert_close(out[:, 2], torch.full((4, 1, 2, 2), 2.0))


def test_channels_last_helper_converts_only_3d_weights():
    G, _ = build_model(tiny("mocogan"))  # 2D image generator: nothing to convert, nothing changed
    before = {name: p.detach().clone() for name, p in G.named_parameters()}
    to_channels_last_3d(G)
    assert all(p.is_contiguous() and torch.equal(p, before[name]) for name, p in G.named_parameters() if p.dim() != 5)
    G3, _ = build_model(tiny("vgan"))
    to_channels_last_3d(G3)
    conv = G3.fg_video.weight
    assert conv.is_contiguous(memory_format=torch.channels_last_3d)
    assert all(p.is_contiguous(memory_format=torch.channels_last_3d) for p in G3.parameters() if p.dim() == 5)


def test_model_table_counts_parameters_and_flops():
    rows = model_table(model_params(resolution=32, frames=8, width=8, z_dim=16, channels=3))
    assert [row["name"] for row in rows] == NAMES
    assert all(row["error"] is None and row["g_params"] > 0 and row["gflops"] > 0 for row in rows)
    by_name = {row["name"]: row for row in rows}
    G, discriminators = build_model(model_params(name="mocogan", resolution=32, frames=8, width=8, z_dim=16,
                                                 channels=3))
    assert by_name["mocogan"]["g_params"] == sum(p.numel() for p in G.parameters())
    assert set(by_name["mocogan"]["d_params"]) == set(discriminators)
    assert by_name["motionshape"]["selected"]  # the default architecture
    longer = {row["name"]: row for row in model_table(model_params(resolution=32, frames=16, width=8, z_dim=16,
                                                                    channels=3))}
    # MoCoGAN paints frame by frame (GRU step + image generator): twice the frames, twice the work
    assert longer["mocogan"]["gflops"] / by_name["mocogan"]["gflops"] == pytest.approx(2.0, rel=0.01)
    text = format_table(rows)
    assert all(name in text for name in NAMES) and "motionshape *" in text and "train.loss=wgan-gp" in text


def test_check_models_passes_for_every_architecture():
    results = check_models()
    assert [name for name, _, _ in results] == NAMES
    assert all(ok for _, ok, _ in results), [r for r in results if not r[1]]


def test_check_reports_a_broken_architecture_without_hiding_the_others(monkeypatch):
    real_build = overview.build_model

    def build(params):
        if params.name == "tgan":
            raise RuntimeError("boom")
        return real_build(params)

    monkeypatch.setattr(overview, "build_model", build)
    results = dict((name, (ok, message)) for name, ok, message in check_models(["vgan", "tgan"]))
    assert results["vgan"][0] and results["tgan"] == (False, "RuntimeError: boom")
    text = format_check(check_models(["tgan"]))
    assert "tgan  FAIL  RuntimeError: boom" in text and "0/1 architectures pass" in text


@pytest.mark.parametrize("name", NAMES)
def test_recommended_overrides_are_valid_params(name, tmp_path):
    from vgan.models.zoo import recommended_overrides
    from vgan.params import load_params

    overrides = [f"model.name={name}", *recommended_overrides(name)]
    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml", overrides)
    assert params.model.name == name
    if name == "hrvgan":
        assert (params.train.loss, params.train.adv_weight, params.train.recon_weight) == ("wgan-gp", 0.5, 0.5)


@pytest.mark.parametrize("name", NAMES)
def test_a_batch_of_one_trains(name):
    """Batch norm must not see a single value per channel: DDP ranks can hold one clip each. One clip gives a clip
    of the right shape in [-1, 1], finite logits, and a finite, non-zero gradient for the generator and for
    every discriminator."""
    torch.manual_seed(0)
    G, discriminators = build_model(tiny(name))
    real = moving_squares(1)
    views = G.views(G.sample_z(1), None, context_of(G, real))
    video = views["video"]
    assert video.shape == real.shape
    assert torch.isfinite(video).all() and video.abs().max() <= 1.0
    logits = {key: D(views[D.view]) for key, D in discriminators.items()}
    for key, value in logits.items():
        assert value.shape[0] == 1 and torch.isfinite(value).all(), f"{name} D[{key}] logits {value}"
    sum(value.sum() for value in logits.values()).backward()
    for owner, module in {"G": G, **discriminators}.items():
        grads = [p.grad for p in module.parameters() if p.requires_grad and p.grad is not None]
        assert grads, f"{name}: {owner} gets no gradient from a batch of one"
        assert all(torch.isfinite(g).all() for g in grads), f"{name}: {owner} gets a non-finite gradient"
        assert sum(float(g.abs().sum()) for g in grads) > 0, f"{name}: {owner} gets only zero gradients"


# -- channels from the data ------------------------------------------------------------------------
def manifest(grey: bool | None) -> dict:
    """The part of a shards manifest that ``model.channels: auto`` reads (``grey`` None: a manifest older than
    the field)."""
    return {"clip_shape": [8, 16, 16, 3], **({} if grey is None else {"grey": grey})}


def auto_params(name: str, shards: dict, *overrides: str):
    from vgan.params import load_params
    from vgan.train.run import resolve_channels

    small = ["model.resolution=16", "model.frames=8", "model.width=4", "model.z_dim=8"]
    repo_params = Path(__file__).resolve().parents[1] / "params.yaml"
    params = load_params(repo_params, [f"model.name={name}", *small, *overrides])
    assert params.model.channels == "auto" or overrides  # the default
    return resolve_channels(params, shards)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("grey, channels", [(True, 1), (False, 3)])
def test_auto_channels_build_every_architecture_with_the_shards_channels(name, grey, channels):
    """params.yaml's ``model.channels: auto`` against a grey manifest paints and judges 1 channel, else 3: the
    generator's clips, a conditional model's input and every discriminator (a real forward on real-shaped clips)."""
    params = auto_params(name, manifest(grey))
    assert params.model.channels == channels
    torch.manual_seed(0)
    G, discriminators = build_model(params.model)
    assert G.channels == channels
    real = moving_squares(BATCH)[:, :channels]
    context = G.condition(real)
    if G.conditional:
        assert context.shape[1] == channels + (G.task == "inpainting")  # inpainting's input adds the mask
        assert all(clips.shape == real.shape for clips in G.baselines(context).values())
    video = G.full_clip(context, G(G.sample_z(BATCH), None, context))
    assert video.shape == (BATCH, channels, 8, 16, 16)
    views, real_views = G.views(G.sample_z(BATCH), None, context), G.real_views(real)
    for key, D in discriminators.items():
        for clips in (real_views[D.view], views[D.view]):
            logits = D(clips)
            assert logits.shape[0] == BATCH and torch.isfinite(logits).all(), key
    if channels == 1:  # a colour clip is not what a grey model's discriminators take
        with pytest.raises(RuntimeError):
            discriminators[next(iter(discriminators))](moving_squares(BATCH))


def test_channels_of_old_manifests_explicit_values_and_colour_shards():
    assert auto_params("vgan", manifest(None)).model.channels == 3  # written before `grey` was recorded: colour
    assert auto_params("vgan", manifest(True), "model.channels=3").model.channels == 3  # grey data, colour model
    assert auto_params("vgan", manifest(True), "model.channels=1").model.channels == 1
    with pytest.raises(DataError, match=r"model.channels = 1 \(grey\) but the shards .* hold colour clips"):
        auto_params("vgan", manifest(False), "model.channels=1")
    with pytest.raises(ParamsError, match="model.channels = 'auto' is not resolved"):
        build_model(model_params(name="vgan"))


def test_image_discriminator_is_added_to_generation_models_that_have_none():
    from vgan.models.nets import ImageDiscriminator

    for name in ("vgan", "tgan", "mocogan", "dvdgan"):
        _, plain = build_model(tiny(name))
        _, added = build_model(tiny(name, image_discriminator=2))
        own = [key for key, D in plain.items() if isinstance(D, ImageDiscriminator)]
        if own:  # MoCoGAN's and DVD-GAN's own image discriminators stay the only ones
            assert list(added) == list(plain), name
        else:
            assert list(added) == [*plain, "image"], name
            G, _ = build_model(tiny(name, image_discriminator=2))
            logits = added["image"](G(G.sample_z(BATCH)))
            assert logits.shape == (BATCH, 2)  # two frames of each clip judged
    _, vsr = build_model(tiny("vsr", image_discriminator=2))
    assert list(vsr) == ["video"]  # restoration models are not generation models


def test_pair_discriminator_judges_the_first_frame_beside_later_ones():
    from vgan.models.nets import PairDiscriminator

    for name in ("vgan", "mocogan", "stylegan_v", "motionshape"):
        G, plain = build_model(tiny(name))
        _, added = build_model(tiny(name, pair_discriminator=3))
        assert list(added) == [*plain, "pair"], name
        assert isinstance(added["pair"], PairDiscriminator)
        assert added["pair"](G(G.sample_z(BATCH))).shape == (BATCH, 3)  # three later frames of each clip judged
    _, vsr = build_model(tiny("vsr", pair_discriminator=3))
    assert "pair" not in vsr  # restoration models are not generation models

    D = PairDiscriminator(0, 1, 16, 8, True, frames_per_clip=7)
    clip = moving_squares(2, frames=8)[:, :1]
    stacked = D.frames_of(clip)
    assert stacked.shape == (2 * 7, 2, 16, 16)
    assert torch.equal(stacked[:7, 0], clip[0, 0, :1].expand(7, -1, -1))  # first channel: always frame 0
    later = sorted(int((clip[0, 0, 1:] == frame).flatten(1).all(1).nonzero()) + 1 for frame in stacked[:7, 1])
    assert later == list(range(1, 8))  # second channel: each later frame once, never frame 0
    # a clip whose later frames show something else than its first gets another logit
    other = clip.clone()
    other[:, :, 1:] = clip[:, :, 1:].flip(3)
    torch.manual_seed(0)
    same = D(clip)
    torch.manual_seed(0)
    assert not torch.allclose(same, D(other))


def test_embedded_pair_discriminator_compares_the_first_frame_with_each_later_one():
    from vgan.models.nets import EmbeddedPairDiscriminator

    G, Ds = build_model(tiny("vgan", pair_discriminator=3, pair_compare="embedded"))
    assert isinstance(Ds["pair"], EmbeddedPairDiscriminator)
    assert Ds["pair"](G(G.sample_z(BATCH))).shape == (BATCH, 3)
    D = EmbeddedPairDiscriminator(0, 1, 16, 8, True, frames_per_clip=4)
    still = moving_squares(2, frames=8)[:, :1, :1].expand(-1, -1, 8, -1, -1)  # every frame the first
    logits = D(still)
    assert torch.allclose(logits, logits[:, :1].expand(-1, 4))  # the same pair whichever later frame is picked
    moved_first = still.clone()
    moved_first[:, :, 0] = torch.roll(still[:, :, 0], 5, dims=-1)
    assert not torch.allclose(D(moved_first), logits)  # each logit depends on the first frame


def test_centred_pair_discriminator_stacks_a_moved_digit_onto_itself():
    """pair_compare=centred: each frame is shifted so its brightness centroid sits at the centre before the two are
    stacked, so a clip whose square only moves gives pairs whose two halves are the same picture."""
    from vgan.models.nets import PairDiscriminator, centre_on_brightness

    G, Ds = build_model(tiny("vgan", pair_discriminator=3, pair_compare="centred"))
    assert isinstance(Ds["pair"], PairDiscriminator) and Ds["pair"].centred
    assert Ds["pair"](G(G.sample_z(BATCH))).shape == (BATCH, 3)
    clip = -torch.ones(1, 1, 4, 16, 16)
    for t, (row, col) in enumerate(((1, 1), (3, 6), (8, 9), (9, 2))):  # one 4x3 rectangle, moving
        clip[0, 0, t, row:row + 4, col:col + 3] = 1.0
    pairs = PairDiscriminator(0, 1, 16, 8, True, frames_per_clip=3, centred=True).frames_of(clip)
    assert pairs.shape == (3, 2, 16, 16)
    assert torch.equal(pairs[:, 0], pairs[:, 1])  # first and later frame overlap exactly
    assert not torch.equal(PairDiscriminator(0, 1, 16, 8, True, 3).frames_of(clip)[:, 0], pairs[:, 0])
    frames = clip[0].transpose(0, 1).clone().requires_grad_()  # (T, C, H, W)
    centre_on_brightness(frames).sum().backward()
    assert frames.grad.abs().sum() > 0  # the generator learns through the pixels


def test_coarse_frames_sets_the_3d_generators_coarsest_length():
    from vgan.models.layers import temporal_schedule

    assert temporal_schedule(16, 3) == (2, [2, 2, 2])  # the default: double while possible
    assert temporal_schedule(16, 3, 1) == (1, [4, 2, 2])  # one coarse layout; the coarsest layer quadruples
    assert temporal_schedule(16, 2, 1) == (1, [4, 4])
    for name, coarse in (("vgan", lambda G: G.fg_stem(torch.zeros(1, G.cond.out_dim, 1, 1, 1))),
                         ("hrvgan", lambda G: G.trunk.fc.out_features // G.trunk.start_shape[0] // 16),
                         ("progressive", lambda G: G.base.start_frames)):
        for setting, expected in ((None, 2 if name != "progressive" else 4), (1, 1)):
            G, _ = build_model(tiny(name, coarse_frames=setting, resolution=32, frames=16))
            value = coarse(G)
            assert (value.shape[2] if torch.is_tensor(value) else value) == expected, (name, setting)
            assert G(G.sample_z(BATCH)).shape == (BATCH, 3, 16, 32, 32)
    with pytest.raises(ValidationError, match="must be 3 times a power of two"):
        tiny("vgan", coarse_frames=3)
