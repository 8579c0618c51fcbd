"""`vgan evaluate`: prediction metrics for the predictor, external protocols' refusal, JSON-safe values."""

from __future__ import annotations

import contextlib
import json
import math

import numpy as np
import pytest
import torch
from test_sample import LABEL_NAMES, tiny_setup

from vgan.util.errors import MissingWeightsError


class RecordingLogger:
    def __init__(self):
        self.metrics, self.steps, self.artifacts, self.params = {}, [], [], {}

    def log_params(self, values):
        self.params.update(values)

    def log_metrics(self, values, step=None):
        if step is None:
            self.metrics.update(values)
        else:
            self.steps.append((step, values))

    def log_artifact(self, path, artifact_path=None):
        self.artifacts.append(str(path))


@pytest.fixture
def logger(monkeypatch):
    from vgan.tracking import runs

    recording = RecordingLogger()
    monkeypatch.setattr(runs, "stage_run", lambda params, stage: contextlib.nullcontext(recording))
    return recording


def evaluation_setup(tmp_path, monkeypatch, *overrides):
    from vgan.metrics.evaluator import EvaluatorNet, save_evaluator

    params, generator = tiny_setup(tmp_path, f"evaluate.evaluator_path={tmp_path / 'evaluator.pt'}", *overrides)
    torch.manual_seed(0)
    save_evaluator(EvaluatorNet(len(LABEL_NAMES), width=4).eval(), tmp_path / "evaluator.pt",
                   {"val_accuracy": 0.5, "label_names": LABEL_NAMES})
    monkeypatch.chdir(tmp_path)  # metrics/ and reports/ are written relative to the repository root
    return params, generator


def test_predictor_gets_finite_psnr_and_ssim_per_future_step(tmp_path, monkeypatch, logger):
    from vgan.evaluate.evaluate_stage import evaluate
    from vgan.sample import write_samples

    params, generator = evaluation_setup(tmp_path, monkeypatch, "model.name=predictor",
                                         "model.predictor.context_frames=3", "evaluate.num_samples=8")
    write_samples(params, generator)
    metrics = evaluate(params, generator)
    assert json.loads((tmp_path / "metrics/evaluate.json").read_text()) == metrics
    for key in ("psnr", "ssim", "fd_evaluator", "kvd_evaluator", "fd_motion"):
        assert math.isfinite(metrics[key]), key
    assert metrics["prediction_context_frames"] == 3 and metrics["prediction_future_frames"] == 5
    assert len(metrics["psnr_per_step"]) == len(metrics["ssim_per_step"]) == 5
    assert all(math.isfinite(value) for value in metrics["psnr_per_step"] + metrics["ssim_per_step"])
    assert np.isclose(np.mean(metrics["psnr_per_step"]), metrics["psnr"], rtol=1e-4)
    assert -1 <= metrics["ssim"] <= 1 and metrics["psnr_cap_db"] == 100
    assert set(metrics["prediction_baselines"]) == {"model", "copy_last_frame"}
    table = json.loads((tmp_path / "metrics/evaluate_baselines.json").read_text())
    assert set(table["scores"]) == {"model", "real_vs_real", "static", "shuffled", "noise"}
    assert metrics["num_clips"] == table["num_clips"] == metrics["num_prediction_clips"] == 8
    assert logger.metrics["psnr"] == metrics["psnr"] and [step for step, _ in logger.steps] == [1, 2, 3, 4, 5]
    report = (tmp_path / "reports/evaluation.md").read_text()
    assert "| copy_last_frame |" in report and "| real_vs_real |" in report and "capped at 100 dB" in report
    for kind in ("contact_sheet.png", "interp_slerp.gif", "loop12f.gif", "long16f.gif", "predict_grid.gif"):
        assert f"predictor_step7_seed0_{kind})" in report, kind


def test_identical_frames_give_the_capped_psnr_and_non_finite_values_become_null():
    from vgan.evaluate.evaluate_stage import json_safe
    from vgan.metrics.tasks import prediction_scores

    clips = torch.rand(2, 3, 4, 16, 16) * 2 - 1
    scores = prediction_scores(clips, clips.clone(), psnr_cap_db=100.0)
    assert scores["psnr"] == 100.0 and scores["psnr_per_step"] == [100.0] * 4 and np.isclose(scores["ssim"], 1.0)
    safe = json_safe({"a": float("inf"), "b": [np.float64("nan"), np.float32(1.5)], "c": {"d": np.int64(3)}})
    assert json.loads(json.dumps(safe, allow_nan=False)) == {"a": None, "b": [None, 1.5], "c": {"d": 3}}


def test_protocol_without_weights_refuses_in_one_line_and_writes_nothing(tmp_path, monkeypatch, logger, capsys):
    from vgan.cli import main
    from vgan.evaluate.evaluate_stage import evaluate

    params, generator = evaluation_setup(tmp_path, monkeypatch, "evaluate.protocols=[fvd2048_16f]")
    with pytest.raises(MissingWeightsError) as refused:
        evaluate(params, generator)
    message = str(refused.value)
    assert "\n" not in message and "evaluate.i3d_weights=PATH" in message and "never downloaded" in message
    assert not (tmp_path / "metrics").exists() and not (tmp_path / "reports").exists()
    code = main(["evaluate", "--params", str(tmp_path / "params.yaml"), "--generator", str(generator),
                 "--set", f"evaluate.evaluator_path={tmp_path / 'evaluator.pt'}",
                 "--set", f"shards.out_dir={tmp_path / 'shards'}",
                 "--set", "evaluate.protocols=[fid_frames2048]"])
    stderr = capsys.readouterr().err
    assert code == 1 and stderr.count("\n") == 1 and "evaluate.inception_weights=PATH" in stderr


def test_unknown_protocol_is_a_params_error(tmp_path):
    from conftest import write_tiny_params

    from vgan.params import load_params
    from vgan.util.errors import ParamsError

    with pytest.raises(ParamsError, match="unknown protocol 'fvd16'.*fvd2048_16f"):
        load_params(write_tiny_params(tmp_path / "params.yaml"), ["evaluate.protocols=[fvd16]"])


class ColourStats(torch.nn.Module):
    """A stand-in for StyleGAN-V's I3D TorchScript: same call signature, cheap features."""

    def forward(self, videos: torch.Tensor, rescale: bool, resize: bool, return_features: bool) -> torch.Tensor:
        clips = videos.float()
        return torch.cat([clips.mean(dim=(2, 3, 4)), clips.std(dim=(2, 3, 4))], 1)


def test_protocol_with_pinned_weights_reports_fvd_and_kvd_and_caches_real_features(tmp_path, monkeypatch, logger):
    from vgan.evaluate.evaluate_stage import evaluate
    from vgan.metrics import protocols
    from vgan.metrics.weights import file_sha256

    tiny = protocols.Protocol("fvd16_8f", "i3d", num_real=16, num_generated=16, num_frames=8)
    monkeypatch.setitem(protocols.PROTOCOLS, tiny.name, tiny)
    weights = tmp_path / "i3d_torchscript.pt"
    torch.jit.script(ColourStats()).save(str(weights))
    params, generator = evaluation_setup(tmp_path, monkeypatch, "evaluate.protocols=[fvd16_8f]",
                                         f"evaluate.i3d_weights={weights}", f"evaluate.i3d_sha256={file_sha256(weights)}",
                                         f"evaluate.cache_dir={tmp_path / 'cache'}")
    metrics = evaluate(params, generator)
    assert math.isfinite(metrics["fvd16_8f"]) and metrics["fvd16_8f"] > 0 and math.isfinite(metrics["kvd16_8f"])
    assert logger.metrics["fvd16_8f"] == metrics["fvd16_8f"]
    assert len(list((tmp_path / "cache").glob("fvd16_8f-*.npy"))) == 1
    assert "| fvd16_8f |" in (tmp_path / "reports/evaluation.md").read_text()
    assert evaluate(params, generator)["fvd16_8f"] == metrics["fvd16_8f"]  # from the cache, same number


def test_model_and_baselines_are_scored_at_one_n_against_one_reference_with_intervals(tmp_path, monkeypatch, logger,
                                                                                        capsys):
    from test_sample import write_test_shards

    from vgan.cli import main

    params, generator = evaluation_setup(tmp_path, monkeypatch)
    write_test_shards(tmp_path / "shards", train=24, val=12)
    code = main(["evaluate", "--params", str(tmp_path / "params.yaml"), "--generator", str(generator),
                 "--set", f"evaluate.evaluator_path={tmp_path / 'evaluator.pt'}",
                 "--set", f"shards.out_dir={tmp_path / 'shards'}", "--set", "evaluate.num_samples=64"])
    assert code == 0
    metrics = json.loads((tmp_path / "metrics/evaluate.json").read_text())
    table = json.loads((tmp_path / "metrics/evaluate_baselines.json").read_text())
    # n = min(num_samples 64, 12 val clips, 24 train clips); every set has n clips
    assert metrics["num_clips"] == table["num_clips"] == 12 and table["reference"].startswith("12 real train clips")
    # the headline stays flat and small for `dvc metrics show`; the table lives in its own file
    assert all(isinstance(value, (int, float)) for value in metrics.values()) and len(metrics) <= 14
    assert set(table["scores"]) == {"model", "real_vs_real", "static", "shuffled", "noise"}
    for name, row in table["scores"].items():
        assert 0 <= row["fd_evaluator_ci_low"] <= row["fd_evaluator"] <= row["fd_evaluator_ci_high"], name
    model = table["scores"]["model"]
    assert metrics["fd_evaluator"] == model["fd_evaluator"]
    assert (metrics["fd_evaluator_ci_low"], metrics["fd_evaluator_ci_high"]) == (
        model["fd_evaluator_ci_low"], model["fd_evaluator_ci_high"])
    for name in ("real_vs_real", "static", "shuffled"):
        assert metrics[f"baseline_{name}_fd_evaluator"] == table["scores"][name]["fd_evaluator"]
    assert table["standing"].startswith("At n = 12 clips per set (95% bootstrap intervals), the model (fd_evaluator ")
    assert table["standing"] in (tmp_path / "reports/evaluation.md").read_text()
    assert capsys.readouterr().out.splitlines()[-1] == f"evaluate: {table['standing']}"
    assert logger.metrics["baselines"]["static"]["fd_evaluator"] == table["scores"]["static"]["fd_evaluator"]
    report = (tmp_path / "reports/evaluation.md").read_text()
    static = table["scores"]["static"]
    assert (f"| static | {static['fd_evaluator']:.4g} | {static['fd_evaluator_ci_low']:.4g}–"
            f"{static['fd_evaluator_ci_high']:.4g} |") in report

    smaller = main(["evaluate", "--params", str(tmp_path / "params.yaml"), "--generator", str(generator),
                    "--set", f"evaluate.evaluator_path={tmp_path / 'evaluator.pt'}",
                    "--set", f"shards.out_dir={tmp_path / 'shards'}", "--set", "evaluate.num_samples=5"])
    assert smaller == 0 and json.loads((tmp_path / "metrics/evaluate.json").read_text())["num_clips"] == 5


def test_a_seeded_subset_of_real_clips_is_random_but_repeatable(tmp_path, monkeypatch):
    from test_sample import write_test_shards

    from vgan.data.loader import real_clips

    params, _ = evaluation_setup(tmp_path, monkeypatch)
    write_test_shards(tmp_path / "shards", train=24, val=12)
    every, _ = real_clips(params.shards.out_dir, "train")
    first, _ = real_clips(params.shards.out_dir, "train", limit=6)
    picked, _ = real_clips(params.shards.out_dir, "train", limit=6, seed=3)
    again, _ = real_clips(params.shards.out_dir, "train", limit=6, seed=3)
    assert len(every) == 24 and torch.equal(first, every[:6])
    assert torch.equal(picked, again) and not torch.equal(picked, first)
    assert all(any(torch.equal(clip, other) for other in every) for clip in picked)


def test_too_few_clips_for_two_equal_sets_is_one_line(tmp_path, monkeypatch, logger):
    from test_sample import write_test_shards

    from vgan.evaluate.evaluate_stage import evaluate
    from vgan.util.errors import DataError

    params, generator = evaluation_setup(tmp_path, monkeypatch)
    write_test_shards(tmp_path / "shards", train=16, val=1)
    with pytest.raises(DataError, match=r"n = min\(evaluate.num_samples, val clips, train clips\) = 1; .*val=1"):
        evaluate(params, generator)
    assert not (tmp_path / "metrics").exists()
