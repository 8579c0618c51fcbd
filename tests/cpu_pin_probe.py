"""A few training steps of the project's evaluator network on fixed random clips, pinned as the CLI pins the float
stages (vgan/util/cpu.py); prints one JSON line: the md5 of the weights, the vector ISA torch dispatched to, the threads.

    python tests/cpu_pin_probe.py                        # as `vgan evaluator` would run here
    VGAN_CPU_ISA=native ONEDNN_MAX_CPU_ISA=AVX2 python tests/cpu_pin_probe.py   # unpinned, one cap of its own

Small enough to run under an emulated CPU (qemu-x86_64 -cpu Haswell) in about a minute; it still goes through
oneDNN (Conv3d), MKL (Linear) and PyTorch's vectorised kernels (BatchNorm, pooling, AdamW)."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vgan.util.cpu import pin_cpu_math, pin_threads  # noqa: E402

isa = pin_cpu_math()  # before torch's first operation, as vgan.cli.main does

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from vgan.metrics.evaluator import EvaluatorNet  # noqa: E402

threads = pin_threads()
torch.manual_seed(0)
clips = torch.rand(4, 3, 8, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
labels = torch.tensor([0, 3, 7, 9])
net = EvaluatorNet(10, width=4)
optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
for _ in range(3):
    loss = F.cross_entropy(net(clips), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
digest = hashlib.md5()
for tensor in net.state_dict().values():
    digest.update(tensor.contiguous().numpy().tobytes())
print(json.dumps({"weights_md5": digest.hexdigest(), "pin": isa, "isa": torch.backends.cpu.get_cpu_capability(),
                  "threads": threads}))
