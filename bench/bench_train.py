"""Training-step speed: the vgan Trainer's step vs a plain PyTorch loop, for the default and two zoo models.

    .venv/bin/python bench/bench_train.py                  # CPU: params.yaml's sizes (the default, vgan, mocogan)
    .venv/bin/python bench/bench_train.py --device cuda --batch 256 --out bench/results/train_cuda.json
    .venv/bin/python bench/bench_train.py --tiny           # seconds: the smoke test's size

Each case (model at params.yaml's clip size, width and batch unless overridden), in one process on one device:
  (a) plain loop: the loop of the DCGAN/MoCoGAN reference code, fp32 (TF32 on CUDA), default memory format, no
      compile: generate without grad, D on real then on fake, generate again with grad, G through D, two
      Adam steps;
  (b) vgan: ``Trainer.train_step`` (``vgan/train/steps.py``: one generator forward per step, real and fake in one
      discriminator forward where it has no batch-coupled layer, EMA, gradient norms and the NaN guard; bf16
      autocast and channels_last_3d on CUDA).
Same models (same initial weights), batch, objective (train.loss) and optimiser settings. After ``--warmup``
untimed steps each side runs ``--steps`` timed steps ``--repeats`` times, the two sides alternating, and the median
round counts. videos/s = real clips drawn per second of step time (batch x n_critic per step), the Trainer's own
definition (``metrics/train.json``). Also reported: MFU = model FLOPs per step (torch.utils.flop_counter) x steps/s
/ the dense matmul rate measured in this run, and the fraction of step time the Trainer waits for the WebDataset
loader reading shards written here. Timings are ratios inside one run; absolute numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import itertools
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from vgan.train.losses import discriminator_loss, generator_loss  # noqa: E402
from vgan.train.steps import at_times  # noqa: E402
from vgan.models.zoo import build_model  # noqa: E402
from vgan.params import Params, load_params  # noqa: E402

from quality import git_commit, public_command  # noqa: E402  (bench/, beside this file)
from vgan.train.loop import NullLogger, Trainer  # noqa: E402

CASES = ("default", "vgan", "mocogan")  # "default" = params.yaml's model.name


def params_for(model: str, args, device: str, workers: int, shards: str = "unused") -> Params:
    """params.yaml with the case's model and the benchmark's sizes; bookkeeping that would write files is off."""
    # R1 off: the plain loop has none (same objective both sides), and the FLOP counter cannot follow its
    # double backward (autograd.grad)
    overrides = ["train.r1_weight=0", f"train.device={device}", f"train.num_workers={workers}",
                 f"train.compile={str(args.compile).lower()}", "train.log_every=1000000", "train.sample_every=1000000", "train.checkpoint_every=1000000",
                 f"shards.out_dir={shards}", "train.shuffle_buffer=64", f"model.channels={args.channels}"]
    if model != "default":
        overrides.append(f"model.name={model}")
    for key in ("batch", "resolution", "frames", "width"):
        if getattr(args, key) is not None:
            overrides.append(f"{'train.batch_size' if key == 'batch' else 'model.' + key}={getattr(args, key)}")
    return load_params(REPO / "params.yaml", overrides)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_tflops(device: torch.device, dtype: torch.dtype) -> float:
    """Dense matmul rate of this device in this dtype (best of a few timed runs)."""
    size = 8192 if device.type == "cuda" else 1024
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    synchronize(device)
    best = float("inf")
    repeats = 20 if device.type == "cuda" else 5
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        synchronize(device)
        best = min(best, (time.perf_counter() - start) / repeats)
    return 2 * size ** 3 / best / 1e12


class PlainStep:
    """The plain loop: D on real and on fake (generated without grad), then a fresh generation for G."""

    def __init__(self, params: Params, device: torch.device):
        torch.manual_seed(params.train.seed)
        self.G, discriminators = build_model(params.model)
        self.G.to(device)
        self.Ds = torch.nn.ModuleDict(discriminators).to(device)
        cfg = params.train
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g, betas=cfg.betas)
        self.opt_d = torch.optim.Adam(self.Ds.parameters(), lr=cfg.lr_d, betas=cfg.betas)
        self.loss, self.device = cfg.loss, device

    def __call__(self, real: torch.Tensor, labels) -> None:
        batch = real.shape[0]
        with torch.no_grad():
            fake = self.G.views(self.G.sample_z(batch, device=self.device), labels)
        real_views = self.G.real_views(real)
        loss_d = sum(discriminator_loss(self.loss, at_times(D, real_views)(real_views[D.view], labels),
                                        at_times(D, fake)(fake[D.view], labels))
                     for D in self.Ds.values())
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        self.Ds.requires_grad_(False)
        views = self.G.views(self.G.sample_z(batch, device=self.device), labels)
        loss_g = sum(generator_loss(self.loss, at_times(D, views)(views[D.view], labels)) for D in self.Ds.values())
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        self.Ds.requires_grad_(True)


class TrainerStep:
    """``Trainer.train_step`` on one fixed batch (what ``Trainer.run`` does per step, without the loader)."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer

    def __call__(self, real: torch.Tensor, labels) -> None:
        self.trainer.train_step(itertools.repeat((real, labels)))


def flops_per_step(step, real, labels) -> int:
    with FlopCounterMode(display=False) as counter:
        step(real, labels)
    return int(counter.get_total_flops())


def timed_round(step, real, labels, device: torch.device, steps: int) -> float:
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step(real, labels)
    synchronize(device)
    return (time.perf_counter() - start) / steps


def measure_pair(sides: dict, real, labels, device: torch.device, warmup: int, steps: int, repeats: int) -> dict:
    """Warm each side up, then alternate timed rounds (so a noisy neighbour hits both alike); the median counts."""
    rounds = {name: [] for name in sides}
    for name, step in sides.items():
        for _ in range(warmup):
            step(real, labels)
    for _ in range(repeats):
        for name, step in sides.items():
            rounds[name].append(timed_round(step, real, labels, device, steps))
    results = {}
    for name, times in rounds.items():
        seconds = statistics.median(times)
        results[name] = {"step_ms": round(seconds * 1e3, 3), "videos_per_s": round(real.shape[0] / seconds, 2),
                         "rounds_ms": [round(t * 1e3, 3) for t in times]}
    return results


def write_shards(folder: Path, frames: int, resolution: int, clips: int, per_shard: int, grey: bool) -> None:
    """Random uint8 clips in the shards stage's format (frames.npy, cls, json) and its manifest; ``grey``: equal
    channels, as the moving digits (a 1-channel model reads them)."""
    import io

    import webdataset as wds

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = []
    for shard in range(-(-clips // per_shard)):
        name = f"train-{shard:06d}.tar"
        with wds.TarWriter(str(folder / name)) as writer:
            for index in range(min(per_shard, clips - shard * per_shard)):
                buffer = io.BytesIO()
                clip = rng.integers(0, 256, (frames, resolution, resolution, 1 if grey else 3), dtype=np.uint8)
                np.save(buffer, np.repeat(clip, 3, axis=-1) if grey else clip)
                writer.write({"__key__": f"bench{shard:04d}_{index:05d}", "frames.npy": buffer.getvalue(),
                              "cls": str(index % 2).encode(), "json": json.dumps({"source": "bench"}).encode()})
        names.append(name)
    manifest = {"clip_shape": [frames, resolution, resolution, 3], "grey": grey, "counts": {"train": clips},
                "label_names": ["a", "b"], "shards": {"train": names}}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def loader_data_wait(params: Params, trainer: Trainer, warmup: int, steps: int) -> dict:
    """Trainer steps fed by the WebDataset loader: the fraction of step time spent waiting for a batch."""
    from vgan.train.run import shard_batches

    make_batches = shard_batches(params)
    device = trainer.device

    def endless():
        epoch = 0
        while True:
            yield from make_batches(epoch, params.train.seed)
            epoch += 1

    timer = {"data_wait": 0.0}

    def device_batches():
        for batch in endless():
            tick = time.perf_counter()
            batch = trainer._to_device(*batch)
            timer["data_wait"] += time.perf_counter() - tick
            yield batch

    batches = device_batches()
    for _ in range(warmup):  # starts the workers and fills their prefetch queues
        trainer.train_step(batches)
    synchronize(device)
    timer["data_wait"] = 0.0
    started = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(batches)
    synchronize(device)
    total = time.perf_counter() - started
    return {"workers": params.train.num_workers, "steps": steps,
            "data_wait_fraction": round(timer["data_wait"] / total, 4),
            "videos_per_s": round(params.train.batch_size * steps / total, 2)}


def run_case(model: str, args, device: torch.device, peak_tflops: float, shards_root: Path) -> dict:
    params = params_for(model, args, device.type, args.workers, str(shards_root / model))
    shape = params.model
    generator = torch.Generator().manual_seed(0)
    batch = params.train.batch_size
    real_cpu = torch.rand(batch, shape.channels, shape.frames, shape.resolution, shape.resolution,
                          generator=generator) * 2 - 1
    labels_cpu = torch.randint(0, max(shape.num_classes, 1), (batch,), generator=generator)

    if device.type == "cuda":  # the plain loop: fp32 + TF32, default memory format, eager
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    result = {"model": shape.name if model == "default" else model, "case": model, "loss": params.train.loss,
              "clip": [shape.frames, shape.resolution, shape.resolution], "channels": shape.channels,
              "width": shape.width, "batch": batch}
    with tempfile.TemporaryDirectory() as scratch:
        plain = PlainStep(params, device)
        trainer = Trainer(params, batches=lambda epoch, seed: [], logger=NullLogger(), out_root=scratch)
        real, labels = trainer._to_device(real_cpu, labels_cpu)
        sides = {"plain": plain, "vgan": TrainerStep(trainer)}
        timings = measure_pair(sides, real, labels, device, args.warmup, args.steps, args.repeats)
        for side, step in sides.items():
            result[side] = timings[side]
            result[side]["flops_per_step"] = flops_per_step(step, real, labels)
            steps_per_s = 1e3 / result[side]["step_ms"]
            result[side]["mfu"] = round(result[side]["flops_per_step"] * steps_per_s / (peak_tflops * 1e12), 4)
            result[side]["peak_memory_gib"] = (round(torch.cuda.max_memory_allocated(device) / 2 ** 30, 3)
                                               if device.type == "cuda" else None)
        result["vgan"]["precision"] = "bf16 autocast" if trainer.use_bf16 else "fp32"
        result["vgan"]["channels_last_3d"] = device.type == "cuda" and params.train.channels_last
        result["vgan"]["compile"] = args.compile
        result["ratio"] = round(result["vgan"]["videos_per_s"] / result["plain"]["videos_per_s"], 3)
        if args.loader_steps and importlib.util.find_spec("webdataset") is None:
            result["loader"] = {"skipped": "webdataset is not installed (pip install webdataset==1.0.2)"}
        elif args.loader_steps:
            clips = max(batch * 4, min(batch * (args.loader_steps + args.warmup + 2), 2048))
            write_shards(shards_root / model, shape.frames, shape.resolution, clips, per_shard=max(batch, 64),
                         grey=shape.channels == 1)
            result["loader"] = loader_data_wait(params, trainer, args.warmup, args.loader_steps)
    return result


def print_table(report: dict) -> None:
    head = (f"{'case':8} {'model':11} {'clip':>8} {'batch':>5} | {'plain videos/s':>14} {'vgan videos/s':>13} "
            f"{'ratio':>6} | {'plain MFU':>9} {'vgan MFU':>8} | {'data wait':>9}")
    print(f"device: {report['device']['name']}  matmul rate ({report['matmul_dtype']}): "
          f"{report['matmul_tflops']:.2f} TFLOP/s; median of {report['settings']['repeats']} alternating rounds of "
          f"{report['settings']['steps']} steps")
    print(head)
    print("-" * len(head))
    for case in report["cases"]:
        plain, ours = case["plain"], case["vgan"]
        wait = f"{case['loader']['data_wait_fraction']:.1%}" if "data_wait_fraction" in case.get("loader", {}) else "-"
        clip = "x".join(str(v) for v in case["clip"])
        print(f"{case['case']:8} {case['model']:11} {clip:>8} {case['batch']:>5} | {plain['videos_per_s']:>14.1f} "
              f"{ours['videos_per_s']:>13.1f} {case['ratio']:>6.2f} | {plain['mfu']:>9.1%} {ours['mfu']:>8.1%} | "
              f"{wait:>9}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--models", nargs="+", default=list(CASES), help="cases: default (params.yaml's) or names")
    parser.add_argument("--batch", type=int, default=None, help="default: params.yaml's train.batch_size")
    parser.add_argument("--resolution", type=int, default=None, help="default: params.yaml's model.resolution")
    parser.add_argument("--frames", type=int, default=None, help="default: params.yaml's model.frames")
    parser.add_argument("--width", type=int, default=None, help="default: params.yaml's model.width")
    parser.add_argument("--channels", type=int, choices=(1, 3), default=1,
                        help="model.channels (default 1: what auto gives on the default, grey, moving digits)")
    parser.add_argument("--steps", type=int, default=50, help="timed steps per round")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per side (alternating); the median counts")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first, per side")
    parser.add_argument("--loader-steps", type=int, default=20, help="steps fed from shards; 0 = skip")
    parser.add_argument("--workers", type=int, default=None, help="loader workers (default: params.yaml's)")
    parser.add_argument("--compile", action="store_true", help="Trainer side with train.compile=true")
    parser.add_argument("--tiny", action="store_true", help="8 frames of 16x16, width 8, batch 2: a smoke run")
    parser.add_argument("--out", type=Path, default=None, help="default: bench/results/train_<device>.json")
    args = parser.parse_args(argv)

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    if args.workers is None:
        args.workers = load_params(REPO / "params.yaml").train.num_workers
    if args.tiny:
        args.resolution, args.width, args.frames, args.batch = 16, 8, 8, 2
        args.steps, args.warmup, args.loader_steps, args.workers = 2, 1, 2, 0
        args.repeats = min(args.repeats, 2)
        torch.set_num_threads(1)  # tiny ops gain nothing from threads, and spinning ones stall a busy machine

    dtype = torch.bfloat16 if on_gpu else torch.float32
    peak = matmul_tflops(device, dtype)
    report = {
        "command": public_command("bench/bench_train.py", sys.argv[1:]),
        "commit": git_commit(), "date": time.strftime("%Y-%m-%d"),
        "device": {"type": device.type, "name": torch.cuda.get_device_name(device) if on_gpu else platform.processor()
                   or platform.machine(), "torch": torch.__version__, "threads": torch.get_num_threads()},
        "matmul_dtype": str(dtype).replace("torch.", ""), "matmul_tflops": round(peak, 3),
        "videos_per_s": "real training clips drawn per second of step time (batch x n_critic per step)",
        "settings": {k: getattr(args, k) for k in ("batch", "resolution", "frames", "width", "channels", "steps",
                                                    "repeats", "warmup", "loader_steps", "workers", "compile", "tiny")},
        "cases": [],
    }
    with tempfile.TemporaryDirectory() as shards_root:
        for model in args.models:
            report["cases"].append(run_case(model, args, device, peak, Path(shards_root)))
    print_table(report)
    out = args.out or REPO / "bench" / "results" / f"train_{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out.name}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
