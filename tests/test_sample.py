"""`vgan sample`: every sample kind on disk with the right frames and names; latent paths behave."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import write_tiny_params
from vgan.params import load_params
from vgan.sample import interpolation_path, loop_path, write_samples

LABEL_NAMES = ["left", "right"]


def moving_square_clips(count: int, frames: int = 8, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, T, H, W, 3): a bright square moving left (label 0) or right (label 1)."""
    rng = np.random.default_rng(seed)
    clips = np.zeros((count, frames, size, size, 3), np.uint8)
    labels = np.arange(count) % 2
    for index, label in enumerate(labels):
        top, left = rng.integers(2, size - 6, 2)
        for t in range(frames):
            x = (left + (t if label else -t)) % (size - 4)
            clips[index, t, top:top + 4, x:x + 4] = 255
    return clips, labels


def write_test_shards(folder, train: int = 16, val: int = 8, frames: int = 8, size: int = 16):
    """Shards + manifest as `vgan shards` writes them, without ffmpeg."""
    folder.mkdir(parents=True, exist_ok=True)
    names = {}
    for split, count, seed in (("train", train, 0), ("val", val, 1)):
        clips, labels = moving_square_clips(count, frames, size, seed)
        names[split] = [f"{split}-000000.tar"]
        with tarfile.open(folder / names[split][0], "w") as tar:
            for index, (clip, label) in enumerate(zip(clips, labels)):
                buffer = io.BytesIO()
                np.save(buffer, clip)
                members = {"frames.npy": buffer.getvalue(), "cls": str(label).encode(),
                           "json": json.dumps({"label": int(label), "label_name": LABEL_NAMES[label]}).encode()}
                for suffix, data in members.items():
                    info = tarfile.TarInfo(f"{split}{index:03d}_0.{suffix}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    manifest = {"label_names": LABEL_NAMES, "clip_shape": [frames, size, size, 3], "grey": True,
                "counts": {"train": train, "val": val}, "shards": names}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def tiny_setup(tmp_path, *overrides, step: int = 7):
    """Params for a tiny untrained generator saved as `vgan train` exports it (one channel: the test shards are
    grey, and `model.channels: auto` resolves as the train stage does), plus test shards."""
    from vgan.util.io import read_manifest
    from vgan.models.zoo import build_model
    from vgan.train.generator_file import GENERATOR_FORMAT
    from vgan.util.torch_files import atomic_save
    from vgan.train.run import resolve_channels

    write_test_shards(tmp_path / "shards")
    params = load_params(write_tiny_params(tmp_path / "params.yaml"),
                         [f"shards.out_dir={tmp_path / 'shards'}", f"sample.out_dir={tmp_path / 'samples'}",
                          "sample.mp4=false", "sample.loop_frames=12", "sample.interpolation_steps=5", *overrides])
    params = resolve_channels(params, read_manifest(tmp_path / "shards"))
    torch.manual_seed(0)
    generator, _ = build_model(params.model)
    state = generator.state_dict()
    atomic_save({"format": GENERATOR_FORMAT, "params": params.model_dump(mode="json"), "model_hash": "test",
                 "step": step, "G": state, "G_ema": state}, tmp_path / "generator.pt")
    return params, tmp_path / "generator.pt"


def gif_frames(path) -> np.ndarray:
    with Image.open(path) as gif:
        frames = []
        for index in range(gif.n_frames):
            gif.seek(index)
            frames.append(np.asarray(gif.convert("RGB"), np.float64))
    return np.stack(frames)


def outputs(index: dict, kind: str) -> list[dict]:
    return [record for record in index["outputs"] if record["kind"] == kind]


def test_slerp_keeps_latent_norms_where_lerp_shrinks_them():
    start, end = torch.randn(6, 128, generator=torch.Generator().manual_seed(0)).chunk(2)
    slerped = interpolation_path(start, end, 9, "slerp")
    lerped = interpolation_path(start, end, 9, "lerp")
    assert torch.allclose(slerped[0], start, atol=1e-5) and torch.allclose(slerped[-1], end, atol=1e-5)
    weights = torch.linspace(0, 1, 9)[:, None]
    expected = (1 - weights) * start.norm(dim=1) + weights * end.norm(dim=1)
    assert torch.allclose(slerped.norm(dim=2), expected, rtol=1e-5)
    assert (lerped[4].norm(dim=1) < 0.8 * expected[4]).all()  # a straight line cuts through the sphere


def test_loop_path_closes_on_itself():
    start, other = torch.randn(2, 3, 64, generator=torch.Generator().manual_seed(1))
    path = loop_path(start, other, 16)
    assert torch.allclose(path[0], start)
    steps = (path[1:] - path[:-1]).norm(dim=2)
    seam = (path[0] - path[-1]).norm(dim=1)
    assert (seam <= steps.max(dim=0).values * 1.001).all()  # the seam is one ordinary step
    assert ((path[8] - path[0]).norm(dim=1) > 3 * steps.max(dim=0).values).all()


def test_unconditional_model_writes_interpolations_and_loops_named_by_model_step_seed(tmp_path):
    params, generator = tiny_setup(tmp_path, "sample.seed=3")
    index = write_samples(params, generator)
    samples = tmp_path / "samples"
    assert json.loads((samples / "index.json").read_text()) == index
    prefix = "vgan_step7_seed3_"
    assert all(record["file"].startswith(prefix) for record in index["outputs"])
    assert all((samples / record["file"]).exists() for record in index["outputs"])
    for method in ("lerp", "slerp"):
        (record,) = [r for r in outputs(index, "interpolation") if r["method"] == method]
        assert record["file"] == f"{prefix}interp_{method}.gif" and record["seeds"] == [3, 4]
        assert gif_frames(samples / record["file"]).shape[0] == 8  # the training length
    (loop,) = outputs(index, "loop")
    frames = gif_frames(samples / loop["file"])
    assert loop["file"] == f"{prefix}loop12f.gif" and frames.shape[0] == 12
    distance = lambda a, b: np.abs(frames[a] - frames[b]).mean()  # noqa: E731
    pairs = np.random.default_rng(0).integers(0, 12, (40, 2))
    random_pairs = np.mean([distance(a, b) for a, b in pairs if abs(a - b) > 2])
    assert distance(-1, 0) < 0.5 * random_pairs
    assert "unconditional" in index["skipped"]["classes"] and "exactly 8 frames" in index["skipped"]["long"]
    assert len(index["files"]) == 4 and not list(samples.glob("*.mp4"))


def test_conditional_rolling_model_writes_class_rows_and_long_clips(tmp_path):
    params, generator = tiny_setup(tmp_path, "model.name=mocogan", "model.num_classes=2", "sample.per_class=3")
    index = write_samples(params, generator)
    samples = tmp_path / "samples"
    (classes,) = outputs(index, "classes")
    assert classes["file"] == "mocogan_step7_seed0_classes.gif" and classes["classes"] == LABEL_NAMES
    frames = gif_frames(samples / classes["file"])
    assert frames.shape[0] == 8
    rows = np.array_split(frames[:, 2:-2], 2, axis=1)  # one row per class, same latents in every row
    assert np.abs(rows[0] - rows[1]).mean() > 1.0
    (long,) = outputs(index, "long")
    assert long["file"] == "mocogan_step7_seed0_long16f.gif" and gif_frames(samples / long["file"]).shape[0] == 16


def test_predictor_shows_context_prediction_and_ground_truth(tmp_path):
    params, generator = tiny_setup(tmp_path, "model.name=predictor", "model.predictor.context_frames=3",
                                   "sample.long_frames=14")
    index = write_samples(params, generator)
    samples = tmp_path / "samples"
    predictions = outputs(index, "prediction")
    assert [r["file"] for r in predictions] == [f"predictor_step7_seed0_predict_{i:03d}.gif" for i in range(4)]
    triptych = gif_frames(samples / predictions[0]["file"])
    assert triptych.shape[0] == 8 and triptych.shape[2] > 3 * triptych.shape[1] - 20  # three panels side by side
    # the ground-truth panel (right) shows the real clip; the context panel holds its last frame
    panel = (triptych.shape[2] - 4 * 2) // 3
    context_panel, truth_panel = triptych[:, :, 2:2 + panel], triptych[:, :, -2 - panel:-2]
    assert np.array_equal(context_panel[2], truth_panel[2]) and np.array_equal(context_panel[7], context_panel[2])
    assert not np.array_equal(truth_panel[7], truth_panel[2])
    assert gif_frames(samples / index["grid"]).shape[0] == 8
    (long,) = outputs(index, "long")
    assert gif_frames(samples / long["file"]).shape[0] == 14
    assert outputs(index, "prediction_grid") and outputs(index, "loop")


@pytest.mark.slow
def test_mp4_per_clip_by_default(tmp_path):
    from vgan.data.video import probe

    params, generator = tiny_setup(tmp_path, "sample.mp4=true", "sample.num_samples=2")
    index = write_samples(params, generator)
    mp4s = sorted((tmp_path / "samples").glob("vgan_step7_seed0_0*.mp4"))
    assert [p.name for p in mp4s] == [f for f in index["files"] if f.endswith(".mp4")] and len(mp4s) == 2
    assert probe(mp4s[0]).num_frames == 8


@pytest.mark.parametrize("stage, path, content", [
    ("sample", "models/generator.pt", b"PK\x03\x04 a torn zip"),
    ("sample", "models/generator.pt", bytes(range(256)) * 20),
    ("evaluate", "models/evaluator.pt", b"not a torch file"),
])
def test_a_corrupt_model_file_is_one_line_naming_it(tmp_path, monkeypatch, capsys, stage, path, content):
    from vgan.cli import main

    monkeypatch.chdir(tmp_path)
    write_tiny_params(tmp_path / "params.yaml")
    (tmp_path / "models").mkdir()
    (tmp_path / path).write_bytes(content)  # evaluate reads the evaluator first, sample only the generator
    assert main([stage]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert f"{path} is corrupt or not a vgan file" in err and "weights_only" not in err
