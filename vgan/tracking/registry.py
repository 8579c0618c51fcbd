"""The MLflow model registry: register the generator, apply the quality gate, move champion/challenger.

Every registered version gets alias ``challenger``; ``champion`` moves to it only when it beats the current
champion on ``registry.metric`` and passes the gate (``registry.gate_baselines``). The decision, the gate's
verdict and their reasons are tags on the version. Store access and retries: ``vgan.tracking.runs``.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

from vgan.metrics.catalog import BASELINE_NAMES, baseline_key
from vgan.tracking.export import log_generator_model
from vgan.tracking.promotion_lock import promotion_lock
from vgan.tracking.provenance import repo_root, run_tags
from vgan.tracking.runs import (
    StageLogger,
    experiment_id_for,
    find_stage_run,
    finish_pipeline_run,
    finite_metrics,
    import_mlflow,
    pipeline_run,
    recorded_tracking_uri,
    retrying,
    sqlite_file,
    store_client,
    tracking_uri,
)
from vgan.util.errors import TrackingError

CHAMPION = "champion"
CHALLENGER = "challenger"


def _metric_of(version, metric: str) -> float | None:
    raw = version.tags.get(f"metric.{metric}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


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


def _promote_version(client, params, name: str, version: str) -> dict:
    """Under the lock: move challenger (forward only) and champion (if better); tag decision on the version."""
    metric, direction = params.registry.metric, params.registry.direction
    with promotion_lock(client, name):
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
                    "tracking_uri": recorded_tracking_uri()}
        previous = str(champion.version) if champion else None
        promoted, reason = decide(candidate_value, _metric_of(champion, metric) if champion else None,
                                  previous, metric, direction, params.registry.min_improvement, gate)
        if promoted:
            client.set_registered_model_alias(name, CHAMPION, version)
        decision_tags = {
            "vgan.decision": "promoted" if promoted else "rejected",
            "vgan.reason": reason,
            "vgan.gate": gate_record["gate"],
            "vgan.gate_baselines": ",".join(gate_names),
            "vgan.compared_to": previous or "",
        }
        for key, value in decision_tags.items():
            client.set_model_version_tag(name, version, key, value)
        # the versions table shows descriptions in a column of their own: the decision is readable at a glance
        client.update_model_version(name, version, description=f"{decision_tags['vgan.decision']}: {reason}")
        if promoted and previous:
            client.set_model_version_tag(name, previous, "vgan.superseded_by", str(version))
        champion_now = _alias_version(client, name, CHAMPION)
    return {"name": name, "version": int(version),
            "champion_version": int(champion_now.version) if champion_now else None,
            "promoted": promoted, "reason": reason, "metric": metric, "value": candidate_value, **gate_record,
            "tracking_uri": recorded_tracking_uri()}


def _artifact_folder(path: Path) -> str | None:
    """Where a file or folder goes in the run: its place in the repo (``samples``, ``metrics``...)."""
    try:
        relative = path.resolve().relative_to(repo_root())
    except ValueError:
        return path.name if path.is_dir() else None
    folder = relative if path.is_dir() else relative.parent
    return None if str(folder) in ("", ".") else folder.as_posix()


def _log_register_run(mlflow, client, experiment_id: str, tags: dict, params, generator, flat_metrics: dict,
                      artifacts: list[Path]) -> tuple[str, object, str]:
    """The register stage's MLflow run: params, metrics, artifacts, a preview and the logged model.
    Returns (run id, the model's info, its serialisation)."""
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"register-{tags['vgan.pipeline_id'][:8]}",
                          tags=tags) as run:
        logger = StageLogger(client, run.info.run_id)
        logger.log_params(params.model_dump(mode="json"))
        logger.log_metrics(flat_metrics)
        for path in artifacts:
            if Path(path).exists():
                logger.log_artifact(path, _artifact_folder(Path(path)))
        _log_preview(client, run.info.run_id, artifacts, getattr(generator, "trained_steps", None))
        model_info, serialization = log_generator_model(
            generator, {"model_name": params.registry_model_name(),
                        "trained_steps": getattr(generator, "trained_steps", None)})
    return run.info.run_id, model_info, serialization


def _create_version(client, params, model_info, run_id: str, flat_metrics: dict, tags: dict):
    """A new version of the registered model (created on first use), tagged with the gate's inputs and provenance."""
    name, metric = params.registry_model_name(), params.registry.metric
    with contextlib.suppress(Exception):
        client.create_registered_model(name, tags={"vgan.dataset": params.data.source},
                                       description=f"vgan video generator trained on {params.data.source}")
    # the primary metric and each baseline's value of it (the gate's inputs); the rest stays on the run
    primary = {metric} | {baseline_key(baseline, metric) for baseline in BASELINE_NAMES}
    version_tags = {f"metric.{key}": f"{value:.8g}" for key, value in flat_metrics.items() if key in primary}
    # provenance; the stage, pipeline and params tags stay on the run (vgan.run_id leads there)
    version_tags.update({key: tags[key] for key in ("vgan.git_commit", "vgan.data_hash")})
    return client.create_model_version(name, model_info.model_uri, run_id=run_id, tags=version_tags,
                                       model_id=model_info.model_id)


def register_and_promote(params, generator_path: str | Path, metrics: dict, artifacts: list[Path],
                         baselines: dict | None = None) -> dict:
    """Log the generator, metrics and artifacts; register a version; alias challenger; maybe champion.

    baselines: {baseline name: {metric: value}} (evaluate's table); each baseline's ``registry.metric`` becomes
    metric ``baseline_<name>_<metric>`` and a version tag, so the quality gate needs nothing but the registry.
    """
    from vgan.train.generator_file import load_generator

    generator, _ = load_generator(generator_path, use_ema=True, map_location="cpu")
    if generator.conditional:
        # the served model maps seeds (and labels) to videos; a conditional model needs real clips instead
        raise TrackingError(f"model.name = {params.model.name!r} predicts from context clips (its input is "
                            f"made from real clips); the registry's seed-to-video model does not serve "
                            f"{generator.task} models yet (its metrics are in metrics/evaluate.json)")
    mlflow, client = store_client()
    experiment_id = experiment_id_for(client, params)
    tags = run_tags(params, "register")
    tags["mlflow.parentRunId"] = parent = pipeline_run(client, experiment_id, params, tags)
    name = params.registry_model_name()
    flat_metrics = finite_metrics(metrics)
    metric = params.registry.metric
    flat_metrics.update(finite_metrics({baseline_key(baseline, metric): row[metric]
                                         for baseline, row in (baselines or {}).items()
                                         if baseline != "model" and isinstance(row.get(metric), (int, float))}))

    try:
        run_id, model_info, serialization = retrying(
            "logging the generator",
            lambda: _log_register_run(mlflow, client, experiment_id, tags, params, generator, flat_metrics, artifacts),
            attempts=2)
    except BaseException:
        finish_pipeline_run(client, parent, "FAILED")
        raise
    _link_model_to_training(client, experiment_id, tags["vgan.pipeline_id"], model_info.model_id,
                            getattr(generator, "trained_steps", None))
    model_version = retrying(f"registering {name}",
                             lambda: _create_version(client, params, model_info, run_id, flat_metrics, tags))
    result = retrying("promoting", lambda: _promote_version(client, params, name, model_version.version))
    StageLogger(client, run_id).set_tags({"vgan.registered_version": model_version.version,
                                          "vgan.serialization": serialization,
                                          "vgan.decision": "promoted" if result["promoted"] else "rejected"})
    finish_pipeline_run(client, parent, "FINISHED")
    return {**result, "run_id": run_id}


def _log_preview(client, run_id: str, artifacts: list[Path], step: int | None) -> None:
    """The contact sheet as an MLflow image (the run page's image panel) and one sample GIF at the top of the
    run's artifacts, so a reviewer sees the videos without opening folders."""
    samples = next((Path(p) for p in artifacts if Path(p).is_dir() and Path(p).name == "samples"), None)
    if samples is None:
        return
    sheets = sorted(samples.glob("*contact_sheet*.png"))
    gifs = sorted(samples.glob("*_grid.gif")) or sorted(samples.glob("*.gif"))  # the grid shows every sample
    if sheets:
        from PIL import Image

        with Image.open(sheets[0]) as sheet:
            image = sheet.convert("RGB")
        retrying("logging the contact sheet", lambda: client.log_image(run_id, image, key="contact_sheet",
                                                                       step=step or 0))
        retrying("logging the contact sheet", lambda: client.log_artifact(run_id, str(sheets[0])))
    if gifs:
        retrying("logging a sample", lambda: client.log_artifact(run_id, str(gifs[0])))


def _link_model_to_training(client, experiment_id: str, pipeline: str, model_id: str, step: int | None) -> None:
    """Record the logged model as an output of the pipeline's train run (the train run page links to it)."""
    from mlflow.entities import LoggedModelOutput

    train_run = find_stage_run(client, experiment_id, pipeline, "train", newest=True)
    if train_run:
        retrying("linking the model to its train run",
                 lambda: client.log_outputs(train_run, [LoggedModelOutput(model_id, step or 0)]))


def promote(params, version: int | str | None = None) -> dict:
    """Re-run the promotion decision for ``version`` (default: the challenger) of the registry model."""
    uri = tracking_uri()
    database = sqlite_file(uri)
    if database is not None and not database.exists():
        # opening it would create an empty store here (e.g. outside the project) before failing
        raise TrackingError(f"no MLflow store at {uri}: run `vgan register` first, from the project folder, or set "
                            f"MLFLOW_TRACKING_URI")
    _, client = store_client()
    name = params.registry_model_name()

    def pick() -> str:
        if version is not None:
            return str(client.get_model_version(name, str(version)).version)
        challenger = _alias_version(client, name, CHALLENGER)
        if challenger is None:
            raise TrackingError(f"registered model {name!r} has no {CHALLENGER!r} version; run `vgan register` first")
        return str(challenger.version)

    chosen = retrying(f"finding the version of {name} to promote", pick)
    return retrying("promoting", lambda: _promote_version(client, params, name, chosen))


def champion_uri(params) -> str:
    """``models:/<name>@champion`` for ``mlflow.pyfunc.load_model``."""
    return f"models:/{params.registry_model_name()}@{CHAMPION}"


def load_champion(params):
    """The champion as a pyfunc model: ``predict(pd.DataFrame({"seed": [...]}))`` -> uint8 (N, T, H, W, C)."""
    mlflow = import_mlflow()
    return retrying("loading the champion", lambda: mlflow.pyfunc.load_model(champion_uri(params)))


def _version_record(version, metric: str) -> dict:
    tags = version.tags
    return {"version": int(version.version), "value": _metric_of(version, metric),
            "decision": tags.get("vgan.decision", ""), "reason": tags.get("vgan.reason", ""),
            "gate": tags.get("vgan.gate", ""),
            "git_commit": tags.get("vgan.git_commit", ""), "data_hash": tags.get("vgan.data_hash", ""),
            "run_id": version.run_id or ""}


def registry_summary(params) -> dict:
    """Champion and challenger of the registry model (version, primary metric, decision, reason)."""
    _, client = store_client()
    name, metric = params.registry_model_name(), params.registry.metric

    def read() -> dict:
        found = {alias: _alias_version(client, name, alias) for alias in (CHAMPION, CHALLENGER)}
        return {"name": name, "metric": metric, "direction": params.registry.direction,
                **{alias: _version_record(v, metric) if v else None for alias, v in found.items()}}

    return retrying(f"reading the registry entry {name}", read)
