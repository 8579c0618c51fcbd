"""The float stages' CPU pin (vgan/util/cpu.py): the same weights whatever ISA caps the environment already holds, the
weights recorded on two different CPUs, each of the three variables needed, and the thread count pinned."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO, run_cli

from vgan.util.cpu import (
    ISA_PINS,
    ISA_VARIABLE,
    PINNED_VARIABLES,
    REFERENCE_THREADS,
    cpu_flags,
    describe,
    pin_cpu_math,
    pin_holds,
)

PROBE = REPO / "tests" / "cpu_pin_probe.py"
# tests/cpu_pin_probe.py's weights with one thread under the AVX2 pin. Recorded on this project's machine (a Xeon
# with AVX-512, pinned) and the same on an emulated Haswell (`qemu-x86_64 -cpu Haswell`: AVX2, no AVX-512) both
# unpinned and pinned. A torch upgrade may change them: then rerun the qemu test below before recording new ones.
PINNED_WEIGHTS = "c36b643ac817d2ffd56b808dce140fb0"
CAPS = {"AVX-512": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE", "MKL_CBWR": "AVX512", "ATEN_CPU_CAPABILITY": "avx512"},
        "AVX2": ISA_PINS["avx2"], "oneDNN's older name": {"DNNL_MAX_CPU_ISA": "AVX512_CORE"}}
# What each variable governs, as a training step shows it (first output that differs when it is left out).
KERNELS = {"ONEDNN_MAX_CPU_ISA": "oneDNN's Conv3d", "MKL_CBWR": "MKL's sgemm (nn.Linear)",
           "ATEN_CPU_CAPABILITY": "PyTorch's vectorised kernels (BatchNorm backward, AdamW)"}

needs_avx2 = pytest.mark.skipif(not pin_holds({ISA_VARIABLE: "avx2"}),
                                reason=f"the AVX2 pin needs an Intel x86-64 CPU with AVX2 and FMA "
                                       f"({describe({ISA_VARIABLE: 'avx2'})})")
needs_avx512 = pytest.mark.skipif("avx512f" not in cpu_flags() or not pin_holds({ISA_VARIABLE: "avx2"}),
                                  reason="no AVX-512 here (an unpinned run takes the same AVX2 paths as the pin), or "
                                         "a CPU the pin does not hold on")


def probe(env: dict, prefix: tuple[str, ...] = (), timeout: float = 120) -> dict:
    """tests/cpu_pin_probe.py in a fresh process with one thread, the CPU variables only as ``env`` gives them."""
    clean = {key: value for key, value in os.environ.items()
             if key not in (*PINNED_VARIABLES, ISA_VARIABLE, "OMP_NUM_THREADS")}
    result = subprocess.run([*prefix, sys.executable, str(PROBE)], env={**clean, "OMP_NUM_THREADS": "1", **env},
                            capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def test_the_pin_replaces_caps_already_in_the_environment_and_keeps_the_threads_asked_for():
    environ = {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE", "DNNL_MAX_CPU_ISA": "AVX512_CORE", "MKL_CBWR": "AUTO",
               "OMP_NUM_THREADS": "3"}
    assert pin_cpu_math({**environ, ISA_VARIABLE: "avx2"}) == "avx2"
    pinned = {**environ, ISA_VARIABLE: "avx2"}
    pin_cpu_math(pinned)
    assert pinned == {**ISA_PINS["avx2"], ISA_VARIABLE: "avx2", "DNNL_MAX_CPU_ISA": "AVX512_CORE", "OMP_NUM_THREADS": "3"}
    environ = {"MKL_CBWR": "AUTO"}  # the default, native: the libraries and torch choose
    assert pin_cpu_math(environ) == "native"
    assert environ == {"MKL_CBWR": "AUTO"}


def test_an_unknown_pin_is_one_line_and_exit_status_2(tmp_path):
    result = run_cli("vgan", "fetch", cwd=tmp_path, check=False, env={ISA_VARIABLE: "avx3"})
    assert result.returncode == 2
    assert result.stderr.strip() == "vgan fetch: error: VGAN_CPU_ISA='avx3'; expected one of avx2, native"


@needs_avx2
def test_the_pin_gives_the_recorded_weights_whatever_cap_the_environment_holds():
    pin = {ISA_VARIABLE: "avx2"}  # opt-in: the default, native, pins nothing
    runs = {"no cap": probe(pin), **{f"{name} cap": probe({**caps, **pin}) for name, caps in CAPS.items()}}
    assert {name: (run["weights_md5"], run["isa"], run["threads"]) for name, run in runs.items()} == {
        name: (PINNED_WEIGHTS, "AVX2", 1) for name in runs}


@needs_avx512
def test_unpinned_the_weights_follow_the_isa_and_each_of_the_three_variables_is_needed():
    native = probe({ISA_VARIABLE: "native"})
    assert native["isa"] == "AVX512" and native["weights_md5"] != PINNED_WEIGHTS
    assert probe({ISA_VARIABLE: "native", **ISA_PINS["avx2"]})["weights_md5"] == PINNED_WEIGHTS
    for left_out, kernel in KERNELS.items():
        caps = {key: value for key, value in ISA_PINS["avx2"].items() if key != left_out}
        assert probe({ISA_VARIABLE: "native", **caps})["weights_md5"] != PINNED_WEIGHTS, (
            f"without {left_out} ({kernel}) the weights are still the pinned ones: the pin no longer needs it")


def test_the_pinned_thread_count_defaults_to_the_reference_runs():
    assert probe({ISA_VARIABLE: "avx2", "OMP_NUM_THREADS": ""})["threads"] == REFERENCE_THREADS


@pytest.mark.skipif(shutil.which("qemu-x86_64") is None,
                    reason="qemu-x86_64 (Debian's qemu-user) is not installed: no second CPU to emulate")
def test_an_emulated_avx2_cpu_gives_the_same_weights():
    """A second CPU: qemu's Haswell (AVX2 and FMA, no AVX-512), where each library finds AVX2 by itself."""
    emulated = probe({ISA_VARIABLE: "native"}, prefix=("qemu-x86_64", "-cpu", "Haswell"), timeout=600)
    assert (emulated["isa"], emulated["weights_md5"]) == ("AVX2", PINNED_WEIGHTS)


def test_the_pin_is_said_to_hold_on_intel_cpus_only(monkeypatch):
    """On an AMD EPYC the pinned probe trained other weights (MKL ignores MKL_CBWR=AVX2 there): the reference's float
    hashes are not checked on such a CPU, and `describe` says why."""
    from vgan.util import cpu

    monkeypatch.setattr(cpu, "cpu_flags", lambda: {"avx2", "fma", "avx512f"})
    monkeypatch.setattr(cpu.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(cpu, "cpu_vendor", lambda: "GenuineIntel")
    assert cpu.pin_holds({ISA_VARIABLE: "avx2"}) and not cpu.pin_holds({ISA_VARIABLE: "native"})
    monkeypatch.setattr(cpu, "cpu_vendor", lambda: "AuthenticAMD")
    assert not cpu.pin_holds({ISA_VARIABLE: "avx2"})
    assert "on this AuthenticAMD CPU the libraries take paths of their own" in cpu.describe({ISA_VARIABLE: "avx2"})


def test_auto_precision_is_bf16_only_where_the_cpu_multiplies_bf16_unpinned(monkeypatch):
    from vgan.train import loop
    from vgan.util import cpu

    monkeypatch.setattr(cpu, "cpu_flags", lambda: {"avx2", "fma", "avx512f", "amx_bf16"})
    assert cpu.native_bf16({ISA_VARIABLE: "native"})
    assert not cpu.native_bf16({ISA_VARIABLE: "avx2"})  # the pin keeps its bit-exact fp32 paths
    assert not cpu.native_bf16({ISA_VARIABLE: "native", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"})  # a cap: emulated
    monkeypatch.setattr(cpu, "cpu_flags", lambda: {"avx2", "fma", "avx512f"})
    assert not cpu.native_bf16({ISA_VARIABLE: "native"})  # AVX-512 without bf16 instructions
    monkeypatch.setattr(loop, "native_bf16", lambda: True)
    assert loop.bf16_compute("auto", "cpu") and loop.bf16_compute("auto", "cuda")
    assert not loop.bf16_compute("fp32", "cpu") and loop.bf16_compute("bf16", "cpu")
    monkeypatch.setattr(loop, "native_bf16", lambda: False)
    assert not loop.bf16_compute("auto", "cpu") and loop.bf16_compute("auto", "cuda")
