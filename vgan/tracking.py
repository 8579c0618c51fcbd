"""MLflow, and only here: stage runs, the generator as a registered model, champion/challenger promotion.

mlflow is imported inside functions (importing it costs seconds), so `vgan --help` stays fast.
Store: ``MLFLOW_TRACKING_URI`` when set, else ``sqlite:///<repo>/mlflow.db`` with artifacts in
``<repo>/mlartifacts``. Every call that reaches the store is retried with exponential backoff;
when the retries run out one :class:`~vgan.errors.TrackingError` says what to do.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import yaml

from vgan.errors import TrackingError

CHAMPION = "champion"
CHALLENGER = "challenger"
DEFAULT_DB = "mlflow.db"
ARTIFACT_DIR = "mlartifacts"
MODEL_ARTIFACT = "generator"
LOCK_SUFFIX = ".promotion-lock"
LOCK_WAIT_S = 300.0
LOCK_STALE_S = 900.0
_TRANSIENT_CODES = {"TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED", "INTERNAL_ERROR"}
_TRANSIENT_TEXT = ("api request to", "connection", "database is locked", "timed out", "max retries exceeded")


# --- where things are ---------------------------------------------------------------------------

def repo_root() -> Path:
    """The nearest folder upwards holding dvc.yaml, .dvc or .git; else the working directory."""
    cwd = Path.cwd().resolve()
    for folder in (cwd, *cwd.parents):
        if any((folder / marker).exists() for marker in ("dvc.yaml", ".dvc", ".git")):
            return folder
    return cwd


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` or the embedded store ``sqlite:///<repo>/mlflow.db``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root() / DEFAULT_DB}"


def _sqlite_file(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` store; None for any other store."""
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def _local_artifact_root(uri: str) -> Path | None:
    """Artifact folder for a local store (beside the sqlite file); None for a server, which decides."""
    if _sqlite_file(uri) is not None:
        return _sqlite_file(uri).resolve().parent / ARTIFACT_DIR
    if uri.startswith("file:") or "://" not in uri:
        return None  # a file store keeps artifacts inside itself
    return None


def experiment_name(params) -> str:
    return f"vgan-{params.data.source}".replace("_", "-")


def git_commit(root: Path | None = None) -> str:
    """HEAD's commit, with ``-dirty`` when tracked files changed; ``unknown`` outside git."""
    root = root or repo_root()
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def data_hash(root: Path | None = None) -> str:
    """Hash of the dataset outputs recorded in dvc.lock (shards, else fetch); ``none`` before any."""
    lock = (root or repo_root()) / "dvc.lock"
    if not lock.exists():
        return "none"
    try:
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    except yaml.YAMLError:
        return "none"
    for stage in ("shards", "fetch"):
        outs = (stages.get(stage) or {}).get("outs") or []
        if outs:
            digest = sorted((out.get("path", ""), out.get("md5", "")) for out in outs)
            return hashlib.sha256(json.dumps(digest).encode()).hexdigest()[:16]
    return "none"


def pipeline_id(params, data: str | None = None) -> str:
    """Shared by the stage runs of one pipeline: ``VGAN_PIPELINE_ID``, else data hash + params hash."""
    explicit = os.environ.get("VGAN_PIPELINE_ID")
    if explicit:
        return explicit
    blob = f"{data or data_hash()}:{params.group_hash()}"
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_tags(params, stage: str) -> dict[str, str]:
    data = data_hash()
    commit = git_commit()
    return {
        "vgan.stage": stage,
        "vgan.pipeline_id": pipeline_id(params, data),
        "vgan.git_commit": commit,
        "vgan.data_hash": data,
        "vgan.params_hash": params.group_hash(),
        "vgan.dataset": params.data.source,
        "vgan.model": params.model.name,
        "mlflow.source.git.commit": commit.removesuffix("-dirty"),
    }


# --- retries ----------------------------------------------------------------------------------

def _is_transient(exc: Exception) -> bool:
    """A failure worth retrying: the store is unreachable, busy, or answered 5xx/429."""
    if getattr(exc, "error_code", None) in _TRANSIENT_CODES:
        return True
    text = f"{exc.__class__.__name__} {exc}".lower()
    return isinstance(exc, (ConnectionError, TimeoutError)) or any(t in text for t in _TRANSIENT_TEXT)


def _is_store_error(exc: Exception) -> bool:
    return exc.__class__.__module__.split(".")[0] in ("mlflow", "requests", "urllib3", "sqlalchemy")


def _retrying(what: str, call: Callable, attempts: int | None = None):
    """Run ``call``; on a transient failure wait 1, 2, 4... s (jittered) and try again."""
    attempts = attempts or int(os.environ.get("VGAN_TRACKING_RETRIES", "4"))
    delay = float(os.environ.get("VGAN_TRACKING_BACKOFF_S", "1.0"))
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except TrackingError:
            raise
        except Exception as exc:  # noqa: BLE001 - classified below
            if not _is_transient(exc):
                if not _is_store_error(exc):
                    raise
                raise TrackingError(f"MLflow at {tracking_uri()}: {what} failed: {_one_line(exc)}") from exc
            if attempt == attempts:
                raise TrackingError(
                    f"MLflow at {tracking_uri()} is unreachable ({what} failed {attempts} times: {_one_line(exc)}); "
                    "outputs on disk are kept: start the server (or unset MLFLOW_TRACKING_URI for the local "
                    "store) and re-run the stage, e.g. `vgan register`") from exc
            time.sleep(delay * (1 + random.random() * 0.25))
            delay *= 2


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return f"{exc.__class__.__name__}: {text[:300]}"


def _mlflow():
    """Import mlflow, point it at the store, and let our backoff (not mlflow's minutes-long one) retry."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow

    # mlflow's setters also export MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI into os.environ; put the
    # user's values back so a later change of store (or a child process) never sees a stale one
    saved = {key: os.environ.get(key) for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(tracking_uri())
    mlflow.set_registry_uri(saved["MLFLOW_REGISTRY_URI"] or tracking_uri())
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    return mlflow


def _client():
    mlflow = _mlflow()
    return mlflow, mlflow.MlflowClient()


def _experiment_id(client, params) -> str:
    name = experiment_name(params)

    def get_or_create():
        found = client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                client.restore_experiment(found.experiment_id)
            return found.experiment_id
        root = _local_artifact_root(tracking_uri())
        location = (root / name).as_uri() if root else None
        try:
            return client.create_experiment(name, artifact_location=location, tags={"vgan.dataset": params.data.source})
        except Exception as exc:  # noqa: BLE001 - another process created it first
            if getattr(exc, "error_code", None) == "RESOURCE_ALREADY_EXISTS":
                return client.get_experiment_by_name(name).experiment_id
            raise

    return _retrying(f"opening experiment {name!r}", get_or_create)


# --- stage runs -------------------------------------------------------------------------------

def _flatten(tree: dict, prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
    return flat


def _finite_metrics(metrics: dict) -> dict[str, float]:
    out = {}
    for key, value in _flatten_numbers(metrics).items():
        if math.isfinite(value):
            out[key] = value
    return out


def _flatten_numbers(tree: dict, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten_numbers(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = float(value)
    return out


class StageLogger:
    """What a stage logs into its MLflow run; every call retries, then raises TrackingError."""

    def __init__(self, client, run_id: str):
        self._client = client
        self.run_id = run_id

    def log_params(self, values: dict) -> None:
        from mlflow.entities import Param

        flat = [Param(key, value[:6000]) for key, value in _flatten(values).items()]
        for start in range(0, len(flat), 100):
            batch = flat[start:start + 100]
            _retrying("logging params", lambda: self._client.log_batch(self.run_id, params=batch))

    def log_metrics(self, values: dict, step: int | None = None) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        metrics = [Metric(key, value, stamp, step or 0) for key, value in _finite_metrics(values).items()]
        for start in range(0, len(metrics), 1000):
            batch = metrics[start:start + 1000]
            _retrying("logging metrics", lambda: self._client.log_batch(self.run_id, metrics=batch))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            _retrying(f"uploading {path}", lambda: self._client.log_artifacts(self.run_id, str(path), artifact_path))
        elif path.exists():
            _retrying(f"uploading {path}", lambda: self._client.log_artifact(self.run_id, str(path), artifact_path))
        else:
            raise TrackingError(f"cannot log artifact {path}: it does not exist")

    def set_tags(self, tags: dict) -> None:
        for key, value in tags.items():
            _retrying("tagging the run", lambda: self._client.set_tag(self.run_id, key, str(value)))


@contextlib.contextmanager
def stage_run(params, stage: str) -> Iterator[StageLogger]:
    """An MLflow run for one stage, tagged with commit, data hash, params hash and pipeline id."""
    _, client = _client()
    experiment_id = _experiment_id(client, params)
    tags = run_tags(params, stage)
    run_name = f"{stage}-{tags['vgan.pipeline_id'][:8]}"
    run = _retrying("starting a run", lambda: client.create_run(experiment_id, run_name=run_name, tags=tags))
    logger = StageLogger(client, run.info.run_id)
    try:
        yield logger
    except BaseException:
        with contextlib.suppress(Exception):
            client.set_terminated(run.info.run_id, "FAILED")
        raise
    _retrying("closing the run", lambda: client.set_terminated(run.info.run_id, "FINISHED"))


# --- the generator as an MLflow model -------------------------------------------------------------

def _pip_requirements() -> list[str]:
    import mlflow
    import numpy
    import pandas
    import torch

    return [f"mlflow=={mlflow.__version__}", f"torch=={torch.__version__.split('+')[0]}",
            f"numpy=={numpy.__version__}", f"pandas=={pandas.__version__}"]


def _save_torch_generator(generator, folder: Path) -> str:
    """Save G with the pytorch flavour: torch.export ("pt2") where it works, else pickle with vgan code."""
    import mlflow.pytorch
    import numpy as np
    import torch
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    generator = generator.cpu().eval()
    example_z = generator.sample_z(2, generator=torch.Generator().manual_seed(0))
    example = [example_z]
    inputs = [TensorSpec(np.dtype(np.float32), (-1, generator.latent_dim), "z")]
    if generator.num_classes:
        example.append(torch.tensor([0, min(1, generator.num_classes - 1)], dtype=torch.int64))
        inputs.append(TensorSpec(np.dtype(np.int64), (-1,), "y"))
    with torch.no_grad():
        out = generator(*example)
    signature = ModelSignature(inputs=Schema(inputs),
                               outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *out.shape[1:]), "video")]))
    numpy_example = tuple(t.numpy() for t in example)
    try:
        mlflow.pytorch.save_model(generator, str(folder / "pt2"), serialization_format="pt2",
                                  input_example=numpy_example, signature=signature,
                                  pip_requirements=_pip_requirements())
        return str(folder / "pt2")
    except Exception:  # noqa: BLE001 - any export failure: fall back to the portable pickle
        package_dir = Path(__file__).resolve().parent
        mlflow.pytorch.save_model(generator, str(folder / "pickle"), serialization_format="pickle",
                                  code_paths=[str(package_dir)], input_example=numpy_example[0]
                                  if len(numpy_example) == 1 else None,
                                  signature=signature, pip_requirements=_pip_requirements())
        return str(folder / "pickle")


def _log_generator_model(generator, metadata: dict):
    """Log the pyfunc model (seeds -> uint8 videos) wrapping the pytorch-flavour generator."""
    import mlflow
    import numpy as np
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    with tempfile.TemporaryDirectory(prefix="vgan-model-") as tmp:
        torch_dir = _save_torch_generator(generator, Path(tmp))
        serialization = Path(torch_dir).name
        spec = {"latent_dim": generator.latent_dim, "num_classes": generator.num_classes, "frames": generator.frames,
                "resolution": generator.resolution, "channels": generator.channels,
                "serialization": serialization, **metadata}
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps(spec, indent=2))
        columns = [ColSpec("long", "seed")]
        example = {"seed": [0, 1]}
        if generator.num_classes:
            columns.append(ColSpec("long", "label", required=False))
            example["label"] = [0, min(1, generator.num_classes - 1)]
        out_shape = (-1, generator.frames, generator.resolution, generator.resolution, generator.channels)
        signature = ModelSignature(inputs=Schema(columns),
                                   outputs=Schema([TensorSpec(np.dtype(np.uint8), out_shape)]))
        model_info = mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT,
            python_model=str(Path(__file__).with_name("pyfunc_model.py")),
            artifacts={"generator": torch_dir, "spec": str(spec_path)},
            signature=signature,
            input_example=pd.DataFrame(example),
            pip_requirements=_pip_requirements(),
            metadata={"vgan": spec},
        )
    return model_info, serialization


# --- promotion --------------------------------------------------------------------------------

def _metric_of(version, metric: str) -> float | None:
    raw = version.tags.get(f"metric.{metric}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def baseline_key(name: str, metric: str) -> str:
    """The metric (and version tag ``metric.<key>``) holding a baseline's value of ``metric``."""
    return f"baseline_{name}_{metric}"


def _beats(value: float, other: float, direction: str) -> bool:
    return value < other if direction == "minimize" else value > other


def check_gate(value: float | None, baseline_values: dict[str, float | None], metric: str,
               direction: str) -> tuple[bool | None, str]:
    """The quality gate (pure): whether ``value`` beats every listed baseline's, and why; None = no gate."""
    if not baseline_values:
        return None, "no quality gate (registry.gate_baselines is empty)"
    if value is None:
        return False, f"fails the quality gate: no finite {metric}"
    word = "below" if direction == "minimize" else "above"
    failures = []
    for name, baseline in baseline_values.items():
        if baseline is None:
            failures.append(f"no {name} baseline {metric} recorded on this version (tag metric."
                            f"{baseline_key(name, metric)}; run `vgan evaluate`, then `vgan register`)")
        elif not _beats(value, baseline, direction):
            failures.append(f"{metric} {value:.4g} is not {word} the {name} baseline's {baseline:.4g}")
    if failures:
        return False, "fails the quality gate: " + "; ".join(failures)
    passed = ", ".join(f"{name} {baseline:.4g}" for name, baseline in baseline_values.items())
    return True, f"passes the quality gate: {metric} {value:.4g} is {word} the baselines' ({passed})"


def decide(value: float | None, champion_value: float | None, champion_version: str | None,
           metric: str, direction: str, min_improvement: float,
           gate: tuple[bool | None, str] = (None, "")) -> tuple[bool, str]:
    """Whether a challenger with ``value`` replaces the champion, and why (pure; used under the lock).

    gate: :func:`check_gate`'s verdict; a version that fails it is never champion, whatever the champion is.
    """
    if value is None:
        return False, f"challenger has no finite {metric}; champion unchanged"
    if gate[0] is False:
        outcome = f"champion v{champion_version} unchanged" if champion_version else "no champion is made"
        return False, f"{gate[1]}; {outcome}"
    if champion_version is None:
        return True, f"no champion yet; {metric}={value:.6g}"
    if champion_value is None:
        return True, f"champion v{champion_version} has no {metric}; challenger {metric}={value:.6g}"
    improvement = champion_value - value if direction == "minimize" else value - champion_value
    comparison = f"{metric} {value:.6g} vs champion v{champion_version} {champion_value:.6g} ({direction}, " \
                 f"improvement {improvement:.6g}, required > {min_improvement:g})"
    if improvement > min_improvement:
        return True, f"beats champion: {comparison}"
    return False, f"does not beat champion: {comparison}"


_GATE_STATES = {True: "passed", False: "failed", None: "off"}


def _alias_version(client, name: str, alias: str):
    try:
        return client.get_model_version_by_alias(name, alias)
    except Exception as exc:  # noqa: BLE001
        if getattr(exc, "error_code", None) in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


@contextlib.contextmanager
def _promotion_lock(client, name: str):
    """Mutual exclusion across processes and hosts: creating a registered model is atomic in the store."""
    lock_name = f"{name}{LOCK_SUFFIX}"
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            client.create_registered_model(
                lock_name, tags={"vgan.lock_owner": owner, "vgan.locked_at": f"{time.time():.3f}"},
                description=f"held while vgan promotes a version of {name}; safe to delete if no promotion runs")
            break
        except Exception as exc:  # noqa: BLE001
            if getattr(exc, "error_code", None) != "RESOURCE_ALREADY_EXISTS" and not _is_transient(exc):
                raise
        with contextlib.suppress(Exception):
            held = client.get_registered_model(lock_name)
            locked_at = float(held.tags.get("vgan.locked_at", "0") or 0)
            if time.time() - locked_at > LOCK_STALE_S:
                client.delete_registered_model(lock_name)  # its owner died mid-promotion
                continue
        if time.monotonic() > deadline:
            raise TrackingError(f"another promotion of {name} has held registered model {lock_name!r} for over "
                                f"{LOCK_WAIT_S:.0f} s; delete it if no promotion is running")
        time.sleep(0.1 + random.random() * 0.4)
    try:
        yield
    finally:
        _retrying("releasing the promotion lock", lambda: client.delete_registered_model(lock_name))


def _promote_version(client, params, name: str, version: str) -> dict:
    """Under the lock: move challenger (forward only) and champion (if better); tag decision on the version."""
    metric, direction = params.registry.metric, params.registry.direction
    with _promotion_lock(client, name):
        candidate = client.get_model_version(name, version)
        challenger = _alias_version(client, name, CHALLENGER)
        if challenger is None or int(challenger.version) <= int(version):
            client.set_registered_model_alias(name, CHALLENGER, version)
        candidate_value = _metric_of(candidate, metric)
        gate_names = params.registry.gate_baselines
        baseline_values = {baseline: _metric_of(candidate, baseline_key(baseline, metric)) for baseline in gate_names}
        gate = check_gate(candidate_value, baseline_values, metric, direction)
        gate_record = {"gate": _GATE_STATES[gate[0]], "gate_reason": gate[1], "gate_baselines": list(gate_names)}
        champion = _alias_version(client, name, CHAMPION)
        if champion is not None and str(champion.version) == str(version):
            # keep the record of why it became champion; nothing changes (a gate failing now is reported)
            reason = f"already champion ({candidate.tags.get('vgan.reason', 'no recorded reason')})"
            return {"name": name, "version": int(version), "champion_version": int(version), "promoted": True,
                    "reason": reason, "metric": metric, "value": candidate_value, **gate_record,
                    "tracking_uri": tracking_uri()}
        previous = str(champion.version) if champion else None
        promoted, reason = decide(candidate_value, _metric_of(champion, metric) if champion else None,
                                  previous, metric, direction, params.registry.min_improvement, gate)
        if promoted:
            client.set_registered_model_alias(name, CHAMPION, version)
        decision_tags = {
            "vgan.decision": "promoted" if promoted else "rejected",
            "vgan.reason": reason,
            "vgan.gate": gate_record["gate"],
            "vgan.gate_reason": gate[1],
            "vgan.gate_baselines": ",".join(gate_names),
            "vgan.compared_to": previous or "",
            "vgan.decided_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        for key, value in decision_tags.items():
            client.set_model_version_tag(name, version, key, value)
        if promoted and previous:
            client.set_model_version_tag(name, previous, "vgan.superseded_by", str(version))
        champion_now = _alias_version(client, name, CHAMPION)
    return {"name": name, "version": int(version), "champion_version": int(champion_now.version) if champion_now else None,
            "promoted": promoted, "reason": reason, "metric": metric, "value": candidate_value, **gate_record,
            "tracking_uri": tracking_uri()}


def _artifact_folder(path: Path) -> str | None:
    """Where a file or folder goes in the run: its place in the repo (``samples``, ``metrics``...)."""
    try:
        relative = path.resolve().relative_to(repo_root())
    except ValueError:
        return path.name if path.is_dir() else None
    folder = relative if path.is_dir() else relative.parent
    return None if str(folder) in ("", ".") else folder.as_posix()


def register_and_promote(params, generator_path: str | Path, metrics: dict, artifacts: list[Path],
                         baselines: dict | None = None) -> dict:
    """Log the generator, metrics and artifacts; register a version; alias challenger; maybe champion.

    baselines: {baseline name: {metric: value}} (evaluate's table); each baseline's ``registry.metric`` becomes
    metric ``baseline_<name>_<metric>`` and a version tag, so the quality gate needs nothing but the registry.
    """
    from vgan.train.checkpoint import load_generator

    generator, _ = load_generator(generator_path, use_ema=True, map_location="cpu")
    if generator.context_frames:
        # the served model maps seeds (and labels) to videos; a predictor needs context clips instead
        raise TrackingError(f"model.name = {params.model.name!r} predicts from context clips; the registry's "
                            f"seed-to-video model does not serve prediction models yet (its metrics are in "
                            f"metrics/evaluate.json)")
    mlflow, client = _client()
    experiment_id = _experiment_id(client, params)
    tags = run_tags(params, "register")
    name = params.registry_model_name()
    flat_metrics = _finite_metrics(metrics)
    metric = params.registry.metric
    flat_metrics.update(_finite_metrics({baseline_key(baseline, metric): row[metric]
                                         for baseline, row in (baselines or {}).items()
                                         if baseline != "model" and isinstance(row.get(metric), (int, float))}))

    def log_run() -> tuple[str, object, str]:
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"register-{tags['vgan.pipeline_id'][:8]}",
                              tags=tags) as run:
            logger = StageLogger(client, run.info.run_id)
            logger.log_params(params.model_dump(mode="json"))
            logger.log_metrics(flat_metrics)
            for path in artifacts:
                if Path(path).exists():
                    logger.log_artifact(path, _artifact_folder(Path(path)))
            model_info, serialization = _log_generator_model(
                generator, {"model_name": name, "trained_steps": getattr(generator, "trained_steps", None)})
        return run.info.run_id, model_info, serialization

    run_id, model_info, serialization = _retrying("logging the generator", log_run, attempts=2)

    def register():
        with contextlib.suppress(Exception):
            client.create_registered_model(name, tags={"vgan.dataset": params.data.source},
                                           description=f"vgan video generator trained on {params.data.source}")
        version_tags = {f"metric.{key}": f"{value:.8g}" for key, value in flat_metrics.items()}
        version_tags.update({key: value for key, value in tags.items() if key.startswith("vgan.")})
        version_tags.update({"vgan.run_id": run_id, "vgan.serialization": serialization,
                             "vgan.primary_metric": params.registry.metric})
        return client.create_model_version(name, model_info.model_uri, run_id=run_id, tags=version_tags,
                                           model_id=model_info.model_id)

    model_version = _retrying(f"registering {name}", register)
    result = _retrying("promoting", lambda: _promote_version(client, params, name, model_version.version))
    StageLogger(client, run_id).set_tags({"vgan.registered_version": model_version.version,
                                          "vgan.decision": "promoted" if result["promoted"] else "rejected"})
    return {**result, "run_id": run_id}


def promote(params, version: int | str | None = None) -> dict:
    """Re-run the promotion decision for ``version`` (default: the challenger) of the registry model."""
    uri = tracking_uri()
    database = _sqlite_file(uri)
    if database is not None and not database.exists():
        # opening it would create an empty store here (e.g. outside the project) before failing
        raise TrackingError(f"no MLflow store at {uri}: run `vgan register` first, from the project folder, or set "
                            f"MLFLOW_TRACKING_URI")
    _, client = _client()
    name = params.registry_model_name()

    def pick() -> str:
        if version is not None:
            return str(client.get_model_version(name, str(version)).version)
        challenger = _alias_version(client, name, CHALLENGER)
        if challenger is None:
            raise TrackingError(f"registered model {name!r} has no {CHALLENGER!r} version; run `vgan register` first")
        return str(challenger.version)

    chosen = _retrying(f"finding the version of {name} to promote", pick)
    return _retrying("promoting", lambda: _promote_version(client, params, name, chosen))


def champion_uri(params) -> str:
    """``models:/<name>@champion`` for ``mlflow.pyfunc.load_model``."""
    return f"models:/{params.registry_model_name()}@{CHAMPION}"


def load_champion(params):
    """The champion as a pyfunc model: ``predict(pd.DataFrame({"seed": [...]}))`` -> uint8 (N, T, H, W, C)."""
    mlflow = _mlflow()
    return _retrying("loading the champion", lambda: mlflow.pyfunc.load_model(champion_uri(params)))


def _version_record(version, metric: str) -> dict:
    tags = version.tags
    return {"version": int(version.version), "value": _metric_of(version, metric),
            "decision": tags.get("vgan.decision", ""), "reason": tags.get("vgan.reason", ""),
            "gate": tags.get("vgan.gate", ""),
            "git_commit": tags.get("vgan.git_commit", ""), "data_hash": tags.get("vgan.data_hash", ""),
            "run_id": tags.get("vgan.run_id", "")}


def registry_summary(params) -> dict:
    """Champion and challenger of the registry model (version, primary metric, decision, reason)."""
    _, client = _client()
    name, metric = params.registry_model_name(), params.registry.metric

    def read() -> dict:
        found = {alias: _alias_version(client, name, alias) for alias in (CHAMPION, CHALLENGER)}
        return {"name": name, "metric": metric, "direction": params.registry.direction,
                **{alias: _version_record(v, metric) if v else None for alias, v in found.items()}}

    return _retrying(f"reading the registry entry {name}", read)
