"""Training-step speed: a reference-style step vs the vgan Trainer's step, MFU, loader data wait.

    .venv/bin/python bench/bench_train.py                  # CUDA when present, else CPU (small batch)
    .venv/bin/python bench/bench_train.py --device cuda --batch 256 --out bench/results/train_h100.json
    .venv/bin/python bench/bench_train.py --tiny           # seconds: the smoke test's size

For VGAN at 32x64x64 and MoCoGAN at 16x64x64, in one process on one device:
  (a) reference: fp32 weights and activations, TF32 convolutions/matmuls on CUDA, default memory format,
      no compile, a plain D step + G step with the paper objective (as the original repositories run);
  (b) vgan: the Trainer's own ``discriminator_step`` + ``generator_step`` (bf16 autocast and
      channels_last_3d on CUDA, EMA, gradient norms, NaN guard; fp32 on CPU).
Both get the same models, batch and optimiser. Reported: videos/s (batch / step time), their ratio,
peak GPU memory, MFU = model FLOPs per step (torch.utils.flop_counter) x steps/s / the dense matmul
rate measured in this run (bf16 on CUDA, fp32 on CPU, whichever the Trainer computes in), and the
fraction of step time the Trainer waits for the WebDataset loader reading shards written here.
Timings are ratios inside one run; absolute numbers depend on the (possibly shared) machine.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from vgan.losses import discriminator_loss, generator_loss  # noqa: E402
from vgan.models.registry import build_model  # noqa: E402
from vgan.params import Params  # noqa: E402
from vgan.train.loop import NullLogger, Trainer  # noqa: E402

CASES = (("vgan", 32), ("mocogan", 16))  # (model, frames) at 64x64


def params_for(model: str, frames: int, resolution: int, width: int, batch: int, device: str,
               compile_g: bool, workers: int, shards: str = "unused") -> Params:
    return Params.model_validate({
        "model": {"name": model, "frames": frames, "resolution": resolution, "width": width, "z_dim": 100},
        "shards": {"out_dir": shards},
        "train": {"batch_size": batch, "device": device, "compile": compile_g, "num_workers": workers,
                  "ema_decay": 0.999, "shuffle_buffer": 64, "log_every": 10 ** 6, "sample_every": 10 ** 6,
                  "checkpoint_every": 10 ** 6},
    })


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


class ReferenceStep:
    """A plain fp32 GAN step: D on real and fake, then G; TF32 allowed on CUDA, default memory format."""

    def __init__(self, params: Params, device: torch.device):
        torch.manual_seed(0)
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
            fake = self.G.views(self.G.sample_z(batch, device=self.device))
        real_views = self.G.real_views(real)
        loss_d = sum(discriminator_loss(self.loss, D(real_views[D.view]), D(fake[D.view])) for D in self.Ds.values())
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        self.Ds.requires_grad_(False)
        views = self.G.views(self.G.sample_z(batch, device=self.device))
        loss_g = sum(generator_loss(self.loss, D(views[D.view])) for D in self.Ds.values())
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        self.Ds.requires_grad_(True)


class TrainerStep:
    """The Trainer's own D step + G step (what ``Trainer.run`` does per step, without the data)."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer

    def __call__(self, real: torch.Tensor, labels) -> None:
        d = self.trainer.discriminator_step(real, labels)
        if d["finite"]:
            self.trainer.generator_step(real, labels)


def measure(step, real, labels, device: torch.device, warmup: int, steps: int, repeats: int) -> dict:
    """Time ``steps`` steps ``repeats`` times and keep the best round (the machine may be shared)."""
    for _ in range(warmup):
        step(real, labels)
    synchronize(device)
    with FlopCounterMode(display=False) as counter:
        step(real, labels)
    flops = counter.get_total_flops()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(steps):
            step(real, labels)
        synchronize(device)
        seconds = min(seconds, (time.perf_counter() - start) / steps)
    return {"step_ms": round(seconds * 1e3, 3), "videos_per_s": round(real.shape[0] / seconds, 2),
            "flops_per_step": int(flops),
            "peak_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2 ** 30, 3)
            if device.type == "cuda" else None}


def write_shards(folder: Path, frames: int, resolution: int, clips: int, per_shard: int) -> None:
    """Random uint8 clips in the shards stage's format (frames.npy, cls, json) and its manifest."""
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
                np.save(buffer, rng.integers(0, 256, (frames, resolution, resolution, 3), dtype=np.uint8))
                writer.write({"__key__": f"bench{shard:04d}_{index:05d}", "frames.npy": buffer.getvalue(),
                              "cls": str(index % 2).encode(), "json": json.dumps({"source": "bench"}).encode()})
        names.append(name)
    manifest = {"clip_shape": [frames, resolution, resolution, 3], "counts": {"train": clips},
                "label_names": ["a", "b"], "shards": {"train": names}}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def loader_data_wait(params: Params, trainer: Trainer, warmup: int, steps: int) -> dict:
    """Trainer steps fed by the WebDataset loader: the fraction of step time spent waiting for a batch."""
    from vgan.train.run import shard_batches

    make_batches = shard_batches(params)
    device = trainer.device
    step = TrainerStep(trainer)

    def endless():
        epoch = 0
        while True:
            yield from make_batches(epoch, params.train.seed)
            epoch += 1

    batches = endless()
    wait = busy = 0.0
    for index in range(warmup + steps):  # warm-up starts the workers and fills their prefetch queues
        tick = time.perf_counter()
        real, labels = trainer._to_device(*next(batches))
        tock = time.perf_counter()
        step(real, labels)
        synchronize(device)
        if index >= warmup:
            wait += tock - tick
            busy += time.perf_counter() - tock
    return {"workers": params.train.num_workers, "steps": steps,
            "data_wait_fraction": round(wait / (wait + busy), 4),
            "videos_per_s": round(params.train.batch_size * steps / (wait + busy), 2)}


def run_case(model: str, frames: int, args, device: torch.device, peak_tflops: float, shards_root: Path) -> dict:
    params = params_for(model, frames, args.resolution, args.width, args.batch, device.type, args.compile,
                        args.workers, str(shards_root / model))
    generator = torch.Generator().manual_seed(0)
    real_cpu = torch.rand(args.batch, 3, frames, args.resolution, args.resolution, generator=generator) * 2 - 1
    labels_cpu = torch.zeros(args.batch, dtype=torch.int64)

    if device.type == "cuda":  # the reference: fp32 + TF32, default memory format, eager
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    reference = ReferenceStep(params, device)
    real = real_cpu.to(device)
    result = {"model": model, "clip": [frames, args.resolution, args.resolution], "batch": args.batch}
    result["reference"] = measure(reference, real, None, device, args.warmup, args.steps, args.repeats)
    del reference
    if device.type == "cuda":
        torch.cuda.empty_cache()

    with tempfile.TemporaryDirectory() as scratch:
        trainer = Trainer(params, batches=lambda epoch, seed: [], logger=NullLogger(), out_root=scratch)
        real, labels = trainer._to_device(real_cpu, labels_cpu)
        result["vgan"] = measure(TrainerStep(trainer), real, labels, device, args.warmup, args.steps, args.repeats)
        result["vgan"]["precision"] = "bf16 autocast" if trainer.use_bf16 else "fp32"
        result["vgan"]["channels_last_3d"] = device.type == "cuda" and params.train.channels_last
        result["vgan"]["compile"] = args.compile
        for side in ("reference", "vgan"):
            steps_per_s = 1e3 / result[side]["step_ms"]
            result[side]["mfu"] = round(result[side]["flops_per_step"] * steps_per_s / (peak_tflops * 1e12), 4)
        result["speedup"] = round(result["vgan"]["videos_per_s"] / result["reference"]["videos_per_s"], 3)
        if args.loader_steps and importlib.util.find_spec("webdataset") is None:
            result["loader"] = {"skipped": "webdataset is not installed (pip install webdataset==1.0.2)"}
        elif args.loader_steps:
            clips = max(args.batch * 4, min(args.batch * (args.loader_steps + args.warmup + 2), 2048))
            write_shards(shards_root / model, frames, args.resolution, clips, per_shard=max(args.batch, 64))
            result["loader"] = loader_data_wait(params, trainer, args.warmup, args.loader_steps)
    return result


def print_table(report: dict) -> None:
    head = (f"{'model':8} {'clip':>9} {'batch':>5} | {'ref videos/s':>12} {'vgan videos/s':>13} {'ratio':>6} | "
            f"{'ref MFU':>7} {'vgan MFU':>8} | {'peak GiB ref/vgan':>17} | {'data wait':>9}")
    print(f"device: {report['device']['name']}  matmul rate ({report['matmul_dtype']}): "
          f"{report['matmul_tflops']:.2f} TFLOP/s")
    print(head)
    print("-" * len(head))
    for case in report["cases"]:
        ref, ours = case["reference"], case["vgan"]
        memory = ("-" if ref["peak_memory_gib"] is None
                  else f"{ref['peak_memory_gib']:.2f}/{ours['peak_memory_gib']:.2f}")
        wait = f"{case['loader']['data_wait_fraction']:.1%}" if "data_wait_fraction" in case.get("loader", {}) else "-"
        clip = "x".join(str(v) for v in case["clip"])
        print(f"{case['model']:8} {clip:>9} {case['batch']:>5} | {ref['videos_per_s']:>12.1f} "
              f"{ours['videos_per_s']:>13.1f} {case['speedup']:>6.2f} | {ref['mfu']:>7.1%} {ours['mfu']:>8.1%} | "
              f"{memory:>17} | {wait:>9}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--batch", type=int, default=None, help="default: 256 on CUDA, 2 on CPU")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--width", type=int, default=64, help="64 gives the papers' 512-256-128-64 channels")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 20 CUDA, 3 CPU)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per side; the best counts")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 5 CUDA, 1 CPU)")
    parser.add_argument("--loader-steps", type=int, default=None, help="steps fed from shards; 0 = skip")
    parser.add_argument("--workers", type=int, default=None, help="loader workers (default: 6 CUDA, 1 CPU)")
    parser.add_argument("--compile", action="store_true", help="Trainer side with train.compile=true")
    parser.add_argument("--tiny", action="store_true", help="8 frames of 16x16, width 8, batch 2: a smoke run")
    parser.add_argument("--out", type=Path, default=None, help="default: bench/results/train_<device>.json")
    args = parser.parse_args(argv)

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    defaults = {"batch": 256 if on_gpu else 2, "steps": 20 if on_gpu else 3, "warmup": 5 if on_gpu else 1,
                "loader_steps": 20 if on_gpu else 3, "workers": 6 if on_gpu else 1}
    if args.tiny:
        args.resolution, args.width = 16, 8
        defaults.update(batch=2, steps=2, warmup=1, loader_steps=2, workers=0)
        args.repeats = min(args.repeats, 2)
        torch.set_num_threads(1)  # tiny ops gain nothing from threads, and spinning ones stall a busy machine
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    cases = [(model, 8 if args.tiny else frames) for model, frames in CASES]

    dtype = torch.bfloat16 if on_gpu else torch.float32
    peak = matmul_tflops(device, dtype)
    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "device": {"type": device.type, "name": torch.cuda.get_device_name(device) if on_gpu else platform.processor()
                   or platform.machine(), "torch": torch.__version__, "threads": torch.get_num_threads()},
        "matmul_dtype": str(dtype).replace("torch.", ""), "matmul_tflops": round(peak, 3),
        "settings": {k: getattr(args, k) for k in ("batch", "resolution", "width", "steps", "repeats", "warmup",
                                                    "loader_steps", "workers", "compile", "tiny")},
        "cases": [],
    }
    with tempfile.TemporaryDirectory() as shards_root:
        for model, frames in cases:
            report["cases"].append(run_case(model, frames, args, device, peak, Path(shards_root)))
    print_table(report)
    out = args.out or REPO / "bench" / "results" / f"train_{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
