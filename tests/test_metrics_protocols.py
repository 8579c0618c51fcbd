"""Protocol-named distances: fixed real subset, frame selection, atomic cache keyed by protocol/data/weights."""

import numpy as np
import pytest
import torch

from vgan.util.errors import VganError
from vgan.metrics.frechet import frechet_distance
from vgan.metrics.protocols import (PROTOCOLS, get_protocol, protocol_distances, protocol_frames, real_clip_indices,
                                    take_indices)


class MeanColourFeatures:
    """A cheap stand-in feature network: per-channel means and spreads over each clip's frames."""

    sha256 = "f" * 64

    def __init__(self):
        self.frames_seen = []

    def __call__(self, clips):
        self.frames_seen.append(clips.shape[2])
        return torch.cat([clips.mean(dim=(2, 3, 4)), clips.std(dim=(2, 3, 4))], 1)


def uint8_clips(count, frames, seed, brightness=0):
    rng = np.random.default_rng(seed)
    return np.clip(rng.integers(0, 200, (count, frames, 4, 4, 3)) + brightness, 0, 255).astype(np.uint8)


def batches(clips, size=512):
    return [clips[start : start + size] for start in range(0, len(clips), size)]


def test_protocol_table_matches_the_stylegan_v_definitions():
    assert get_protocol("fvd2048_16f").frames_needed == 16
    assert get_protocol("fvd2048_128f").frames_needed == 128
    subsampled = get_protocol("fvd2048_128f_subsample8f")
    assert (subsampled.num_frames, subsampled.subsample, subsampled.frames_needed) == (16, 8, 121)
    assert all(p.num_real == p.num_generated == 2048 for p in PROTOCOLS.values())
    frames = protocol_frames(torch.arange(128.0).reshape(1, 1, 128, 1, 1).expand(1, 3, 128, 2, 2) / 128, subsampled,
                             np.random.default_rng(0))
    assert frames[0, 0, :, 0, 0].mul(128).round().tolist() == list(range(0, 121, 8))
    with pytest.raises(VganError, match="unknown protocol 'fvd16'"):
        get_protocol("fvd16")
    with pytest.raises(VganError, match="at least 16 frames, got 8"):
        protocol_frames(torch.zeros(1, 3, 8, 4, 4), get_protocol("fvd2048_16f"), np.random.default_rng(0))


def test_real_subset_is_seeded_and_refuses_too_few_clips():
    protocol = get_protocol("fvd2048_16f")
    first = real_clip_indices(protocol, 5000, seed=0)
    assert len(first) == 2048 and len(set(first)) == 2048 and np.array_equal(first, real_clip_indices(protocol, 5000))
    assert not np.array_equal(first, real_clip_indices(protocol, 5000, seed=1))
    with pytest.raises(VganError, match="needs 2048 real clips, the data has 36"):
        real_clip_indices(protocol, 36)
    picked = list(take_indices(batches(np.arange(5000)[:, None], 300), first))
    assert np.array_equal(np.concatenate(picked)[:, 0], first)


def test_distances_use_cached_real_features_keyed_by_data(tmp_path):
    real_pool = uint8_clips(2500, 16, seed=0)
    indices = real_clip_indices(get_protocol("fvd2048_16f"), len(real_pool))
    calls = []

    def real_batches():
        calls.append(1)
        return take_indices(batches(real_pool), indices)

    extractor = MeanColourFeatures()
    same = protocol_distances("fvd2048_16f", real_batches, batches(uint8_clips(2100, 20, seed=1)), extractor, tmp_path, "data-v1",
                                kernel_subsets=5)
    brighter = protocol_distances("fvd2048_16f", real_batches, batches(uint8_clips(2048, 16, seed=2, brightness=40)),
                                  extractor, tmp_path, "data-v1",
                                kernel_subsets=5)
    assert len(calls) == 1 and len(list(tmp_path.glob("fvd2048_16f-*.npy"))) == 1  # second run read the cache
    assert set(same) == {"fvd2048_16f", "kvd2048_16f"}
    assert brighter["fvd2048_16f"] > 20 * same["fvd2048_16f"] and brighter["kvd2048_16f"] > same["kvd2048_16f"]
    assert set(extractor.frames_seen) == {16}  # 20-frame generated clips were cut to the protocol's 16
    real_features = extractor(torch.as_tensor(real_pool[indices]).permute(0, 4, 1, 2, 3).float() / 127.5 - 1)
    generated = uint8_clips(2100, 20, seed=1)[:2048, :16]
    expected = frechet_distance(real_features, extractor(torch.as_tensor(generated).permute(0, 4, 1, 2, 3).float() / 127.5 - 1))
    assert same["fvd2048_16f"] == pytest.approx(expected, rel=1e-5)
    protocol_distances("fvd2048_16f", real_batches, batches(uint8_clips(2048, 16, seed=3)), extractor, tmp_path, "data-v2",
                       kernel_subsets=5)
    assert len(calls) == 2 and len(list(tmp_path.glob("fvd2048_16f-*.npy"))) == 2  # new data, new cache entry
    assert not list(tmp_path.glob(".*tmp"))


def test_frame_fid_uses_one_frame_per_clip_and_refuses_short_streams(tmp_path):
    real_pool = uint8_clips(2048, 4, seed=4)
    extractor = MeanColourFeatures()
    result = protocol_distances("fid_frames2048", lambda: batches(real_pool), batches(uint8_clips(2048, 4, seed=5)),
                                extractor, tmp_path, "frames", kernel_subsets=5)
    assert set(result) == {"fid_frames2048", "kid_frames2048"} and set(extractor.frames_seen) == {1}
    with pytest.raises(VganError, match="needs 2048 clips, only 100 were given"):
        protocol_distances("fid_frames2048", lambda: batches(real_pool), batches(uint8_clips(100, 4, seed=5)),
                           extractor, tmp_path, "frames", kernel_subsets=5)
