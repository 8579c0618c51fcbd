"""Inception-v3 (frame FID) and C3D (video IS) loaders: TorchScript calls, pinning, refusals."""

import numpy as np
import pytest
import torch

from vgan.metrics.c3d import load_c3d, video_inception_score
from vgan.metrics.inception import load_inception
from vgan.metrics.weights import file_sha256
from vgan.util.errors import MissingWeightsError


class FrameDetector(torch.nn.Module):
    def forward(self, images: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        assert return_features and images.dtype == torch.uint8 and images.dim() == 4
        return images.float().mean(dim=(1, 2, 3))[:, None].repeat(1, 2048)


class ClipClassifier(torch.nn.Module):
    def forward(self, videos: torch.Tensor) -> torch.Tensor:
        assert videos.dtype == torch.uint8 and videos.shape[1:3] == (3, 16)
        return torch.softmax(torch.stack([videos.float().mean(dim=(1, 2, 3, 4)) / 50] * 101, 1), dim=1)


def scripted(module, path):
    torch.jit.script(module).save(str(path))
    return str(path), file_sha256(path)


def test_inception_gives_one_2048_row_per_frame(tmp_path):
    extractor = load_inception(*scripted(FrameDetector(), tmp_path / "inception-2015-12-05.pt"))
    clips = torch.zeros(2, 3, 5, 8, 8)
    clips[1] = 1.0
    features = extractor(clips)
    assert features.shape == (10, 2048)
    assert features[:5].eq(128).all() and features[5:].eq(255).all()  # (x * 127.5 + 128) quantised


def test_c3d_posteriors_and_reference_shuffled_splits(tmp_path):
    extractor = load_c3d(*scripted(ClipClassifier(), tmp_path / "c3d_ucf101.pt"))
    probs = extractor(torch.zeros(2, 1, 16, 8, 8))  # grey clips are expanded to RGB
    assert probs.shape == (2, 101)
    confident = np.eye(101)[np.arange(2048) % 101]
    scores = video_inception_score(confident)
    # One-hot posteriors: each split scores exp(entropy of its label histogram); splits cut at i*N//10.
    shuffled = confident.copy()
    np.random.RandomState(42).shuffle(shuffled)
    split_scores = []
    for index in range(10):
        counts = shuffled[index * 2048 // 10 : (index + 1) * 2048 // 10].sum(axis=0)
        share = counts[counts > 0] / counts.sum()
        split_scores.append(np.exp(-(share * np.log(share)).sum()))
    assert scores["isv2048_ucf_mean"] == pytest.approx(np.mean(split_scores), rel=1e-9)
    assert scores["isv2048_ucf_std"] == pytest.approx(np.std(split_scores), rel=1e-9)


def test_state_dicts_and_missing_files_are_refused(tmp_path):
    state_dict = tmp_path / "inception.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, state_dict)
    with pytest.raises(MissingWeightsError, match="is a state dict; frame FID needs"):
        load_inception(str(state_dict), file_sha256(state_dict))
    with pytest.raises(MissingWeightsError, match=r"set evaluate\.c3d_weights=PATH \(with evaluate\.c3d_sha256="):
        load_c3d(None, None)
