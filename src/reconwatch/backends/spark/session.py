"""The one SparkSession of a process, started lazily (a JVM start takes seconds) on the chosen master."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconwatch.errors import ReconwatchError

if TYPE_CHECKING:
    from pyspark import SparkContext

# Local mode unless told otherwise (`--spark-master`, or RECONWATCH_SPARK_MASTER).
DEFAULT_MASTER = "local[*]"
MASTER_ENV = "RECONWATCH_SPARK_MASTER"
# Small data per query: a handful of shuffle partitions, not Spark's 200.
SHUFFLE_PARTITIONS = 4
LOG_CONFIG = Path(__file__).with_name("log4j2.properties")

_LOCK = threading.Lock()
_state: dict[str, Any] = {"master": None, "session": None}


class SparkUnavailableError(ReconwatchError):
    """Spark cannot start here: pyspark or Java is missing. Says what to install."""

    exit_code = 2


def configure(master: str | None) -> None:
    """Choose the master URL before the session starts (`local[2]`, `spark://127.0.0.1:7077`)."""
    with _LOCK:
        if _state["session"] is not None and master not in (None, _state["master"]):
            msg = f"a Spark session on [{_state['master']}] is running; cannot switch to [{master}]"
            raise SparkUnavailableError(msg)
        _state["master"] = master


def check_available() -> None:
    """SparkUnavailableError naming what to install when pyspark or Java is missing."""
    try:
        import pyspark  # noqa: F401
    except ImportError as exc:
        msg = "the Spark engine needs pyspark: pip install 'reconwatch[spark]'"
        raise SparkUnavailableError(msg) from exc
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not java or not os.access(java, os.X_OK):
        msg = (
            "the Spark engine needs Java 17 or later: apt-get install openjdk-17-jre-headless "
            "(or set JAVA_HOME)"
        )
        raise SparkUnavailableError(msg)


def session() -> Any:
    """The process's SparkSession, started on first use."""
    with _LOCK:
        if _state["session"] is None:
            _state["session"] = _start(_state["master"] or os.environ.get(MASTER_ENV))
        return _state["session"]


def context() -> SparkContext:
    sc: SparkContext = session().sparkContext
    return sc


def stop() -> None:
    """Stop the session (tests that start their own cluster; the process's end does it too)."""
    with _LOCK:
        running = _state["session"]
        _state["session"] = None
        if running is not None:
            running.stop()


def _start(master: str | None) -> Any:
    check_available()
    from pyspark.sql import SparkSession

    chosen = master or DEFAULT_MASTER
    if chosen.startswith("local") or chosen.startswith("spark://127."):
        # A machine-local run talks over loopback only, not the host's first interface.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # Workers run this interpreter, so they import the same reconwatch as the driver.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(chosen)
        .appName("reconwatch")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(SHUFFLE_PARTITIONS))
        .config("spark.default.parallelism", str(SHUFFLE_PARTITIONS))
        .config("spark.python.worker.reuse", "true")
        .config("spark.sql.session.timeZone", "UTC")
        # Python workers see the driver's hash seed: group keys hash alike on every worker.
        .config("spark.executorEnv.PYTHONHASHSEED", "0")
        .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={LOG_CONFIG}")
        .config("spark.executor.extraJavaOptions", f"-Dlog4j2.configurationFile={LOG_CONFIG}")
    )
    log = Path(tempfile.gettempdir()) / f"reconwatch-spark-{os.getpid()}.log"
    try:
        with _stderr_to(log):
            spark = builder.getOrCreate()
    except Exception as exc:  # the JVM did not start: say so in one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        msg = f"Spark did not start on [{chosen}]: {first} (the JVM's output: {log})"
        raise SparkUnavailableError(msg) from exc
    spark.sparkContext.setLogLevel("ERROR")
    return spark


@contextlib.contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """The JVM inherits standard error: point it at a log file while it starts, so its banner
    and chatter stay off the user's terminal (reconwatch reports failures in one line)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with path.open("ab") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
