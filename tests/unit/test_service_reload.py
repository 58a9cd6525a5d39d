"""Rule directories reloaded on change: a new rule runs, an edited one changes, a broken file is
reported (file, field, reason) and the others keep running, a removed rule stops."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from conftest import Clock
from reconwatch.service.assemble import build
from reconwatch.service.config import ServiceConfig

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
A = "00000000-0000-4000-8000-00000000000a"
B = "00000000-0000-4000-8000-00000000000b"

RULE = """[metadata]
creation_date = "2026/03/01"
maturity = "production"
updated_date = "2026/03/01"

[rule]
author = ["test"]
description = "d"
from = "now-61m"
interval = "{interval}"
language = "esql"
license = "Apache-2.0"
name = "{name}"
risk_score = 21
rule_id = "{rule_id}"
severity = "low"
type = "esql"
query = '''
from logs-endpoint.events.network-*
| stats n = count(*) by host.name
| where n > 1000
| keep host.name, n
'''
"""


def _write(path: Path, name: str, rule_id: str, interval: str = "5m", bump: int = 0) -> None:
    path.write_text(RULE.format(name=name, rule_id=rule_id, interval=interval))
    # A distinct modification time even within the filesystem's clock granularity.
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + bump * 1_000_000_000))


def test_rule_directory_changes_apply_without_a_restart(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    _write(rules / "a.toml", "rule a", A)
    service = build(
        ServiceConfig(data_dir=tmp_path / "data", rules=(rules,), builtin_rules=False),
        Clock(NOW),
    )
    try:
        scheduler = service.scheduler
        assert scheduler is not None and set(scheduler.states) == {A}
        assert service.reload_rules() is False  # nothing changed
        # A new rule, an edited one, a broken file.
        _write(rules / "b.toml", "rule b", B, bump=1)
        _write(rules / "a.toml", "rule a v2", A, interval="10m", bump=2)
        (rules / "broken.toml").write_text("[rule]\nname = 'x'\n")
        assert service.reload_rules() is True
        assert set(scheduler.states) == {A, B}
        assert scheduler.states[A].rule.name == "rule a v2"
        assert scheduler.states[A].rule.interval_text == "10m"
        assert len(service.rule_failures) == 1
        assert "broken.toml" in service.rule_failures[0]
        # Each rule runs on its schedule after the change.
        assert {o.record.rule_id for o in scheduler.tick()} == {A, B}
        # Removed: no longer scheduled; the broken file fixed: no failure left.
        (rules / "b.toml").unlink()
        (rules / "broken.toml").unlink()
        assert service.reload_rules() is True
        assert set(scheduler.states) == {A} and service.rule_failures == []
    finally:
        service.close()
