"""S3 end to end against a real S3-compatible server on loopback (moto), credentials from the environment only:
downloads, shards streamed to training, a DVC remote, and MLflow's artifact store."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import run_cli, write_tiny_params
from servers import create_bucket, mlflow_on_s3, s3_client, s3_env, s3_server  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.servers]


@pytest.fixture
def aws_env(s3_server, monkeypatch):  # noqa: F811
    """This process talks to the store as a user's would: AWS_* variables, nothing else."""
    env = s3_env(s3_server)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def upload_folder(client, folder: Path, url: str) -> list[str]:
    """Every file of ``folder`` to ``s3://bucket/prefix``."""
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    keys = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        key = f"{prefix}/{path.name}".lstrip("/")
        client.upload_file(str(path), bucket, key)
        keys.append(key)
    return keys


def list_keys(client, url: str) -> list[str]:
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


@pytest.fixture(scope="module")
def shards_on_s3(s3_server, tiny_shards):  # noqa: F811
    """The tiny shards folder uploaded as it is (manifest + tars) under s3://vgan-shards/tiny."""
    bucket = create_bucket(s3_server, "vgan-shards")
    upload_folder(s3_client(s3_server), tiny_shards / "data/shards", f"{bucket}/tiny")
    return f"{bucket}/tiny"


def test_urls_source_downloads_from_s3_and_checks_the_checksum(aws_env, s3_server, tmp_path):  # noqa: F811
    from test_sources import lavfi_video

    from vgan.data.fetch import fetch
    from vgan.params import UrlSource, default_params
    from vgan.util.errors import DataError

    bucket = create_bucket(s3_server, "vgan-raw")
    video = lavfi_video(tmp_path / "upload" / "walk.mp4")
    upload_folder(s3_client(s3_server), video.parent, f"{bucket}/videos")
    digest = hashlib.sha256(video.read_bytes()).hexdigest()
    data = {"source": "urls", "raw_dir": str(tmp_path / "raw"),
            "urls": [UrlSource(url=f"{bucket}/videos/walk.mp4", sha256=digest)]}
    index = fetch(default_params(data=data))
    assert [v["path"] for v in index["videos"]] == ["walk.mp4"]
    assert (tmp_path / "raw" / "walk.mp4").read_bytes() == video.read_bytes()

    wrong = {"source": "urls", "raw_dir": str(tmp_path / "raw2"),
             "urls": [UrlSource(url=f"{bucket}/videos/walk.mp4", sha256="0" * 64)]}
    with pytest.raises(DataError, match="checksum mismatch"):
        fetch(default_params(data=wrong))
    assert not list((tmp_path / "downloads").glob("*.partial"))


def test_training_batches_streamed_from_s3_equal_the_local_ones(aws_env, shards_on_s3, tiny_shards):
    from vgan.params import load_params
    from vgan.train.run import shard_batches

    local = load_params(tiny_shards / "params.yaml", [f"shards.out_dir={tiny_shards / 'data/shards'}",
                                                       "train.num_workers=0", "train.batch_size=4"])
    remote = load_params(tiny_shards / "params.yaml", [f"train.shards_url={shards_on_s3}", "train.num_workers=0",
                                                        "train.batch_size=4", "shards.out_dir=/nonexistent"])
    for epoch in (0, 1):  # two seeded epochs: the shard order and the shuffle both depend on it
        local_batches = list(shard_batches(local)(epoch, 0))
        remote_batches = list(shard_batches(remote)(epoch, 0))
        assert len(local_batches) == len(remote_batches) == 36 // 4
        # model.channels auto, resolved from each manifest (the remote one fetched from S3): grey digits, 1 channel
        assert local_batches[0][0].shape[-1] == remote_batches[0][0].shape[-1] == 1
        for (clips_a, labels_a), (clips_b, labels_b) in zip(local_batches, remote_batches):
            assert torch.equal(clips_a, clips_b) and torch.equal(labels_a, labels_b)


def test_vgan_train_reads_its_shards_from_s3_without_a_local_copy(aws_env, shards_on_s3, tmp_path):
    folder = tmp_path / "no-local-data"
    folder.mkdir()
    write_tiny_params(folder / "params.yaml")
    result = run_cli("vgan", "train", "--set", f"train.shards_url={shards_on_s3}", "--set", "train.steps=2",
                     "--set", "train.num_workers=1", cwd=folder, env=aws_env)  # a DataLoader worker reads S3 too
    assert (folder / "models/generator.pt").is_file(), result.stderr[-2000:]
    assert not (folder / "data").exists()
    assert not [p for p in folder.rglob("*") if p.suffix == ".tar"]  # streamed, never copied to disk

    missing = run_cli("vgan", "train", "--set", "train.shards_url=s3://vgan-shards/absent", cwd=folder, env=aws_env,
                      check=False)
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    assert "no s3://vgan-shards/absent/manifest.json" in missing.stderr


@pytest.fixture(scope="module")
def clone_from_s3_remote(s3_server, tiny_repo, tmp_path_factory):  # noqa: F811
    """A user pushes the pipeline's data to an S3 DVC remote; a teammate clones the project and pulls it.

    The pusher is a copy of the session's pipeline repo that borrows its DVC cache and commits the results
    there, so the shared repo's own remotes and commits stay as other tests expect, in any test order."""
    env = s3_env(s3_server)
    bucket = create_bucket(s3_server, "vgan-dvc")
    root = tmp_path_factory.mktemp("s3remote")
    pusher, teammate = root / "pusher", root / "teammate"
    shutil.copytree(tiny_repo, pusher, symlinks=True,
                    ignore=lambda folder, names: ["cache"] if Path(folder).name == ".dvc" else [])
    run_cli("dvc", "cache", "dir", "--local", str(tiny_repo / ".dvc/cache"), cwd=pusher)
    subprocess.run(["git", "add", "-A"], cwd=pusher, check=True)
    subprocess.run(["git", "commit", "-qm", "pipeline results", "--allow-empty"], cwd=pusher, check=True)
    run_cli("dvc", "remote", "add", "-d", "team", f"{bucket}/cache", cwd=pusher)
    run_cli("dvc", "remote", "modify", "team", "endpointurl", s3_server.url, cwd=pusher)
    subprocess.run(["git", "commit", "-qam", "team remote on S3"], cwd=pusher, check=True)
    pushed = run_cli("dvc", "push", cwd=pusher, env=env)
    subprocess.run(["git", "clone", "-q", str(pusher), str(teammate)], check=True)
    pulled = run_cli("dvc", "pull", cwd=teammate, env=env)
    return {"pusher": pusher, "teammate": teammate, "push": pushed, "pull": pulled, "bucket": bucket, "env": env,
            "client": s3_client(s3_server)}


def test_dvc_remote_on_s3_push_pull_then_repro_is_a_noop(clone_from_s3_remote):
    pusher, teammate, env = (clone_from_s3_remote[k] for k in ("pusher", "teammate", "env"))
    assert list_keys(clone_from_s3_remote["client"], f"{clone_from_s3_remote['bucket']}/cache")  # objects landed
    for out in ("data/shards/manifest.json", "models/generator.pt", "metrics/evaluate.json"):
        assert (teammate / out).read_bytes() == (pusher / out).read_bytes(), out
    repro = run_cli("dvc", "repro", cwd=teammate, env={**env, "MLFLOW_TRACKING_URI": f"sqlite:///{teammate}/mlflow.db"})
    assert "Data and pipelines are up to date" in repro.stdout, repro.stdout[-2000:]
    assert not (teammate / "mlflow.db").exists()  # nothing ran


def test_mlflow_artifacts_on_s3_and_the_champion_loads_in_another_process(clone_from_s3_remote, mlflow_on_s3,  # noqa: F811
                                                                          s3_server):  # noqa: F811
    teammate = clone_from_s3_remote["teammate"]
    assert mlflow_on_s3.extra["artifacts"] == "s3://vgan-mlflow/artifacts"
    # the client needs no S3 credentials: the server proxies artifacts (--artifacts-destination)
    client_env = {"MLFLOW_TRACKING_URI": mlflow_on_s3.url}
    assert not any(key in os.environ for key in s3_env(s3_server))
    registered = run_cli("vgan", "register", "--set", "registry.gate_baselines=[]", cwd=teammate, env=client_env)
    register = json.loads((teammate / "metrics/register.json").read_text())
    assert register["champion_version"] == register["version"], registered.stdout
    script = (
        "import mlflow, sys\n"
        f"model = mlflow.pyfunc.load_model('models:/{register['name']}@champion')\n"
        "videos = model.predict({'seed': [0, 1]})\n"
        "print(videos.shape, videos.dtype)\n")
    loaded = subprocess.run([sys.executable, "-c", script], cwd=teammate, capture_output=True, text=True, timeout=300,
                            env={**os.environ, **client_env})
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.strip().splitlines()[-1] == "(2, 8, 16, 16, 3) uint8"
    stored = list_keys(s3_client(s3_server), "s3://vgan-mlflow/artifacts")
    assert any(key.endswith("MLmodel") for key in stored), stored[:20]  # the model's files are in the bucket
