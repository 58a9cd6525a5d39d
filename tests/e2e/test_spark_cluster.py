"""The Spark executor on a real standalone cluster the test starts on 127.0.0.1 (a master and two
workers from the PySpark distribution), compared with DuckDB; and a worker killed mid-run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import ROOT

pyspark = pytest.importorskip("pyspark")

pytestmark = [pytest.mark.slow, pytest.mark.serial]

SAMPLE = ROOT / "src" / "reconwatch" / "data" / "sample" / "defend-network-sample.ndjson.gz"
RUN_AT = "2025-07-16T10:00:00Z"
# A deadline for the cluster to come up, not a timing assumption: polling stops at readiness.
READY_WITHIN = 180.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Cluster:
    url: str
    workers: list[subprocess.Popen[bytes]]
    work_dirs: list[Path]


def _spark_class() -> str:
    return str(Path(pyspark.__file__).parent / "bin" / "spark-class")


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SPARK_HOME=str(Path(pyspark.__file__).parent),
        SPARK_LOCAL_IP="127.0.0.1",
        SPARK_LOG_DIR=str(tmp),
        PYSPARK_PYTHON=sys.executable,
    )
    return env


def _wait_for(path: Path, text: str, count: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_WITHIN
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the Spark master exited: {path.read_text(errors='replace')[-2000:]}")
        if path.exists() and path.read_text(errors="replace").count(text) >= count:
            return
        time.sleep(0.2)
    pytest.fail(f"the cluster did not come up: {path.read_text(errors='replace')[-2000:]}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("spark-cluster")
    env = _env(tmp)
    port = _free_port()
    url = f"spark://127.0.0.1:{port}"
    started: list[subprocess.Popen[bytes]] = []
    master_log = tmp / "master.log"
    with master_log.open("wb") as log:
        master = subprocess.Popen(
            [
                _spark_class(),
                "org.apache.spark.deploy.master.Master",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--webui-port",
                str(_free_port()),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started.append(master)
    workers: list[subprocess.Popen[bytes]] = []
    dirs: list[Path] = []
    try:
        for i in range(2):
            work = tmp / f"worker{i}"
            work.mkdir()
            with (tmp / f"worker{i}.log").open("wb") as log:
                proc = subprocess.Popen(
                    [
                        _spark_class(),
                        "org.apache.spark.deploy.worker.Worker",
                        "--host",
                        "127.0.0.1",
                        "--cores",
                        "1",
                        "--memory",
                        "1g",
                        "--webui-port",
                        str(_free_port()),
                        "--work-dir",
                        str(work),
                        url,
                    ],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            started.append(proc)
            workers.append(proc)
            dirs.append(work)
        _wait_for(master_log, "Registering worker", 2, master)
        yield Cluster(url, workers, dirs)
    finally:
        for proc in reversed(started):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _reconwatch(args: list[str], tmp: Path) -> subprocess.Popen[bytes]:
    env = _env(tmp)
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "reconwatch"), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp,
    )


def _alerts(out: bytes) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


DETECT = ["detect", str(SAMPLE), "--now", RUN_AT, "-f", "ndjson"]
QUERY = [
    "query",
    (
        "FROM logs-* | STATS c = COUNT(*), d = COUNT_DISTINCT(destination.ip), "
        "v = VALUES(process.name) BY host.name | SORT c DESC, host.name"
    ),
    str(SAMPLE),
    "--format",
    "ndjson",
]


def _run(args: list[str], tmp: Path) -> bytes:
    proc = _reconwatch(args, tmp)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()[-3000:]
    return out


def test_cluster_gives_duckdbs_alerts_and_rows(cluster: Cluster, tmp_path: Path) -> None:
    on_spark = ["--engine", "spark", "--spark-master", cluster.url]
    want = _alerts(_run(DETECT, tmp_path))
    got = _alerts(_run([*DETECT, *on_spark], tmp_path))
    assert want, "the sample should raise the seed rule's alert"
    assert got == want
    assert _run([*QUERY, *on_spark], tmp_path) == _run(QUERY, tmp_path)


def _runs(worker: subprocess.Popen[bytes], *marks: bytes) -> bool:
    """Whether a process of this worker's group has one of `marks` in its command line."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != worker.pid:
                continue
            cmd = (entry / "cmdline").read_bytes()
        except (OSError, ProcessLookupError):
            continue
        if any(mark in cmd for mark in marks):
            return True
    return False


def _python_workers_of(worker: subprocess.Popen[bytes]) -> bool:
    """Whether an executor of this worker runs Python tasks (pyspark.daemon in its group)."""
    return _runs(worker, b"pyspark.daemon", b"pyspark.worker")


def _executor_of(worker: subprocess.Popen[bytes]) -> bool:
    """Whether this worker runs an executor of the application."""
    return _runs(worker, b"CoarseGrainedExecutorBackend")


def test_worker_killed_mid_run_still_gives_the_same_alerts(
    cluster: Cluster, tmp_path: Path
) -> None:
    many_runs = ["--from", "2025-07-16T09:00:00Z", "--to", "2025-07-16T12:00:00Z"]
    args = ["detect", str(SAMPLE), *many_runs, "-f", "ndjson"]
    want = _alerts(_run(args, tmp_path))
    proc = _reconwatch([*args, "--engine", "spark", "--spark-master", cluster.url], tmp_path)
    victim, other = cluster.workers
    killed_mid_run = False
    deadline = time.monotonic() + READY_WITHIN
    # The victim is killed once the query's tasks run: on it, or on the other worker while the
    # victim holds an executor of the run. The runs read each file once and cache it (detect
    # --from/--to), so every task of a short run can land on one worker; the victim's executor
    # and the cached blocks it holds are lost all the same, and Spark must redo them.
    while proc.poll() is None and time.monotonic() < deadline:
        if _python_workers_of(victim) or (_python_workers_of(other) and _executor_of(victim)):
            os.killpg(victim.pid, signal.SIGKILL)
            killed_mid_run = proc.poll() is None
            break
        time.sleep(0.05)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()[-3000:]
    assert killed_mid_run, "the run ended before its tasks ran with an executor on the first worker"
    assert victim.wait() is not None
    assert _alerts(out) == want
