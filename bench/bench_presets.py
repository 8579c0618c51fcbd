"""Do the CPU presets fit? Each generation architecture's `model.preset=cpu` step, timed on this machine.

    .venv/bin/python bench/bench_presets.py                    # every architecture with presets, 2 threads
    .venv/bin/python bench/bench_presets.py --models vgan tgan --steps 10

For each architecture: params.yaml with ``--set model.name=<name> --set model.preset=cpu`` (grey clips, as the
default data), the Trainer's full step (``Trainer.train_step``: every discriminator, R1 on its lazy steps, EMA)
on a fixed random batch, ``--warmup`` untimed steps, then ``--steps`` timed steps; the projection is the preset's
``train.steps`` x the mean step time (where a preset pretrains an image generator, ``train.image_pretrain_steps`` x
that step's mean time plus the other steps x theirs), and the criterion (issue 26) is at least 1,500 steps in at most
10 minutes.
The loader, checkpoints and previews are not timed (`make run`'s trainer overlaps the loader with the step).
Writes bench/results/presets_cpu.json. Run it alone: another process on the cores slows every step.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import torch  # noqa: E402

from quality import git_commit, public_command  # noqa: E402  (bench/, beside this file)
from vgan.util.cpu import cpu_model  # noqa: E402
from vgan.models.presets import presets_of  # noqa: E402
from vgan.models.zoo import ARCHITECTURES  # noqa: E402
from vgan.params import load_params  # noqa: E402
from vgan.train.loop import NullLogger, Trainer  # noqa: E402

BUDGET_MINUTES, MIN_STEPS = 10.0, 1500
QUIET = ["train.device=cpu", "train.log_every=1000000", "train.sample_every=1000000",
         "train.checkpoint_every=1000000", "model.channels=1"]


def time_preset(name: str, warmup: int, steps: int, overrides: list[str]) -> dict:
    params = load_params(REPO / "params.yaml", [f"model.name={name}", "model.preset=cpu", *QUIET, *overrides])
    shape, batch = params.model, params.train.batch_size
    generator = torch.Generator().manual_seed(0)
    real = torch.rand(batch, 1, shape.frames, shape.resolution, shape.resolution, generator=generator) * 2 - 1
    labels = torch.randint(0, max(shape.num_classes, 1), (batch,), generator=generator)
    with tempfile.TemporaryDirectory() as scratch:
        trainer = Trainer(params, batches=lambda epoch, seed: [], logger=NullLogger(), out_root=scratch)
        data = itertools.repeat(trainer._to_device(real, labels))

        def step() -> None:
            trainer.train_step(data)
            trainer.state.step += 1  # as Trainer.run counts: lazy R1 runs on every r1_every-th step, not on each

        def mean_step_seconds(first_step: int) -> float:
            trainer.state.step = first_step
            for _ in range(warmup):
                step()
            started = time.perf_counter()
            for _ in range(steps):  # r1_every consecutive steps hold one lazy R1 step: its cost is in the mean
                step()
            return (time.perf_counter() - started) / steps

        pretrain = params.train.image_pretrain_steps  # its steps first: a frozen image generator stays frozen
        image_seconds = mean_step_seconds(0) if pretrain else 0.0
        seconds = mean_step_seconds(pretrain)
    minutes = (pretrain * image_seconds + (params.train.steps - pretrain) * seconds) / 60
    return {"model": name, "width": shape.width, "batch": batch, "clip": [shape.frames, shape.resolution,
                                                                           shape.resolution],
            "discriminators": sorted(trainer.Ds.keys()), "preset_steps": params.train.steps,
            "step_s": round(seconds, 4), "image_pretrain_steps": pretrain, "image_step_s": round(image_seconds, 4),
            "projected_minutes": round(minutes, 2),
            "fits": params.train.steps >= MIN_STEPS and minutes <= BUDGET_MINUTES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    generation = [name for name in ARCHITECTURES if presets_of(name) is not None]
    parser.add_argument("--models", nargs="+", default=generation, choices=generation)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=64, help="timed steps (64 = four lazy R1 periods; with 16, "
                        "one period, a preset's figure moved by a tenth from run to run)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="an override after the preset (repeatable), to try another size: --set model.width=24")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/presets_cpu.json")
    args = parser.parse_args()
    rows = []
    print(f"{'model':12s} {'width':>5s} {'batch':>5s} {'step s':>7s} {'steps':>6s} {'image pretrain':>19s} "
          f"{'minutes':>8s}  fits "
          f"(>= {MIN_STEPS} steps in <= {BUDGET_MINUTES:g} min)")
    for name in args.models:
        row = time_preset(name, args.warmup, args.steps, args.overrides)
        rows.append(row)
        pretrain = (f"{row['image_pretrain_steps']} x {row['image_step_s']:.3f} s" if row['image_pretrain_steps']
                    else "-")
        print(f"{name:12s} {row['width']:5d} {row['batch']:5d} {row['step_s']:7.3f} {row['preset_steps']:6d} "
              f"{pretrain:>19s} {row['projected_minutes']:8.2f}  {'yes' if row['fits'] else 'NO'}", flush=True)
    result = {"command": public_command("bench/bench_presets.py", sys.argv[1:]), "git_commit": git_commit(),
              "date": datetime.date.today().isoformat(), "device": "cpu", "cpu_model": cpu_model(),
              "cpu_count": os.cpu_count(),
              "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "platform": platform.machine(),
              "load_average_before": os.getloadavg()[0],
              "overrides": args.overrides, "criterion": f">= {MIN_STEPS} steps in <= {BUDGET_MINUTES:g} minutes of training steps",
              "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(args.out)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
