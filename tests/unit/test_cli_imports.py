"""The CLI imports only the command being run: `query` loads neither the other commands nor their engines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROBE = """
import sys
from reconwatch.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print("\\nLOADED " + " ".join(sorted(m for m in sys.modules if m.startswith("reconwatch"))))
"""

OTHER_COMMANDS = (
    "reconwatch.cli.conformance",
    "reconwatch.cli.detect",
    "reconwatch.cli.export",
    "reconwatch.cli.sensor",
    "reconwatch.cli.simulate",
    "reconwatch.cli.watch",
    "reconwatch.conformance.runner",
    "reconwatch.engine.detect",
    "reconwatch.backends.stream.executor",
    "reconwatch.backends.reference.execute",
    "reconwatch.backends.spark.session",
    "reconwatch.sensor.outputs",
    "reconwatch.alerts.render",
)


def loaded(*args: str) -> tuple[set[str], str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=False
    )
    head, _, tail = out.stdout.rpartition("\nLOADED ")
    return set(tail.split()), head


def test_query_imports_only_its_own_command(tmp_path: Path) -> None:
    path = tmp_path / "e.ndjson"
    path.write_text(json.dumps({"@timestamp": "2024-01-01T00:00:00Z", "host": {"name": "a"}}))
    modules, stdout = loaded(
        "query", "from logs-* | stats n = count(*)", str(path), "--format", "json"
    )
    assert json.loads(stdout) == [{"n": 1}]
    assert "reconwatch.cli.query" in modules
    assert sorted(m for m in OTHER_COMMANDS if m in modules) == []


def test_help_lists_every_command() -> None:
    modules, stdout = loaded("--help")
    for name in ("conformance", "detect", "query", "rules", "simulate", "sensor", "watch"):
        assert name in stdout
    assert "reconwatch.cli.watch" in modules
