"""I3D: published state-dict layout loads and gives (N, 400); TorchScript dispatch; pinning and refusals."""

import numpy as np
import pytest
import torch

from vgan.errors import MissingWeightsError
from vgan.metrics.i3d import I3DFeatures, InceptionI3d, i3d_preprocess, load_i3d
from vgan.metrics.weights import file_sha256

# The published Inception-I3D (RGB, Kinetics-400) layout, written out by hand from the paper's table.
STEM = [("Conv3d_1a_7x7", 3, 64, 7), ("Conv3d_2b_1x1", 64, 64, 1), ("Conv3d_2c_3x3", 64, 192, 3)]
MIXED = [("Mixed_3b", 192, [64, 96, 128, 16, 32, 32]), ("Mixed_3c", 256, [128, 128, 192, 32, 96, 64]),
         ("Mixed_4b", 480, [192, 96, 208, 16, 48, 64]), ("Mixed_4c", 512, [160, 112, 224, 24, 64, 64]),
         ("Mixed_4d", 512, [128, 128, 256, 24, 64, 64]), ("Mixed_4e", 512, [112, 144, 288, 32, 64, 64]),
         ("Mixed_4f", 528, [256, 160, 320, 32, 128, 128]), ("Mixed_5b", 832, [256, 160, 320, 32, 128, 128]),
         ("Mixed_5c", 832, [384, 192, 384, 48, 128, 128])]


def published_state_dict(seed=0):
    generator = torch.Generator().manual_seed(seed)
    state = {}

    def unit(prefix, cin, cout, k):
        state[f"{prefix}.conv3d.weight"] = torch.randn(cout, cin, k, k, k, generator=generator) * (2 / (cin * k**3)) ** 0.5
        state[f"{prefix}.bn.weight"] = torch.ones(cout)
        state[f"{prefix}.bn.bias"] = torch.randn(cout, generator=generator) * 0.1
        state[f"{prefix}.bn.running_mean"] = torch.zeros(cout)
        state[f"{prefix}.bn.running_var"] = torch.ones(cout)  # older exports have no num_batches_tracked

    for name, cin, cout, k in STEM:
        unit(name, cin, cout, k)
    for name, cin, (c0, c1a, c1b, c2a, c2b, c3) in MIXED:
        unit(f"{name}.b0", cin, c0, 1)
        unit(f"{name}.b1a", cin, c1a, 1)
        unit(f"{name}.b1b", c1a, c1b, 3)
        unit(f"{name}.b2a", cin, c2a, 1)
        unit(f"{name}.b2b", c2a, c2b, 3)
        unit(f"{name}.b3b", cin, c3, 1)
    state["logits.conv3d.weight"] = torch.randn(400, 1024, 1, 1, 1, generator=generator) * 0.03
    state["logits.conv3d.bias"] = torch.zeros(400)
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


def test_model_keys_equal_the_published_layout():
    model_keys = {k: tuple(v.shape) for k, v in InceptionI3d().state_dict().items() if "num_batches_tracked" not in k}
    assert model_keys == {k: tuple(v.shape) for k, v in published_state_dict().items()}


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
