"""`vgan anomaly`: scores, metrics, report and picture from shards (a briefly trained predictor) and from a folder
of real video files; one-line errors for a generator that is no predictor and for folders without videos."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from conftest import run_cli, workspace_on
from test_sample import tiny_setup
from vgan.cli import main
from vgan.data.anomalies import ANOMALY_TYPES

PREDICTOR = ("model.name=predictor", "model.predictor.context_frames=3")


def read_csv(path) -> list[dict]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def test_anomaly_on_shards_with_a_briefly_trained_predictor(tiny_shards, tmp_path, monkeypatch, capsys):
    work = workspace_on(tiny_shards, tmp_path / "work")
    run_cli("vgan", "train", "--no-progress", *(f"--set={item}" for item in PREDICTOR), "--set=train.steps=4",
            "--set=train.adv_weight=0.5", "--set=train.recon_weight=0.5", "--set=train.recon_loss=l1", cwd=work,
            env={"MLFLOW_TRACKING_URI": f"sqlite:///{work}/mlflow.db"})
    monkeypatch.chdir(work)
    assert main(["anomaly"]) == 0
    assert "ROC AUC teleport" in capsys.readouterr().out
    metrics = json.loads((work / "metrics/anomaly.json").read_text())
    manifest = json.loads((tiny_shards / "data/shards/manifest.json").read_text())
    clips, frames = manifest["counts"]["val"], manifest["clip_shape"][0]
    assert (metrics["num_clips"], metrics["clip_frames"], metrics["context_frames"]) == (clips, frames, 3)
    assert metrics["num_normal"] == clips - round(0.5 * clips)
    assert set(metrics["types"]) == set(ANOMALY_TYPES)
    for row in metrics["types"].values():
        assert row["clips"] >= 1
        for key in ("auc_model", "auc_discriminator", "auc_frame_difference", "frame_auc_model",
                    "frame_auc_frame_difference"):
            assert 0.0 <= row[key] <= 1.0
        assert row["frame_auc_discriminator"] is None  # it judges whole clips
    assert "checkpoints/" in metrics["rules"]["discriminator"]  # the training run's own checkpoint
    per_clip = read_csv(work / "anomaly/clips.csv")
    assert len(per_clip) == clips and {row["anomaly"] for row in per_clip} == {"normal", *ANOMALY_TYPES}
    assert all(float(row["score_model"]) > 0 for row in per_clip)
    assert len({row["score_discriminator"] for row in per_clip}) > 1  # a logit per clip, not a constant
    per_frame = read_csv(work / "anomaly/frames.csv")
    assert len(per_frame) == clips * frames
    # the predictor scores frames 3.. (after its context), the baseline frames 1..
    assert [row["score_model"] == "" for row in per_frame[:frames]] == [t < 3 for t in range(frames)]
    assert [row["score_frame_difference"] == "" for row in per_frame[:frames]] == [t < 1 for t in range(frames)]
    # the predictor's score is its error in units of the context's motion (frame differences of frames j-2, j-1)
    floor = 0.003
    for row in per_frame[3:frames]:
        t = int(row["frame"])
        motion = np.mean([float(f["score_frame_difference"]) for f in per_frame[t - 2:t]])
        assert float(row["score_model"]) == pytest.approx(float(row["error_model"]) / (motion + floor), rel=1e-4)
    for row in per_clip:  # a clip's score is its highest frame score
        mine = [float(f["score_model"]) for f in per_frame if f["clip"] == row["clip"] and f["score_model"]]
        assert float(row["score_model"]) == pytest.approx(max(mine), rel=1e-5)
    report = (work / "reports/anomaly.md").read_text()
    assert all(f"| {kind} |" in report for kind in ANOMALY_TYPES)
    assert (work / "reports/anomaly.png").stat().st_size > 1000
    # the same seed injects the same anomalies: the scores are reproducible
    first = (work / "anomaly/clips.csv").read_text()
    assert main(["anomaly"]) == 0
    assert (work / "anomaly/clips.csv").read_text() == first


def write_digit_videos(folder, count: int = 3, frames: int = 16, side: int = 32):
    from vgan.data.digits import render_video
    from vgan.data.video import encode_mp4

    rng = np.random.default_rng(0)
    digit = np.zeros((12, 12), np.uint8)
    digit[1:-1, 3:-3] = 230
    digit[4:-4, 5:-5] = 0
    for index in range(count):
        encode_mp4(render_video([digit], frames, side, rng), folder / f"{'ab'[index % 2]}/clip{index}.mp4", fps=8)


def test_a_folder_of_real_video_files(tmp_path, monkeypatch, capsys):
    params_file = tmp_path / "params.yaml"
    _, generator = tiny_setup(tmp_path, *PREDICTOR)  # 8 frames of 16x16
    write_digit_videos(tmp_path / "videos")
    (tmp_path / "videos/notes.txt").write_text("not a video")
    monkeypatch.chdir(tmp_path)
    common = [f"--set=anomaly.generator={generator}", "--set=anomaly.input=folder",
              f"--set=anomaly.folder={tmp_path / 'videos'}"]
    assert main(["anomaly", "--params", str(params_file), *common, "--set=anomaly.inject=false"]) == 0
    per_clip = read_csv(tmp_path / "anomaly/clips.csv")
    # each 16-frame video is decoded at 16x16 and cut into two 8-frame clips
    assert [row["key"] for row in per_clip] == ["a/clip0.mp4@0", "a/clip0.mp4@8", "a/clip2.mp4@0", "a/clip2.mp4@8",
                                                "b/clip1.mp4@0", "b/clip1.mp4@8"]
    assert [row["label"] for row in per_clip] == ["0", "0", "0", "0", "1", "1"]
    assert {row["anomaly"] for row in per_clip} == {"normal"}
    metrics = json.loads((tmp_path / "metrics/anomaly.json").read_text())
    assert metrics["input"] == str(tmp_path / "videos") and "types" not in metrics
    assert "6 clips scored" in capsys.readouterr().out
    # injected anomalies work on folders too
    assert main(["anomaly", "--params", str(params_file), *common, "--set=anomaly.types=[freeze,reverse]"]) == 0
    metrics = json.loads((tmp_path / "metrics/anomaly.json").read_text())
    assert {kind: row["clips"] for kind, row in metrics["types"].items()} == {"freeze": 2, "reverse": 1}
    # no training checkpoint, so no discriminator: its AUC is "not measured", not a number from the clips' order
    assert "no training checkpoint" in metrics["rules"]["discriminator"]
    assert all(row["auc_discriminator"] is None for row in metrics["types"].values())


def test_a_folder_labelled_by_name_is_ranked_per_label_against_its_normal_videos(tmp_path, monkeypatch, capsys):
    from vgan.anomaly.anomaly_stage import name_label

    assert [name_label(p) for p in ("normal/a.mp4", "Normal_03.mp4", "jump-2.mp4", "spin/x/y.mp4", "blur.mp4")] == [
        "normal", "normal", "jump", "spin", "blur"]
    _, generator = tiny_setup(tmp_path, *PREDICTOR)  # 8 frames of 16x16
    write_digit_videos(tmp_path / "videos", count=4)  # a/clip0, b/clip1, a/clip2, b/clip3
    (tmp_path / "videos/a").rename(tmp_path / "videos/normal")
    (tmp_path / "videos/b/clip1.mp4").rename(tmp_path / "videos/stutter_1.mp4")
    (tmp_path / "videos/b").rename(tmp_path / "videos/blink")
    monkeypatch.chdir(tmp_path)
    assert main(["anomaly", "--params", str(tmp_path / "params.yaml"), f"--set=anomaly.generator={generator}",
                 "--set=anomaly.input=folder", f"--set=anomaly.folder={tmp_path / 'videos'}",
                 "--set=anomaly.inject=false"]) == 0
    metrics = json.loads((tmp_path / "metrics/anomaly.json").read_text())
    assert metrics["labelled"]["types"] == ["blink", "stutter"] and "injected" not in metrics
    assert metrics["num_normal"] == 4  # two normal videos, two clips each
    assert {kind: row["clips"] for kind, row in metrics["types"].items()} == {"blink": 2, "stutter": 2}
    for row in metrics["types"].values():
        assert 0 <= row["auc_model"] <= 1 and 0 <= row["auc_frame_difference"] <= 1
        assert row["frame_auc_model"] is None  # no onset is known in a labelled video
    per_clip = read_csv(tmp_path / "anomaly/clips.csv")
    assert {row["key"].split("@")[0]: row["anomaly"] for row in per_clip} == {
        "blink/clip3.mp4": "blink", "normal/clip0.mp4": "normal", "normal/clip2.mp4": "normal",
        "stutter_1.mp4": "stutter"}
    assert "ROC AUC blink" in capsys.readouterr().out
    assert "labelled anomalous by name" in (tmp_path / "reports/anomaly.md").read_text()


def test_frame_auc_ranks_each_onset_frame_not_the_frames_after_it():
    from vgan.anomaly.anomaly_stage import onset_frames, rank_by_type

    anomalous = np.array([[0, 0, 1, 1, 1], [0, 0, 0, 1, 1], [0, 0, 0, 0, 0]], bool)
    assert onset_frames(anomalous).astype(int).tolist() == [[0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 0]]
    kinds = np.array(["freeze", "freeze", "normal"], dtype=object)
    frames = np.array([[np.nan, 0.1, 0.9, 0.1, 0.1], [np.nan, 0.1, 0.1, 0.8, 0.1], [np.nan, 0.2, 0.2, 0.2, 0.2]])
    scores = {name: frames for name in ("model", "discriminator", "frame_difference")}
    clips = {name: np.nanmax(frames, axis=1) for name in scores}
    row = rank_by_type(kinds, clips, scores, anomalous, ["freeze"])["freeze"]
    assert row["frame_auc_model"] == 1.0  # the onsets score highest; the frames after them (0.1) do not count
    assert row["auc_model"] == 1.0


@pytest.mark.parametrize("setup, overrides, message", [
    ("vgan", [], "is a 'vgan' generator, not a predictor"),
    ("predictor", ["anomaly.input=folder", "anomaly.folder={tmp}/empty"], "no video files found under"),
    ("predictor", ["anomaly.input=folder"], "anomaly.folder is not set"),
    ("predictor", ["anomaly.split=test"], "has no split 'test'"),
    ("predictor", ["anomaly.generator={tmp}/missing.pt"], "does not exist"),
])
def test_bad_input_is_one_line(tmp_path, monkeypatch, capsys, setup, overrides, message):
    _, generator = tiny_setup(tmp_path, *(PREDICTOR if setup == "predictor" else ()))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty/readme.txt").write_text("no videos here")
    monkeypatch.chdir(tmp_path)
    sets = [f"--set=anomaly.generator={generator}", f"--set=shards.out_dir={tmp_path / 'shards'}",
            *(f"--set={item.format(tmp=tmp_path)}" for item in overrides)]
    assert main(["anomaly", "--params", str(tmp_path / "params.yaml"), *sets]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "metrics").exists() and not (tmp_path / "anomaly").exists()
