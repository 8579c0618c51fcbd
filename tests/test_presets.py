"""Presets (`--set model.preset=cpu|paper`): what they set, what wins over them, and how `vgan models` shows them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vgan.models.presets import RECIPE, presets_of
from vgan.models.zoo import ARCHITECTURES
from vgan.params import load_params
from vgan.util.errors import ParamsError

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params.yaml"
GENERATION = [name for name in ARCHITECTURES if presets_of(name) is not None]


def test_every_generation_architecture_has_both_presets_and_the_tasks_none():
    assert set(GENERATION) == {"vgan", "tgan", "mocogan", "dvdgan", "hrvgan", "motionshape", "progressive",
                               "stylegan_v"}
    for name in ("predictor", "vsr", "interp", "inpaint"):
        with pytest.raises(ParamsError, match=f"{name} has no presets"):
            load_params(PARAMS, [f"model.name={name}", "model.preset=cpu"])


@pytest.mark.parametrize("name", GENERATION)
def test_each_preset_gives_valid_params_with_a_clip_size_the_shards_agree_with(name):
    cpu = load_params(PARAMS, [f"model.name={name}", "model.preset=cpu"])
    assert (cpu.model.resolution, cpu.model.frames) == (32, 16)  # the default shards' clips
    assert cpu.train.steps >= 1500 and cpu.model.spectral_norm and cpu.train.loss == "hinge"
    paper = load_params(PARAMS, [f"model.name={name}", "model.preset=paper"])
    assert paper.model.resolution == paper.shards.size >= 64
    assert paper.model.frames == paper.shards.clip_frames <= paper.data.frames
    assert paper.model.preset == "paper"


def test_the_preset_replaces_the_files_values_and_set_replaces_the_presets(tmp_path):
    params_file = tmp_path / "params.yaml"
    params_file.write_text("model:\n  name: vgan\n  width: 8\n  preset: cpu\ntrain:\n  loss: bce\n  steps: 7\n")
    params = load_params(params_file)
    assert (params.model.width, params.train.loss, params.train.steps) == (32, "hinge", 3500)
    assert params.model.image_discriminator == 4
    params = load_params(params_file, ["train.steps=3000", "model.image_discriminator=0"])
    assert (params.train.steps, params.model.image_discriminator, params.model.width) == (3000, 0, 32)
    # a preset chosen on the command line applies to the architecture chosen there
    params = load_params(params_file, ["model.name=vgan", "model.preset=paper"])
    assert (params.model.resolution, params.train.loss, params.train.lr_g) == (64, "bce", 2e-4)
    # without a preset, the file's values stand
    params = load_params(params_file, ["model.preset=null"])
    assert (params.model.width, params.train.loss, params.train.steps) == (8, "bce", 7)


def test_an_unknown_preset_is_one_line_naming_the_choices():
    with pytest.raises(ParamsError, match=r"model.preset = 'gpu': expected one of cpu, paper"):
        load_params(PARAMS, ["model.name=vgan", "model.preset=gpu"])


def test_vgan_models_lists_both_presets_of_each_architecture_with_why(tmp_path):
    done = subprocess.run([sys.executable, "-m", "vgan.cli", "models", "--params", str(PARAMS)], cwd=tmp_path, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    text = done.stdout[done.stdout.index("Presets"):]
    assert "recipe = " + " ".join(RECIPE) in text
    for name in GENERATION:
        assert f"\n{name:<12} cpu " in text
    assert text.count(" paper  ") == len(GENERATION)
    assert "Vondrick et al. 2016: 64x64 clips of 32 frames" in text and "why: " in text
