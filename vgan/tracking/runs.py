"""MLflow's store and runs: where the store is, retries, one run per stage nested under one parent run per
pipeline run, datasets and system metrics (the runs' provenance tags come from ``vgan.tracking.provenance``).

MLflow is used here, in ``vgan.tracking.export`` (the generator as an MLflow model) and in
``vgan.tracking.registry`` (registration and champion/challenger promotion), and nowhere else.

mlflow is imported inside functions (importing it costs seconds), so `vgan --help` stays fast.
Store: ``MLFLOW_TRACKING_URI`` when set, else ``sqlite:///<repo>/mlflow.db`` with artifacts in
``<repo>/mlartifacts``. Every call that reaches the store is retried with exponential backoff;
when the retries run out one :class:`~vgan.util.errors.TrackingError` says what to do.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from vgan.params import dotted
from vgan.tracking.provenance import repo_root, run_tags
from vgan.util.errors import TrackingError
from vgan.util.retry import retry

DEFAULT_DB = "mlflow.db"
ARTIFACT_DIR = "mlartifacts"
PIPELINE_STAGE = "pipeline"  # the vgan.stage tag of the parent run of one pipeline run
_TRANSIENT_CODES = {"TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED", "INTERNAL_ERROR"}
_TRANSIENT_TEXT = ("api request to", "connection", "database is locked", "timed out", "max retries exceeded")


# --- where things are ---------------------------------------------------------------------------

def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` or the embedded store ``sqlite:///<repo>/mlflow.db``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root() / DEFAULT_DB}"


def recorded_tracking_uri() -> str:
    """``tracking_uri()`` as a results file records it: the embedded store relative to the project
    (``sqlite:///mlflow.db``, read from the project folder), so no machine path is written; any other store as is."""
    uri, root = tracking_uri(), repo_root().resolve()
    database = sqlite_file(uri)
    if database is not None and database.resolve().is_relative_to(root):
        return f"sqlite:///{database.resolve().relative_to(root).as_posix()}"
    return uri


def sqlite_file(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` store; None for any other store."""
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def _local_artifact_root(uri: str) -> Path | None:
    """Artifact folder for a local store (beside the sqlite file); None for a server, which decides."""
    if sqlite_file(uri) is not None:
        return sqlite_file(uri).resolve().parent / ARTIFACT_DIR
    if uri.startswith("file:") or "://" not in uri:
        return None  # a file store keeps artifacts inside itself
    return None


def experiment_name(params) -> str:
    return f"vgan-{params.data.source}".replace("_", "-")


# --- retries ----------------------------------------------------------------------------------

def is_transient(exc: Exception) -> bool:
    """A failure worth retrying: the store is unreachable, busy, or answered 5xx/429."""
    if getattr(exc, "error_code", None) in _TRANSIENT_CODES:
        return True
    text = f"{exc.__class__.__name__} {exc}".lower()
    return isinstance(exc, (ConnectionError, TimeoutError)) or any(t in text for t in _TRANSIENT_TEXT)


def _is_store_error(exc: Exception) -> bool:
    return exc.__class__.__module__.split(".")[0] in ("mlflow", "requests", "urllib3", "sqlalchemy")


def retrying(what: str, call: Callable, attempts: int | None = None):
    """Run ``call``; on a transient failure wait 1, 2, 4... s (jittered) and try again."""
    attempts = max(1, attempts or int(os.environ.get("VGAN_TRACKING_RETRIES", "4")))
    delay = float(os.environ.get("VGAN_TRACKING_BACKOFF_S", "1.0"))
    try:
        return retry(call, attempts=attempts, base_delay=delay, jitter=0.25,
                     retry_if=lambda exc: not isinstance(exc, TrackingError) and is_transient(exc))
    except TrackingError:
        raise
    except Exception as exc:  # noqa: BLE001 - classified below
        if is_transient(exc):
            raise TrackingError(
                f"MLflow at {tracking_uri()} is unreachable ({what} failed {attempts} times: {_one_line(exc)}); "
                "outputs on disk are kept: start the server (or unset MLFLOW_TRACKING_URI for the local "
                "store) and re-run the stage, e.g. `vgan register`") from exc
        if not _is_store_error(exc):
            raise
        raise TrackingError(f"MLflow at {tracking_uri()}: {what} failed: {_one_line(exc)}") from exc


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return f"{exc.__class__.__name__}: {text[:300]}"


def import_mlflow():
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


def store_client():
    mlflow = import_mlflow()
    return mlflow, mlflow.MlflowClient()


def experiment_id_for(client, params) -> str:
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

    return retrying(f"opening experiment {name!r}", get_or_create)


# --- stage runs -------------------------------------------------------------------------------

def _param_strings(tree: dict) -> dict[str, str]:
    """MLflow params are strings: lists as JSON, the rest as ``str``."""
    return {key: json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
            for key, value in dotted(tree).items()}


def finite_metrics(metrics: dict) -> dict[str, float]:
    out = {}
    for key, value in dotted(metrics).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[key] = float(value)
    return out


class StageLogger:
    """What a stage logs into its MLflow run; every call retries, then raises TrackingError."""

    def __init__(self, client, run_id: str):
        self.client = client
        self.run_id = run_id

    def log_params(self, values: dict) -> None:
        from mlflow.entities import Param

        flat = [Param(key, value[:6000]) for key, value in _param_strings(values).items()]
        for start in range(0, len(flat), 100):
            batch = flat[start:start + 100]
            retrying("logging params", lambda: self.client.log_batch(self.run_id, params=batch))

    def log_metrics(self, values: dict, step: int | None = None) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        metrics = [Metric(key, value, stamp, step or 0) for key, value in finite_metrics(values).items()]
        for start in range(0, len(metrics), 1000):
            batch = metrics[start:start + 1000]
            retrying("logging metrics", lambda: self.client.log_batch(self.run_id, metrics=batch))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            retrying(f"uploading {path}", lambda: self.client.log_artifacts(self.run_id, str(path), artifact_path))
        elif path.exists():
            retrying(f"uploading {path}", lambda: self.client.log_artifact(self.run_id, str(path), artifact_path))
        else:
            raise TrackingError(f"cannot log artifact {path}: it does not exist")

    def set_tags(self, tags: dict) -> None:
        for key, value in tags.items():
            retrying("tagging the run", lambda: self.client.set_tag(self.run_id, key, str(value)))

    def log_dataset(self, name: str, manifest: dict, location: str, context: str = "training") -> None:
        """The shards as an MLflow dataset: digest of the manifest, where they are, their shape and counts."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]
        schema = {"frames.npy": {"dtype": "uint8", "shape": manifest.get("clip_shape")},
                  "cls": {"labels": manifest.get("label_names")}}
        profile = {"clips": manifest.get("counts"), "videos": manifest.get("videos"),
                   "quarantined": len(manifest.get("quarantine", []))}
        dataset = Dataset(name=name, digest=digest, source_type="s3" if location.startswith("s3://") else "local",
                          source=json.dumps({"uri": location}), schema=json.dumps(schema),
                          profile=json.dumps(profile))
        entry = DatasetInput(dataset, tags=[InputTag("mlflow.data.context", context)])
        retrying("logging the dataset", lambda: self.client.log_inputs(self.run_id, datasets=[entry]))


# --- one parent run per pipeline run, the stage runs nested under it ---------------------------

def find_stage_run(client, experiment_id: str, pipeline: str, stage: str, newest: bool = False) -> str | None:
    """The id of the first (or newest) run of ``stage`` in pipeline run ``pipeline``, or None."""
    order = "DESC" if newest else "ASC"
    runs = retrying(f"finding the {stage} run", lambda: client.search_runs(
        [experiment_id], max_results=1, order_by=[f"attributes.start_time {order}"],
        filter_string=f"tags.`vgan.pipeline_id` = '{pipeline}' and tags.`vgan.stage` = '{stage}'"))
    return runs[0].info.run_id if runs else None


def pipeline_run(client, experiment_id: str, params, tags: dict) -> str:
    """The parent run of this pipeline run (same pipeline id), created with every param on first use;
    marked RUNNING while one of its stages runs (``finish_pipeline_run`` marks the outcome)."""
    pipeline = tags["vgan.pipeline_id"]
    found = find_stage_run(client, experiment_id, pipeline, PIPELINE_STAGE)
    if found:
        retrying("reopening the pipeline run", lambda: client.update_run(found, status="RUNNING"))
        return found
    parent_tags = {**tags, "vgan.stage": PIPELINE_STAGE, "mlflow.source.name": "dvc repro"}
    run = retrying("starting the pipeline run", lambda: client.create_run(
        experiment_id, run_name=f"{PIPELINE_STAGE}-{pipeline[:8]}", tags=parent_tags))
    StageLogger(client, run.info.run_id).log_params(params.model_dump(mode="json"))
    return run.info.run_id


def finish_pipeline_run(client, run_id: str, status: str) -> None:
    with contextlib.suppress(Exception):  # cosmetic: a stage's own outcome is already recorded
        client.set_terminated(run_id, status)


@contextlib.contextmanager
def stage_run(params, stage: str) -> Iterator[StageLogger]:
    """An MLflow run for one stage, nested under its pipeline's run, tagged with commit, data hash, params
    hash and pipeline id."""
    _, client = store_client()
    experiment_id = experiment_id_for(client, params)
    tags = run_tags(params, stage)
    parent = pipeline_run(client, experiment_id, params, tags)
    tags["mlflow.parentRunId"] = parent
    run_name = f"{stage}-{tags['vgan.pipeline_id'][:8]}"
    run = retrying("starting a run", lambda: client.create_run(experiment_id, run_name=run_name, tags=tags))
    logger = StageLogger(client, run.info.run_id)
    try:
        yield logger
    except BaseException:
        with contextlib.suppress(Exception):
            client.set_terminated(run.info.run_id, "FAILED")
        finish_pipeline_run(client, parent, "FAILED")
        raise
    retrying("closing the run", lambda: client.set_terminated(run.info.run_id, "FINISHED"))
    finish_pipeline_run(client, parent, "FINISHED")


@contextlib.contextmanager
def system_metrics(logger: StageLogger) -> Iterator[None]:
    """CPU, memory, disk, network (and GPU where pynvml is installed) logged to the run every
    ``VGAN_SYSTEM_METRICS_S`` seconds (default 10; 0 = off) while the block runs."""
    interval = float(os.environ.get("VGAN_SYSTEM_METRICS_S", "10"))
    if interval <= 0:
        yield
        return
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # no start/stop lines in the stage output
    monitor = SystemMetricsMonitor(logger.run_id, sampling_interval=interval, samples_before_logging=1,
                                   tracking_uri=tracking_uri())
    monitor.start()
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            monitor.finish()
            # one last sample as the block ends: a run shorter than the interval gets one too
            monitor.collect_metrics()
            monitor.publish_metrics(monitor.aggregate_metrics())
            monitor.mlflow_logger.flush()
