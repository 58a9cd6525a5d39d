"""`serve --rule recon`: the recon pack's rules, ES|QL and native detectors, run in the service."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import Clock
from reconwatch.rules.builtin import PACKS, load_builtin
from reconwatch.service.assemble import build
from reconwatch.service.config import ServiceConfig
from reconwatch.service.demo import SAMPLE_END, load_demo


@pytest.mark.slow  # a recon rule's run binds a large query: seconds each on this machine
def test_the_recon_pack_runs_over_the_demo(tmp_path: Path) -> None:
    config = ServiceConfig(data_dir=tmp_path, rule=("recon",), builtin_rules=False)
    service = build(config, Clock(datetime(2025, 7, 16, 10, 5, tzinfo=UTC)))
    try:
        assert service.scheduler is not None
        pack = [load_builtin(name) for name in PACKS["recon"][0]]
        native = {r.rule_id for r in pack if r.native}
        assert set(service.scheduler.states) == {r.rule_id for r in pack}
        assert native, "the pack has native detectors"
        assert service.rule_failures == []
        assert service.realtime is not None and native <= set(service.realtime.enabled())
        stored, _created = load_demo(service.store, None)
        assert stored > 2900
        for rule_id, state in service.scheduler.states.items():
            # The last window of the sample's hour, once per rule.
            outcomes = service.scheduler.run_manual(
                rule_id, SAMPLE_END - state.rule.interval, SAMPLE_END
            )
            assert outcomes and all(o.record.error is None for o in outcomes), outcomes
    finally:
        service.close()
