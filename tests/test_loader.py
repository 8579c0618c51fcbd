"""The loader: batch format, determinism per seed and worker count, epochs, resampling, evaluation pass."""

import io
import json
import tarfile

import numpy as np
import pytest
import torch

from vgan.data.loader import iterate_clips, make_loader, shard_paths
from vgan.util.errors import DataError

CLIP = (4, 8, 8, 3)


def write_shards(out_dir, num_shards=3, per_shard=10):
    """Shards in the stage's format; clip number n is filled with the value n, its label is n % 5."""
    out_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for shard in range(num_shards):
        name = f"train-{shard:06d}.tar"
        with tarfile.open(out_dir / name, "w") as tar:
            for offset in range(per_shard):
                number = shard * per_shard + offset
                buffer = io.BytesIO()
                np.save(buffer, np.full(CLIP, number, np.uint8))
                members = {"frames.npy": buffer.getvalue(), "cls": str(number % 5).encode(),
                           "json": json.dumps({"label": number % 5}).encode()}
                for suffix, data in members.items():
                    info = tarfile.TarInfo(f"clip{number:04d}_0.{suffix}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        names.append(name)
    (out_dir / "manifest.json").write_text(json.dumps({"shards": {"train": names, "val": []}}))
    return [str(out_dir / name) for name in names]


def clip_numbers(batch):
    video, _ = batch
    return [round((float(v) + 1) * 127.5) for v in video[:, 0, 0, 0, 0]]


def order(loader):
    return [number for batch in loader for number in clip_numbers(batch)]


def test_batches_are_float_bcthw_in_range_with_int64_labels(tmp_path):
    urls = write_shards(tmp_path)
    video, labels = next(iter(make_loader(urls, 4, num_workers=0)))
    assert video.shape == (4, 3, 4, 8, 8) and video.dtype == torch.float32
    assert labels.dtype == torch.int64 and labels.shape == (4,)
    assert -1.0 <= float(video.min()) and float(video.max()) <= 1.0
    numbers = clip_numbers((video, labels))
    assert labels.tolist() == [n % 5 for n in numbers]  # labels travel with their clips


@pytest.mark.parametrize("uint8", [False, True])
def test_a_grey_model_gets_the_first_channel_of_the_clips(tmp_path, uint8):
    urls = write_shards(tmp_path)
    (colour, labels), = [next(iter(make_loader(urls, 4, num_workers=0, uint8=uint8)))]
    (grey, grey_labels), = [next(iter(make_loader(urls, 4, num_workers=0, uint8=uint8, channels=1)))]
    assert torch.equal(labels, grey_labels)
    if uint8:  # as stored, (B, T, H, W, C)
        assert grey.shape == (4, 4, 8, 8, 1) and torch.equal(grey, colour[..., :1])
    else:
        assert grey.shape == (4, 1, 4, 8, 8) and torch.equal(grey, colour[:, :1])


def test_full_range_maps_to_minus_one_and_one(tmp_path):
    urls = write_shards(tmp_path, num_shards=1, per_shard=1)
    with tarfile.open(urls[0], "w") as tar:
        buffer = io.BytesIO()
        np.save(buffer, np.stack([np.zeros(CLIP[1:], np.uint8), np.full(CLIP[1:], 255, np.uint8)] * 2))
        for suffix, data in {"frames.npy": buffer.getvalue(), "cls": b"0"}.items():
            info = tarfile.TarInfo(f"k.{suffix}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    video, _ = next(iter(iterate_clips(urls, 1)))
    assert float(video[0, :, 0].max()) == -1.0 and float(video[0, :, 1].min()) == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_same_seed_same_batches_and_every_clip_once_per_epoch(tmp_path, workers):
    urls = write_shards(tmp_path)
    first = order(make_loader(urls, 5, shuffle_buffer=8, num_workers=workers, seed=7))
    again = order(make_loader(urls, 5, shuffle_buffer=8, num_workers=workers, seed=7))
    other = order(make_loader(urls, 5, shuffle_buffer=8, num_workers=workers, seed=8))
    assert first == again
    assert first != other
    assert sorted(first) == list(range(30))  # one pass = one epoch, nothing lost or repeated
    assert first != sorted(first)  # and shuffled


@pytest.mark.slow
def test_resume_by_skipping_batches_and_epochs_differ(tmp_path):
    urls = write_shards(tmp_path)
    loader = make_loader(urls, 5, shuffle_buffer=8, num_workers=2, seed=3)
    epoch0, epoch1 = order(loader), order(loader)
    assert sorted(epoch0) == sorted(epoch1) and epoch0 != epoch1  # a new shuffle every pass
    resumed = make_loader(urls, 5, shuffle_buffer=8, num_workers=2, seed=3)
    stream = (batch for _ in range(2) for batch in resumed)
    skipped = [clip_numbers(next(stream)) for _ in range(7)]  # 6 batches per epoch: into the second
    rest = [number for batch in stream for number in clip_numbers(batch)]
    assert [n for batch in skipped for n in batch] + rest == epoch0 + epoch1


def test_fewer_shards_than_workers_still_covers_every_clip(tmp_path):
    urls = write_shards(tmp_path, num_shards=1, per_shard=12)
    from vgan.data.loader import ClipStream

    seen = []
    for worker in range(3):  # what each of three workers would read
        stream = ClipStream(urls, 2, shuffle_buffer=0, seed=0, drop_last=False, num_workers=3)
        stream._slot = lambda worker=worker: (worker, 3)
        seen += [round((float(clips[i, 0, 0, 0, 0]) + 1) * 127.5) for clips, _ in stream for i in range(len(clips))]
    assert sorted(seen) == list(range(12))


def test_iterate_clips_is_ordered_finite_and_keeps_the_last_batch(tmp_path):
    urls = write_shards(tmp_path, num_shards=2, per_shard=7)
    batches = list(iterate_clips(urls, 4))
    assert [len(labels) for _, labels in batches] == [4, 4, 4, 2]
    assert order(batches) == list(range(14))


def test_shard_paths_come_from_the_manifest(tmp_path):
    urls = write_shards(tmp_path / "shards")
    assert shard_paths(tmp_path / "shards", "train") == urls
    assert shard_paths(tmp_path / "shards", "val") == []
    with pytest.raises(DataError, match="no split 'test'"):
        shard_paths(tmp_path / "shards", "test")
    with pytest.raises(DataError, match="run `vgan shards`"):
        shard_paths(tmp_path / "missing", "train")
    with pytest.raises(DataError, match="split is empty"):
        make_loader([], 4)


def test_pipe_urls_read_shards_through_a_command(tmp_path):
    urls = write_shards(tmp_path, num_shards=2, per_shard=3)
    piped = [f"pipe:cat {url}" for url in urls]  # how S3 works too: pipe:aws s3 cp s3://bucket/x.tar -
    assert order(iterate_clips(piped, 2)) == list(range(6))


def test_uint8_batches_are_the_stored_clips_and_widen_to_the_float_batches(tmp_path):
    from vgan.data.loader import to_model_range

    urls = write_shards(tmp_path)
    as_stored = list(make_loader(urls, 4, num_workers=0, seed=3, uint8=True))
    as_float = list(make_loader(urls, 4, num_workers=0, seed=3))
    assert len(as_stored) == len(as_float) > 0
    for (stored, labels), (widened, float_labels) in zip(as_stored, as_float):
        assert stored.dtype == torch.uint8 and stored.shape[0] == 4 and stored.shape[-1] == 3
        assert torch.equal(labels, float_labels)
        assert torch.allclose(to_model_range(stored), widened)
