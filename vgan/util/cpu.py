"""The CPU math libraries' code paths and thread count: pinned on request (``VGAN_CPU_ISA=avx2``) so that the float
stages give the same bits on any Intel x86-64 CPU with AVX2 (README, "Reproducing the reference run").

PyTorch's CPU kernels come from three dispatchers, each of which takes the widest vector ISA the CPU has unless told
otherwise, and the ISA changes the rounding: oneDNN (convolutions; ``ONEDNN_MAX_CPU_ISA``), MKL (matrix products,
``nn.Linear``; ``MKL_CBWR``, its conditional numerical reproducibility branch) and PyTorch's own vectorised kernels
(BatchNorm, reductions, the optimiser; ``ATEN_CPU_CAPABILITY``). Each library reads its variable at its first use,
so ``pin_cpu_math`` runs before the first torch operation (the CLI's first step). The number of threads splits some
reductions (oneDNN's convolution backward by weights), so the pin sets it too (2, the reference's, unless OMP_NUM_THREADS says otherwise). The ISA pin
is not the default: it made the default model's training 1.28x slower on the AVX-512 machines this project runs on
(README), and `make run` has a 10-minute budget; the committed reference is made with the default (``native``).
No torch import at module level.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

from vgan.util.errors import ParamsError

ISA_VARIABLE = "VGAN_CPU_ISA"
DEFAULT_ISA = "native"  # the CPU's widest paths: fastest; bits differ between CPUs of different ISAs
PORTABLE_ISA = "avx2"  # the same bits on any Intel x86-64 CPU with AVX2 and FMA
# What each pin sets; "native" sets nothing (each library takes the CPU's widest ISA: fastest, bits differ by CPU).
ISA_PINS = {
    "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"},
    "native": {},
}
# Every variable that moves these code paths (DNNL_MAX_CPU_ISA: oneDNN's older name for its cap).
PINNED_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_CBWR", "ATEN_CPU_CAPABILITY")
# The pinned thread count (this project's 2-core machines); OMP_NUM_THREADS set by the user wins.
REFERENCE_THREADS = 2


def chosen_isa(environ=os.environ) -> str:
    isa = environ.get(ISA_VARIABLE, DEFAULT_ISA).strip().lower() or DEFAULT_ISA
    if isa not in ISA_PINS:
        raise ParamsError(f"{ISA_VARIABLE}={environ[ISA_VARIABLE]!r}; expected one of {', '.join(ISA_PINS)}")
    return isa


def cpu_threads(environ=os.environ) -> int | None:
    """OMP_NUM_THREADS when set to a positive number; else, under an ISA pin, the reference's thread count; else
    None (native: torch's own choice, every core)."""
    value = environ.get("OMP_NUM_THREADS", "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    return None if chosen_isa(environ) == "native" else REFERENCE_THREADS


def pin_cpu_math(environ=os.environ) -> str:
    """Set the libraries' variables for ``VGAN_CPU_ISA`` (default native: none), replacing any caps already in the
    environment, and under a pin OMP_NUM_THREADS if unset; the pin's name. Call before the first torch operation."""
    isa = chosen_isa(environ)
    environ.update(ISA_PINS[isa])  # ONEDNN_MAX_CPU_ISA wins over oneDNN's older name, DNNL_MAX_CPU_ISA
    threads = cpu_threads(environ)
    if threads:
        environ.setdefault("OMP_NUM_THREADS", str(threads))
    return isa


def pin_threads(environ=os.environ) -> int:
    """torch's intra-op threads = ``cpu_threads()`` where it names a number, also where the machine has fewer cores
    (torch caps OMP_NUM_THREADS at the core count when it reads it, so the variable alone does not pin it there);
    the threads torch uses."""
    import torch

    threads = cpu_threads(environ)
    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def _cpuinfo_field(name: str) -> str:
    """The first value of ``name`` in /proc/cpuinfo ('' where there is none)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return ""
    return next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith(name) and ":" in line), "")


def cpu_flags() -> set[str]:
    return set(_cpuinfo_field("flags").split())


def cpu_model() -> str:
    return _cpuinfo_field("model name")


NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # the CPU multiplies bf16 in hardware (oneDNN uses these)


def native_bf16(environ=os.environ) -> bool:
    """Whether bf16 is the fast precision here: the CPU has bf16 instructions (AMX or AVX512-BF16) and no ISA pin
    caps the libraries below them (under the avx2 pin, or a oneDNN cap of the user's, bf16 would be emulated: slower
    than fp32)."""
    capped = any(environ.get(name) for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"))
    return chosen_isa(environ) == "native" and not capped and bool(cpu_flags() & set(NATIVE_BF16_FLAGS))


def cpu_vendor() -> str:
    return _cpuinfo_field("vendor_id")


# The pinned paths were compared on Intel CPUs (a Xeon with AVX-512, an emulated Haswell). On an AMD EPYC (2026-12-07)
# the pinned probe of tests/test_cpu_pin.py trained other weights, and MKL reported CNR:AUTO under MKL_CBWR=AVX2
# (MKL_VERBOSE=1): its reproducibility branches hold on Intel processors only.
PIN_VENDORS = ("GenuineIntel",)


def _avx2_x86() -> bool:
    return platform.machine() in ("x86_64", "AMD64") and {"avx2", "fma"} <= cpu_flags()


def pin_holds(environ=os.environ) -> bool:
    """Whether the pin gives this machine the reference's code paths: an Intel x86-64 CPU with AVX2 and FMA."""
    return chosen_isa(environ) != "native" and _avx2_x86() and cpu_vendor() in PIN_VENDORS


def describe(environ=os.environ) -> str:
    """What the float results depend on here, e.g. 'x86_64, VGAN_CPU_ISA=avx2 (pinned), 2 threads'."""
    isa = chosen_isa(environ)
    if isa == "native":
        pin = f"{ISA_VARIABLE}=native (not pinned: the CPU's widest ISA)"
    elif pin_holds(environ):
        pin = f"{ISA_VARIABLE}={isa} (pinned)"
    elif _avx2_x86():
        pin = f"{ISA_VARIABLE}={isa}, but on this {cpu_vendor() or 'unknown'} CPU the libraries take paths of their own"
    else:
        pin = f"{ISA_VARIABLE}={isa}, but this CPU lacks AVX2/FMA: its own narrower code paths"
    model = cpu_model()
    threads = cpu_threads(environ) or os.cpu_count() or 1
    return (f"{platform.machine()}, {pin}, {threads} thread{'' if threads == 1 else 's'}"
            + (f" ({model})" if model else ""))
