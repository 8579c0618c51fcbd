"""Real servers for the marked tests: Prefect, MLflow (sqlite or PostgreSQL backend, local or S3 artifacts),
PostgreSQL, an S3-compatible object store (moto's server) and Dask.

Each server is a subprocess on 127.0.0.1 at a free port, started at most once per pytest process
(the fixtures below share one instance even when several test modules import them; every server
that a selected test needs starts in parallel on the first request) and stopped by its PID at the
end of the session. Use from a test module with
``from servers import mlflow_server, prefect_server, postgres_server  # noqa: F401``. The Dask
scheduler and workers have no shared fixture: a test that kills workers starts its own cluster.

S3 clients (boto3, s3fs, DVC, MLflow) find the store the way a user's would, through the environment:
``s3_env(server)`` gives the AWS_* variables (fake credentials, ``AWS_ENDPOINT_URL``) to set.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from vgan import QUIET_ENV

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen
    home: Path
    log: Path
    extra: dict = field(default_factory=dict)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM to the server's process group (it was started in its own), then SIGKILL."""
        if self.process.poll() is not None:
            return
        with_group = _signal_group(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=4)
        except subprocess.TimeoutExpired:
            _signal_group(self.process.pid, signal.SIGKILL) if with_group else self.process.kill()
            self.process.wait(timeout=10)


def _signal_group(pid: int, sig: int) -> bool:
    try:
        os.killpg(pid, sig)  # the group id is the server's own PID (start_new_session=True)
        return True
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
        return False


_RUNNING: dict[str, Server] = {}


def _wait_http(server: Server, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.url.rstrip("/") + path, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"{server.name} did not answer {path} within {timeout:.0f} s:\n{server.log_tail()}")


def _spawn(name: str, argv: list[str], env: dict, home: Path, **popen) -> tuple[subprocess.Popen, Path]:
    log = home / f"{name}.log"
    handle = open(log, "wb")
    process = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               env=env, cwd=home, start_new_session=True, **popen)
    handle.close()
    return process, log


def start_prefect(home: Path | None = None, timeout: float = 120) -> Server:
    """``prefect server start`` with its own PREFECT_HOME (own sqlite database), UI off."""
    home = Path(home or tempfile.mkdtemp(prefix="vgan-prefect-"))
    port = free_port()
    env = {**os.environ, **QUIET_ENV, "PREFECT_HOME": str(home), "PREFECT_UI_ENABLED": "false",
           "PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_SERVER_API_PORT": str(port),
           "PREFECT_LOGGING_LEVEL": "WARNING"}
    env.pop("PREFECT_API_URL", None)
    process, log = _spawn("prefect", [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1",
                                      "--port", str(port)], env, home)
    server = Server("prefect server", f"http://127.0.0.1:{port}/api", process, home, log)
    _wait_http(server, "/health", timeout)
    return server


def start_mlflow(backend_uri: str | None = None, home: Path | None = None, timeout: float = 120,
                 artifacts: str | None = None, extra_env: dict | None = None) -> Server:
    """``mlflow server`` on a sqlite (default) or given backend, artifacts proxied into a local folder (default)
    or ``artifacts`` (e.g. ``s3://bucket/prefix``, with ``extra_env`` holding the store's AWS_* variables)."""
    home = Path(home or tempfile.mkdtemp(prefix="vgan-mlflow-"))
    port = free_port()
    backend_uri = backend_uri or f"sqlite:///{home / 'mlflow.db'}"
    artifacts = artifacts or str(home / "artifacts")
    env = {**os.environ, **QUIET_ENV, **(extra_env or {})}
    env.pop("MLFLOW_TRACKING_URI", None)
    argv = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--backend-store-uri", backend_uri, "--artifacts-destination", artifacts]
    process, log = _spawn("mlflow", argv, env, home)
    server = Server("mlflow server", f"http://127.0.0.1:{port}", process, home, log,
                    {"backend": backend_uri, "artifacts": artifacts})
    _wait_http(server, "/health", timeout)
    return server


def start_s3(home: Path | None = None, timeout: float = 60) -> Server:
    """moto's S3-compatible server (buckets in memory); clients reach it through ``s3_env(server)``."""
    home = Path(home or tempfile.mkdtemp(prefix="vgan-s3-"))
    port = free_port()
    env = {**os.environ, **QUIET_ENV}
    process, log = _spawn("s3", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], env, home)
    server = Server("s3 (moto)", f"http://127.0.0.1:{port}", process, home, log)
    _wait_http(server, "/moto-api/", timeout)
    return server


def s3_env(server: Server) -> dict[str, str]:
    """The variables every S3 client here reads: credentials, region and the endpoint (no config files)."""
    return {"AWS_ACCESS_KEY_ID": "vgan-test", "AWS_SECRET_ACCESS_KEY": "vgan-test-secret",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": server.url,
            "MLFLOW_S3_ENDPOINT_URL": server.url}


def s3_client(server: Server):
    """A boto3 client of the store with its settings passed in (this process's environment untouched)."""
    import boto3

    env = s3_env(server)
    return boto3.client("s3", endpoint_url=server.url, region_name=env["AWS_DEFAULT_REGION"],
                        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])


def create_bucket(server: Server, name: str) -> str:
    s3_client(server).create_bucket(Bucket=name)
    return f"s3://{name}"


def _start_mlflow_on_s3() -> Server:
    store = _get("s3")
    bucket = create_bucket(store, "vgan-mlflow")
    return start_mlflow(artifacts=f"{bucket}/artifacts", extra_env=s3_env(store))


def start_dask_scheduler(home: Path | None = None, timeout: float = 60) -> Server:
    """``dask scheduler`` on loopback, dashboard off; ``url`` is its tcp:// address."""
    home = Path(home or tempfile.mkdtemp(prefix="vgan-dask-"))
    port = free_port()
    argv = [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"]
    process, log = _spawn("dask-scheduler", argv, {**os.environ, **QUIET_ENV}, home)
    server = Server("dask scheduler", f"tcp://127.0.0.1:{port}", process, home, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dask scheduler exited with {process.returncode}:\n{server.log_tail()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"dask scheduler did not listen within {timeout:.0f} s:\n{server.log_tail()}")


def start_dask_worker(scheduler: Server, name: str) -> Server:
    """One ``dask worker`` process with one thread that can import vgan; no nanny, so a killed worker stays
    dead (the test's way to lose one). Registration is the caller's to wait for (``Client.wait_for_workers``)."""
    python_path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, **QUIET_ENV, "PYTHONPATH": python_path}
    argv = [str(BIN / "dask"), "worker", scheduler.url, "--name", name, "--nthreads", "1", "--no-nanny",
            "--no-dashboard", "--local-directory", str(scheduler.home / name)]
    process, log = _spawn(f"dask-worker-{name}", argv, env, scheduler.home)
    return Server(f"dask worker {name}", scheduler.url, process, scheduler.home, log)


def postgres_bin(tool: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"))
    return found[-1] if found else shutil.which(tool)


def ensure_postgres_installed() -> None:
    """Install Debian's postgresql (and the venv's driver) with the project script when missing."""
    if postgres_bin("initdb") and _has_driver():
        return
    script = REPO / "scripts" / "install_postgres.sh"
    result = subprocess.run(["bash", str(script), sys.executable], capture_output=True, text=True)
    if result.returncode != 0 or not postgres_bin("initdb") or not _has_driver():
        pytest.skip(f"PostgreSQL is not available and {script.name} could not install it: "
                    f"{(result.stderr or result.stdout).strip()[-300:]}")


def _has_driver() -> bool:
    probe = subprocess.run([sys.executable, "-c", "import psycopg2"], capture_output=True)
    return probe.returncode == 0


def start_postgres(home: Path | None = None, timeout: float = 60) -> Server:
    """A throwaway cluster (trust auth, loopback only) owned by user ``postgres`` when we are root."""
    ensure_postgres_installed()
    home = Path(home or tempfile.mkdtemp(prefix="vgan-postgres-"))
    data = home / "data"
    port = free_port()
    as_user = {}
    if os.geteuid() == 0:
        import pwd

        account = pwd.getpwnam("postgres")
        os.chown(home, account.pw_uid, account.pw_gid)
        as_user = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    subprocess.run([postgres_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True, env=env, cwd=home, **as_user)
    argv = [postgres_bin("postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port), "-k", str(home),
            "-c", "fsync=off", "-c", "max_connections=50"]
    process, log = _spawn("postgres", argv, env, home, **as_user)
    server = Server("postgres", f"postgresql://postgres@127.0.0.1:{port}/postgres", process, home, log,
                    {"port": port})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"postgres exited with {process.returncode}:\n{server.log_tail()}")
        ready = subprocess.run([postgres_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True)
        if ready.returncode == 0:
            return server
        time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"postgres did not accept connections within {timeout:.0f} s:\n{server.log_tail()}")


def create_database(server: Server, name: str) -> str:
    subprocess.run([postgres_bin("createdb"), "-h", "127.0.0.1", "-p", str(server.extra["port"]), "-U", "postgres",
                    name], check=True, capture_output=True)
    return f"postgresql://postgres@127.0.0.1:{server.extra['port']}/{name}"


# --- session fixtures: every server the selected tests need starts at once, in parallel ----------

_STARTERS = {
    "prefect": (("prefect_server",), lambda: start_prefect()),
    "mlflow": (("mlflow_server",), lambda: start_mlflow()),
    "postgres": (("postgres_server", "mlflow_on_postgres"), lambda: start_postgres()),
    "mlflow-postgres": (("mlflow_on_postgres",),
                        lambda: start_mlflow(backend_uri=create_database(_get("postgres"), "mlflow"))),
    "s3": (("s3_server", "mlflow_on_s3"), lambda: start_s3()),
    "mlflow-s3": (("mlflow_on_s3",), _start_mlflow_on_s3),
}
_FUTURES: dict = {}
_POOL = ThreadPoolExecutor(max_workers=len(_STARTERS), thread_name_prefix="vgan-server")


def _warm_up(request) -> None:
    """Start (without waiting for) each server some selected test uses, so start-ups overlap."""
    wanted = set()
    for item in request.session.items:
        wanted.update(getattr(item, "fixturenames", ()))
    for key, (fixtures, start) in _STARTERS.items():
        if key not in _FUTURES and wanted.intersection(fixtures):
            _FUTURES[key] = _POOL.submit(start)


def _get(key: str) -> Server:
    if key not in _FUTURES:
        _FUTURES[key] = _POOL.submit(_STARTERS[key][1])
    server = _FUTURES[key].result()
    _RUNNING[key] = server
    return server


def _stop(key: str) -> None:
    future = _FUTURES.pop(key, None)
    if future is not None and future.done() and future.exception() is None:
        _RUNNING.pop(key, None)
        future.result().stop()


def _stop_all() -> None:
    for key in ("mlflow-postgres", "mlflow-s3", "mlflow", "prefect", "postgres", "s3"):
        _stop(key)
    for server in _RUNNING.values():
        server.stop()


atexit.register(_stop_all)


@pytest.fixture(scope="session")
def prefect_server(request):
    _warm_up(request)
    yield _get("prefect")
    _stop("prefect")


@pytest.fixture(scope="session")
def mlflow_server(request):
    _warm_up(request)
    yield _get("mlflow")
    _stop("mlflow")


@pytest.fixture(scope="session")
def postgres_server(request):
    _warm_up(request)
    yield _get("postgres")
    _stop("mlflow-postgres")
    _stop("postgres")


@pytest.fixture(scope="session")
def mlflow_on_postgres(request, postgres_server):
    _warm_up(request)
    yield _get("mlflow-postgres")
    _stop("mlflow-postgres")


@pytest.fixture(scope="session")
def s3_server(request):
    _warm_up(request)
    yield _get("s3")
    _stop("mlflow-s3")
    _stop("s3")


@pytest.fixture(scope="session")
def mlflow_on_s3(request, s3_server):
    """An MLflow server whose artifacts (models, samples) live in the S3 store, proxied for clients."""
    _warm_up(request)
    yield _get("mlflow-s3")
    _stop("mlflow-s3")
