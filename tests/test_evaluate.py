"""`vgan evaluate`: prediction metrics for the predictor, external protocols' refusal, JSON-safe values."""

from __future__ import annotations

import contextlib
import json
import math

import numpy as np
import pytest
import torch

from test_sample import LABEL_NAMES, tiny_setup
from vgan.errors import MissingWeightsError


class RecordingLogger:
    def __init__(self):
        self.metrics, self.steps, self.artifacts = {}, [], []

    def log_metrics(self, values, step=None):
        if step is None:
            self.metrics.update(values)
        else:
            self.steps.append((step, values))

    def log_artifact(self, path, artifact_path=None):
        self.artifacts.append(str(path))


@pytest.fixture
def logger(monkeypatch):
    from vgan import tracking

    recording = RecordingLogger()
    monkeypatch.setattr(tracking, "stage_run", lambda params, stage: contextlib.nullcontext(recording))
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
    from vgan.evaluate import evaluate
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
    assert set(metrics["baselines"]) == {"model", "real_vs_real", "static", "shuffled", "noise"}
    assert logger.metrics["psnr"] == metrics["psnr"] and [step for step, _ in logger.steps] == [1, 2, 3, 4, 5]
    report = (tmp_path / "reports/evaluation.md").read_text()
    assert "| copy_last_frame |" in report and "| real_vs_real |" in report and "capped at 100 dB" in report
    for kind in ("contact_sheet.png", "interp_slerp.gif", "loop12f.gif", "long16f.gif", "predict_grid.gif"):
        assert f"predictor_step7_seed0_{kind})" in report, kind


def test_identical_frames_give_the_capped_psnr_and_non_finite_values_become_null():
    from vgan.evaluate import json_safe, prediction_scores

    clips = torch.rand(2, 3, 4, 16, 16) * 2 - 1
    scores = prediction_scores(clips, clips.clone(), psnr_cap_db=100.0)
    assert scores["psnr"] == 100.0 and scores["psnr_per_step"] == [100.0] * 4 and np.isclose(scores["ssim"], 1.0)
    safe = json_safe({"a": float("inf"), "b": [np.float64("nan"), np.float32(1.5)], "c": {"d": np.int64(3)}})
    assert json.loads(json.dumps(safe, allow_nan=False)) == {"a": None, "b": [None, 1.5], "c": {"d": 3}}


def test_protocol_without_weights_refuses_in_one_line_and_writes_nothing(tmp_path, monkeypatch, logger, capsys):
    from vgan.cli import main
    from vgan.evaluate import evaluate

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
    from vgan.errors import ParamsError
    from vgan.params import load_params

    with pytest.raises(ParamsError, match="unknown protocol 'fvd16'.*fvd2048_16f"):
        load_params(write_tiny_params(tmp_path / "params.yaml"), ["evaluate.protocols=[fvd16]"])


class ColourStats(torch.nn.Module):
    """A stand-in for StyleGAN-V's I3D TorchScript: same call signature, cheap features."""

    def forward(self, videos: torch.Tensor, rescale: bool, resize: bool, return_features: bool) -> torch.Tensor:
        clips = videos.float()
        return torch.cat([clips.mean(dim=(2, 3, 4)), clips.std(dim=(2, 3, 4))], 1)


def test_protocol_with_pinned_weights_reports_fvd_and_kvd_and_caches_real_features(tmp_path, monkeypatch, logger):
    from vgan.evaluate import evaluate
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
