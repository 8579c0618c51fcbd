"""DDP under torchrun (gloo on CPU): 2 ranks with the global batch split between them train what 1 process
trains, launched as 2 processes on one node or as 2 nodes on loopback; an elastic restart after a killed rank
resumes from the last checkpoint and ends with the weights of an uninterrupted run."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from conftest import write_tiny_params
from ddp_worker import KILL_RANK_VARIABLE, train
from vgan.train import checkpoint as ckpt

HERE = Path(__file__).resolve().parent
# batch norm in G (VGAN) and several optimiser steps with EMA: the parts where ranks could drift apart
OVERRIDES = ["train.steps=4", "train.checkpoint_every=2", "train.log_every=1", "train.sample_every=100",
             "train.batch_size=8", "train.device=cpu", "train.ema_decay=0.5", "model.channels=3",
             # fp32: the tolerances below are fp32's reduction-order noise; bf16 autocast (train.precision=auto on a
             # CPU with AMX) rounds each rank's partial sums to 8 bits, ~100x more, whatever the sharding
             "train.precision=fp32"]
CHECKPOINT_STEPS = ["step-00000002.pt", "step-00000004.pt"]
LAUNCH_TIMEOUT_S = 300  # a few seconds when it works; a rank waiting for a dead peer would wait 30 minutes


@dataclass
class AgentResult:
    returncode: int
    output: str  # the agent's stdout and stderr, with its workers' (they inherit them)


def _agent_command(out_root: Path, params_file: Path, *torchrun_options: str) -> list[str]:
    command = [sys.executable, "-m", "torch.distributed.run", *torchrun_options, str(HERE / "ddp_worker.py"),
               str(out_root), str(params_file)]
    for item in OVERRIDES:
        command += ["--set", item]
    return command


def _kill_agent_and_workers(agent: subprocess.Popen) -> None:
    """SIGKILL a torchrun agent and its workers (each worker runs in a session of its own, not the agent's)."""
    import psutil  # a dependency of dvc

    with contextlib.suppress(psutil.NoSuchProcess):
        for worker in psutil.Process(agent.pid).children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                worker.kill()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(agent.pid, signal.SIGKILL)
    agent.wait()


def _launch(commands: list[list[str]], logs: Path, env: dict | None = None) -> list[AgentResult]:
    """Run torchrun agents side by side until all exit; past LAUNCH_TIMEOUT_S kill them all and fail."""
    logs.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent), **(env or {})}
    agents, log_paths = [], []
    deadline = time.monotonic() + LAUNCH_TIMEOUT_S
    timed_out = False
    try:
        for index, command in enumerate(commands):
            log_paths.append(logs / f"agent-{index}.log")
            with open(log_paths[-1], "w") as log:  # a file, not a pipe: no agent blocks on a full pipe
                agents.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=full_env,
                                               start_new_session=True))
        for agent in agents:
            agent.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:  # also on an error or Ctrl-C here: no agent or worker outlives the test
        for agent in agents:
            if agent.poll() is None:
                _kill_agent_and_workers(agent)
    results = [AgentResult(agent.returncode, path.read_text()) for agent, path in zip(agents, log_paths)]
    if timed_out:
        pytest.fail(f"torchrun ran past {LAUNCH_TIMEOUT_S} s; killed:\n"
                    + "\n".join(result.output[-2000:] for result in results))
    return results


def _free_port() -> int:
    # the port is released before the agent binds it: a tiny window another process could take it in
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _two_node_commands(roots: list[Path], params_file: Path) -> list[list[str]]:
    """Two torchrun agents, one per "node", meeting at a c10d rendezvous on loopback, as on two hosts."""
    endpoint, run_id = f"127.0.0.1:{_free_port()}", f"vgan-test-{uuid.uuid4().hex[:8]}"
    return [_agent_command(root, params_file, "--nnodes=2", "--nproc-per-node=1", "--rdzv-backend=c10d",
                           f"--rdzv-endpoint={endpoint}", f"--rdzv-id={run_id}") for root in roots]


def _checkpoint_folder(out_root: Path) -> Path:
    folders = list((out_root / "checkpoints").iterdir())
    assert len(folders) == 1, folders  # one run identity
    return folders[0]


def _max_difference(first: dict, second: dict, keys=None) -> float:
    assert first.keys() == second.keys()
    keys = first.keys() if keys is None else keys
    return max((first[k].double() - second[k].double()).abs().max().item() for k in keys
               if first[k].is_floating_point())


def _biases_before_batch_norm(params) -> set[str]:
    """Biases a batch norm cancels: their true gradient is 0, so Adam turns rounding noise into +-lr steps."""
    from vgan.models.zoo import build_model

    G, _ = build_model(params.model)
    cancelled = set()
    for prefix, module in G.named_modules():
        if isinstance(module, torch.nn.Sequential):
            children = list(module.named_children())
            for (name, layer), (_, following) in zip(children, children[1:]):
                if isinstance(following, torch.nn.modules.batchnorm._BatchNorm) and getattr(layer, "bias", None) is not None:
                    cancelled.add(f"{prefix}.{name}.bias".lstrip("."))
    return cancelled


def _with_running_means(cancelled: set[str], keys) -> set[str]:
    """The cancelled biases plus the running means that track them (the next batch norm's)."""
    out = set(cancelled)
    for key in keys:
        if key.endswith(".running_mean"):
            prefix, index = key[:-len(".running_mean")].rsplit(".", 1)
            if f"{prefix}.{int(index) - 1}.bias" in cancelled:
                out.add(key)
    return out


@pytest.fixture(scope="module")
def params_file(tmp_path_factory) -> Path:
    return write_tiny_params(tmp_path_factory.mktemp("ddp") / "params.yaml")


@pytest.fixture(scope="module")
def single_run(params_file, tmp_path_factory) -> Path:
    """The reference: one process with the whole global batch, in this process."""
    root = tmp_path_factory.mktemp("single")
    torch.set_num_threads(1)  # the same reduction order as the workers (OMP_NUM_THREADS=1)
    try:
        summary = train(root, params_file, OVERRIDES)
    finally:
        torch.set_num_threads(max(1, os.cpu_count() or 1))
    assert summary["steps"] == 4
    return root


@pytest.fixture(scope="module")
def standalone_run(params_file, tmp_path_factory) -> Path:
    """2 processes on one node: ``torchrun --standalone --nproc-per-node=2``."""
    root = tmp_path_factory.mktemp("standalone")
    [agent] = _launch([_agent_command(root, params_file, "--standalone", "--nproc-per-node=2")], root / "logs")
    assert agent.returncode == 0, agent.output[-3000:]
    return root


@pytest.fixture(scope="module")
def two_node_roots(params_file, tmp_path_factory) -> list[Path]:
    """2 nodes x 1 process on loopback, each node with an output folder of its own (no shared disk)."""
    base = tmp_path_factory.mktemp("two_nodes")
    roots = [base / "node-a", base / "node-b"]
    agents = _launch(_two_node_commands(roots, params_file), base / "logs")
    for agent in agents:
        assert agent.returncode == 0, agent.output[-3000:]
    return roots


@pytest.fixture(scope="module")
def two_node_run(two_node_roots) -> Path:
    """The output folder of the node whose process became rank 0 (the rendezvous picks which)."""
    written = [root for root in two_node_roots if (root / "models/generator.pt").exists()]
    assert len(written) == 1, written
    return written[0]


def assert_matches_single(single_root: Path, ddp_root: Path, params_file: Path) -> None:
    """The 2-rank run in ``ddp_root`` trained what the single process in ``single_root`` trained."""
    from vgan.models.zoo import build_model
    from vgan.params import load_params

    one = torch.load(single_root / "models/generator.pt", weights_only=True)
    two = torch.load(ddp_root / "models/generator.pt", weights_only=True)
    assert one["step"] == two["step"] == 4
    params = load_params(params_file, OVERRIDES)
    cancelled = _biases_before_batch_norm(params)
    assert len(cancelled) == 4  # VGAN at 16x16: 2 foreground + 2 background (de)convolutions before a batch norm
    drifting = _with_running_means(cancelled, one["G"])
    assert len(drifting) == 8
    for weights in ("G", "G_ema"):  # G_ema includes the batch-norm running statistics (buffers)
        compared = [k for k in one[weights] if k not in drifting]
        # float reduction order only (a slicing or seeding mistake moves weights by ~lr = 1e-3): since the D step's
        # fake clips also train G (one generator forward per step) the largest difference measured was 1.24e-5
        assert _max_difference(one[weights], two[weights], compared) < 3e-5, weights
        # gradient-free biases: bounded by Adam's step size (lr per step, 4 steps) ...
        assert _max_difference(one[weights], two[weights], cancelled) <= 2 * 4 * params.train.lr_g
    # ... and invisible in what the user gets: the EMA generator's samples (eval mode, running stats)
    samples = []
    for state in (one, two):
        G, _ = build_model(params.model)
        G.load_state_dict(state["G_ema"])
        samples.append(G.eval()(G.sample_z(8, generator=torch.Generator().manual_seed(5))))
    assert torch.allclose(samples[0], samples[1], atol=1e-4)
    # the run really moved: weights differ from their initial values by far more than the tolerance
    first_ckpt = ckpt.load_checkpoint(ckpt.list_checkpoints(_checkpoint_folder(single_root))[0])
    assert _max_difference(first_ckpt["G"], one["G"]) > 1e-3

    # rank 0 alone writes: one checkpoint folder with the steps of one run, one generator, one loss history
    folder = _checkpoint_folder(ddp_root)
    assert [p.name for p in ckpt.list_checkpoints(folder)] == CHECKPOINT_STEPS
    saved = ckpt.load_checkpoint(ckpt.list_checkpoints(folder)[-1])
    assert len(saved["ranks"]) == 2  # each rank's data position and RNG state, for an exact DDP resume
    history = (ddp_root / "plots/train_losses.csv").read_text().splitlines()
    assert len(history) == 1 + 4
    # the logged losses are global-batch means: the same numbers one process logs
    single_rows = (single_root / "plots/train_losses.csv").read_text().splitlines()
    header = history[0].split(",")
    for column in ("loss_d", "loss_g"):
        index = header.index(column)
        for row_two, row_one in zip(history[1:], single_rows[1:]):
            assert float(row_two.split(",")[index]) == pytest.approx(float(row_one.split(",")[index]), abs=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("launched_run", ["standalone_run", "two_node_run"],
                         ids=["1-node-x-2-procs", "2-nodes-x-1-proc"])
def test_two_ranks_match_one_process_with_the_same_global_batch(launched_run, single_run, params_file, request):
    assert_matches_single(single_run, request.getfixturevalue(launched_run), params_file)


@pytest.mark.slow
def test_on_two_nodes_rank_0_alone_writes(two_node_roots, two_node_run):
    """The other node's output folder stays empty: its rank only gathers its state to rank 0."""
    [other] = [root for root in two_node_roots if root != two_node_run]
    assert not other.exists() or not any(other.rglob("*")), sorted(other.rglob("*"))


def _loss_rows(out_root: Path) -> list[dict]:
    """The logged losses per step (the timing columns differ between any two runs)."""
    import csv

    with open(out_root / "plots/train_losses.csv") as handle:
        return [{key: value for key, value in row.items() if key.startswith(("step", "loss"))}
                for row in csv.DictReader(handle)]


def _assert_same_tensors(first, second, where: str = "") -> None:
    """Every tensor (and number) in two nested checkpoint structures is bit for bit the same."""
    if isinstance(first, torch.Tensor):
        assert torch.equal(first, second), where
    elif isinstance(first, dict):
        assert first.keys() == second.keys(), where
        for key in first:
            _assert_same_tensors(first[key], second[key], f"{where}/{key}")
    elif isinstance(first, (list, tuple)):
        assert len(first) == len(second), where
        for index, (a, b) in enumerate(zip(first, second)):
            _assert_same_tensors(a, b, f"{where}/{index}")
    else:
        assert first == second, where


@pytest.mark.slow
def test_elastic_restart_after_a_killed_rank_ends_with_the_uninterrupted_weights(params_file, standalone_run,
                                                                                 tmp_path):
    """Rank 1 is SIGKILLed right after the step-2 checkpoint; torchrun restarts both ranks, which resume."""
    root = tmp_path / "elastic"
    [agent] = _launch([_agent_command(root, params_file, "--standalone", "--nproc-per-node=2", "--max-restarts=1")],
                      tmp_path / "logs", env={KILL_RANK_VARIABLE: "1"})
    assert agent.returncode == 0, agent.output[-3000:]
    # it really restarted: rank 1 died of SIGKILL, both ranks started again as attempt 1, and resumed at step 2
    assert "exitcode: -9" in agent.output, agent.output[-3000:]
    for rank in (0, 1):
        assert f"attempt 0 rank {rank} of 2 starts" in agent.output
        assert f"attempt 1 rank {rank} of 2 starts" in agent.output
    assert "attempt 2" not in agent.output
    folder = _checkpoint_folder(root)
    assert agent.output.count("resumed from") == 1
    assert f"resumed from {ckpt.checkpoint_path(folder, 2)} at step 2" in agent.output
    assert [p.name for p in ckpt.list_checkpoints(folder)] == CHECKPOINT_STEPS

    # Exactly equal, not close: the resume restores every bit the next steps read (weights, Adam moments, the
    # EMA, each rank's data position and RNG streams, the shared latent stream), both runs have the same 2
    # ranks on one thread each, and a sum over 2 ranks is the same float whichever rank's value comes first.
    # So attempt 1 replays exactly the operations the uninterrupted run did from step 2 on.
    uninterrupted = _checkpoint_folder(standalone_run)
    for name in CHECKPOINT_STEPS:
        expected = ckpt.load_checkpoint(uninterrupted / name)
        restarted = ckpt.load_checkpoint(folder / name)
        for key in ("step", "G", "G_ema", "D", "opt_g", "opt_d", "latent_rng", "ranks", "data"):
            _assert_same_tensors(expected[key], restarted[key], f"{name}/{key}")
    expected = torch.load(standalone_run / "models/generator.pt", weights_only=True)
    restarted = torch.load(root / "models/generator.pt", weights_only=True)
    for key in ("step", "G", "G_ema"):
        _assert_same_tensors(expected[key], restarted[key], f"generator.pt/{key}")
    assert _loss_rows(root) == _loss_rows(standalone_run)


@pytest.mark.slow
def test_ranks_that_see_different_checkpoints_refuse_to_resume(params_file, standalone_run, tmp_path):
    """Nodes without a shared checkpoint folder: one node has the step-2 checkpoint, the other none."""
    roots = [tmp_path / "node-a", tmp_path / "node-b"]
    source = _checkpoint_folder(standalone_run)
    seeded = roots[0] / "checkpoints" / source.name
    seeded.mkdir(parents=True)
    shutil.copy(source / CHECKPOINT_STEPS[0], seeded)
    # whichever node's process becomes rank 0, one rank would resume at step 2 and the other start at 0
    agents = _launch(_two_node_commands(roots, params_file), tmp_path / "logs")
    output = "\n".join(agent.output for agent in agents)
    assert all(agent.returncode != 0 for agent in agents), output[-3000:]
    assert "the ranks found different checkpoints to resume from" in output, output[-3000:]
    assert "put train.checkpoint_dir on a filesystem every node shares" in output
    for root in roots:  # refused before training: nothing new written on either node
        assert not (root / "models/generator.pt").exists()
    assert [p.name for p in ckpt.list_checkpoints(seeded)] == CHECKPOINT_STEPS[:1]


def test_global_batch_norm_matches_batch_norm_on_one_process():
    """Without a process group the replacement is plain batch norm, and its state dict is interchangeable."""
    from torch import nn

    from vgan.train.distributed import GlobalBatchNorm, convert_batchnorm

    torch.manual_seed(0)
    plain = nn.Sequential(nn.Conv3d(3, 4, 3), nn.BatchNorm3d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6 * 6, 2),
                          nn.BatchNorm1d(2))
    converted = convert_batchnorm(nn.Sequential(*[m for m in __import__("copy").deepcopy(plain)]), "cpu")
    assert sum(isinstance(m, GlobalBatchNorm) for m in converted.modules()) == 2
    assert converted.state_dict().keys() == plain.state_dict().keys()
    x = torch.randn(5, 3, 8, 8, 8)
    assert torch.allclose(plain(x), converted(x), atol=1e-6)
    plain.eval(), converted.eval()
    assert torch.allclose(plain(x), converted(x), atol=1e-6)
