"""The native detectors: Threshold Random Walk, learned baselines, their bounded state, and their rules."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconwatch.cli.main import main
from reconwatch.engine.native.baseline import BaselineDetector
from reconwatch.engine.native.contact import Contact, contact_of
from reconwatch.engine.native.sketch import BloomFilter, HyperLogLog, PeerSet
from reconwatch.engine.native.trw import TrwDetector
from reconwatch.errors import RuleLoadError
from reconwatch.rules.builtin import builtin_text, load_builtin
from reconwatch.rules.load import load_rule_text
from reconwatch.simulate import Simulation, write_events

START = datetime(2026, 1, 1, tzinfo=UTC)
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z in ms


def _contact(
    ms: int, ip: str, *, result: bool = False, success: bool | None = None, port: int = 22,
    exe: str = "/usr/bin/nmap", host: str = "h1",
) -> Contact:  # fmt: skip
    return Contact(
        ms, host, host, exe, exe.rsplit("/", 1)[-1], "e1", ip, port, "tcp", result,
        success if result else None, None if success is None else "established" if success else "timeout",
    )  # fmt: skip


def _probe(trw: TrwDetector, ms: int, ip: str, ok: bool, port: int = 22) -> list[object]:
    trw.push(_contact(ms, ip, port=port))
    return list(trw.push(_contact(ms, ip, result=True, success=ok, port=port)))


def test_trw_uses_jung_et_al_parameters() -> None:
    trw = TrwDetector(load_builtin("recon-trw").detector)  # type: ignore[arg-type]
    assert trw.eta_1 == pytest.approx(99)
    assert trw.eta_0 == pytest.approx(0.01 / 0.99)
    assert math.exp(trw.step_failure) == pytest.approx(4)
    assert math.exp(trw.step_success) == pytest.approx(0.25)


def test_trw_four_failed_first_contacts_make_a_scanner() -> None:
    trw = TrwDetector(load_builtin("recon-trw").detector)  # type: ignore[arg-type]
    found = [f for i in range(4) for f in _probe(trw, T0 + i, f"10.0.0.{i + 1}", ok=False)]
    (finding,) = found
    assert finding.time_ms == T0 + 3  # type: ignore[attr-defined]
    fields = finding.fields  # type: ignore[attr-defined]
    assert fields["reconwatch.trw.failures"] == 4 and fields["reconwatch.trw.attempts"] == 4
    assert fields["host.name"] == "h1" and fields["process.executable"] == "/usr/bin/nmap"
    counted = finding.evidence["counted"]  # type: ignore[attr-defined]
    assert [c["outcome"] for c in counted] == ["failure"] * 4


def test_trw_successes_and_repeats_keep_a_client_benign() -> None:
    trw = TrwDetector(load_builtin("recon-trw").detector)  # type: ignore[arg-type]
    out = []
    # A client with a few peers: mostly answered, and the same peers again and again.
    for i in range(200):
        ip = f"10.0.0.{i % 5 + 1}"
        out += _probe(trw, T0 + i * 1000, ip, ok=i % 7 != 3)
    assert out == []
    # Repeats within contact_memory are not first contacts: three failures to one peer do nothing.
    assert all(_probe(trw, T0 + 10**6 + i, "10.0.0.1", ok=False) == [] for i in range(3))


def test_trw_learning_never_alerts_and_results_without_outcome_do_not_count() -> None:
    trw = TrwDetector(load_builtin("recon-trw").detector)  # type: ignore[arg-type]
    for i in range(8):
        trw.push(_contact(T0 + i, f"10.0.1.{i}"), learn=True)
        assert (
            trw.push(_contact(T0 + i, f"10.0.1.{i}", result=True, success=False), learn=True) == []
        )
    for i in range(8):
        assert trw.push(_contact(T0 + 100 + i, f"10.0.2.{i}", result=True, success=None)) == []


def _baseline(**params: object) -> BaselineDetector:
    rule = load_builtin("recon-baseline")
    assert rule.detector is not None
    spec = rule.detector
    merged = {**spec.params, **params}
    return BaselineDetector(type(spec)(spec.kind, merged))


HOUR = 3_600_000


def test_baseline_learns_peers_then_counts_only_new_destinations() -> None:
    det = _baseline(learning_period=timedelta(hours=1))
    peers = [f"10.9.0.{i}" for i in range(1, 201)]
    for i, ip in enumerate(peers):  # learning: 200 peers
        assert det.push(_contact(T0 + i * 10, ip, exe="/usr/bin/prometheus")) == []
    later = T0 + 2 * HOUR
    # The same 200 peers after learning: none counts.
    assert all(
        det.push(_contact(later + i, ip, exe="/usr/bin/prometheus")) == []
        for i, ip in enumerate(peers)
    )
    # 30 new addresses: the 30th alerts, naming why they counted.
    found = [
        f
        for i in range(30)
        for f in det.push(_contact(later + 1000 + i, f"10.8.0.{i + 1}", exe="/usr/bin/prometheus"))
    ]
    (finding,) = found
    assert finding.fields["reconwatch.baseline.new_destination_count"] == 30
    assert finding.fields["reconwatch.baseline.peer_count"] == 200
    assert "new: not among the 200 destinations" in finding.evidence["counted"][0]["why"]
    assert finding.evidence["not_counted"][0]["why"].startswith("known peer")


def test_baseline_counts_nothing_during_learning_and_promotes_recurring_destinations() -> None:
    det = _baseline(learning_period=timedelta(hours=1), threshold=5)
    assert all(det.push(_contact(T0 + i, f"10.7.0.{i}")) == [] for i in range(50))
    # After learning: 4 new destinations this hour, again the next hour (recurring: peers).
    base = T0 + 2 * HOUR
    for i in range(4):
        assert det.push(_contact(base + i, f"10.6.0.{i}")) == []
    for i in range(4):
        assert det.push(_contact(base + HOUR + i, f"10.6.0.{i}")) == []
    group = det.group_map.get(("h1", "/usr/bin/nmap"))
    assert group is not None and all(f"10.6.0.{i}" in group.peers for i in range(4))


def test_baseline_window_slides_and_answered_fan_outs_do_not_alert() -> None:
    det = _baseline(learning_period=timedelta(minutes=1), threshold=10)
    det.push(_contact(T0, "10.0.0.1"))
    base = T0 + HOUR
    # 9 new destinations, then 9 more 70 minutes later: never 10 within 65 minutes.
    for i in range(9):
        assert det.push(_contact(base + i, f"10.5.0.{i}")) == []
    for i in range(9):
        assert det.push(_contact(base + 70 * 60_000 + i, f"10.5.1.{i}")) == []
    # Outcomes: 10 new destinations, every one answered: a fan-out to live hosts.
    other = "/usr/sbin/bacula-dir"
    out = []
    for i in range(10):
        out += det.push(_contact(base + i, f"10.4.0.{i}", exe=other))
        out += det.push(_contact(base + i, f"10.4.0.{i}", exe=other, result=True, success=True))
    assert out == []


def test_baseline_history_is_only_learned() -> None:
    det = _baseline(learning_period=timedelta(hours=1), threshold=5)
    for i in range(100):
        assert det.push(_contact(T0 + i * 60_000, f"10.3.0.{i}"), learn=True) == []
    assert not det.learning(T0 + 2 * HOUR)
    assert det.push(_contact(T0 + 2 * HOUR, "10.3.0.5")) == []  # learned from the history


def test_bloom_filter_has_no_false_negatives_and_about_its_error() -> None:
    bloom = BloomFilter(2000, 0.01)
    for i in range(2000):
        bloom.add(f"10.0.{i // 256}.{i % 256}")
    assert all(f"10.0.{i // 256}.{i % 256}" in bloom for i in range(2000))
    false = sum(f"172.16.{i // 256}.{i % 256}" in bloom for i in range(20000))
    assert false / 20000 < 0.02
    assert bloom.error_now() == pytest.approx(0.01, rel=0.3)


def test_peer_set_turns_approximate_past_its_exact_size() -> None:
    peers = PeerSet(exact=100, capacity=1000, error=0.01)
    for i in range(100):
        peers.add(f"10.0.0.{i}")
    assert not peers.approximate and len(peers) == 100
    peers.add("10.0.1.1")
    assert peers.approximate and "10.0.1.1" in peers and "10.0.0.7" in peers


def test_hyperloglog_error_is_within_three_standard_errors() -> None:
    hll = HyperLogLog(12)
    n = 50_000
    for i in range(n):
        hll.add(f"item-{i}")
    assert abs(hll.count() - n) / n < 3 * hll.standard_error
    small = HyperLogLog(12)
    for i in range(100):
        small.add(str(i))
    assert abs(small.count() - 100) <= 2


def test_a_bad_detector_table_is_a_load_problem() -> None:
    text = builtin_text("recon-trw").replace("theta_1 = 0.2", "theta_1 = 0.9")
    with pytest.raises(RuleLoadError, match="theta_1"):
        load_rule_text(text, "x.toml")
    text = builtin_text("recon-baseline").replace('window = "65m"', 'window = "soon"')
    with pytest.raises(RuleLoadError, match=r"rule\.detector\.window"):
        load_rule_text(text, "x.toml")
    text = builtin_text("recon-baseline").replace('kind = "baseline"', 'kind = "magic"')
    with pytest.raises(RuleLoadError, match=r"rule\.detector\.kind"):
        load_rule_text(text, "x.toml")


def test_contact_of_reads_nested_flattened_and_dotted_events() -> None:
    assert contact_of({"event.action": ["connection_attempted"], "destination.ip": ["8.8.8.8"],
                       "host.id": ["h"], "process.executable": ["/x"],
                       "@timestamp": ["2026-01-01T00:00:00Z"]}) is None  # external  # fmt: skip
    got = contact_of({"event.action": "connection_result", "event.outcome": "failure",
                      "destination.ip": "10.1.2.3", "destination.port": 22, "host.name": "h",
                      "process.executable": "/x", "@timestamp": "2026-01-01T00:00:00Z"})  # fmt: skip
    assert got is not None and got.result and got.success is False and got.time_ms == T0


@pytest.mark.slow
def test_targeted_scan_with_outcomes_is_found_within_ten_probes(tmp_path: Path) -> None:
    """Blind spot 3 (40 hosts of a subnet, most silent): the seed rule never alerts; the TRW
    rule decides within 10 of the scan's probes."""
    sim = Simulation(hosts=4, hours=2.5, start=START, scans=("targeted",), seed=5, outcomes=True)
    events, out = tmp_path / "e.ndjson", tmp_path / "a.ndjson"
    write_events(sim.stream(), events)
    with pytest.raises(SystemExit) as done:
        main(["detect", "-r", "recon-trw", "-r", "subnet-scanning-seed", str(events),
              "--from", "2026-01-01T00:00:00Z", "--to", "2026-01-01T02:30:00Z", "-o", str(out)])  # fmt: skip
    assert not done.value.code
    alerts = [json.loads(line) for line in out.read_text().splitlines()]
    (planted,) = sim.planted
    (alert,) = alerts  # the seed rule: none
    assert alert["host.name"] == planted.host and alert["process.executable"] == planted.executable
    assert alert["reconwatch.trw.attempts"] <= 10
    assert alert["reconwatch.rule.blind_spots"][0] == "targeted scan"


@pytest.mark.slow
def test_watch_learns_from_history_and_finds_a_slow_scan_not_the_look_alikes(
    tmp_path: Path,
) -> None:
    """The baseline rule in `watch` with --history: Prometheus and Ansible reach their 300
    peers again (quiet), the slow scan's new addresses alert."""
    history, live, out = tmp_path / "h.ndjson", tmp_path / "l.ndjson", tmp_path / "a.ndjson"
    looks = ("prometheus", "ansible", "gitlab", "docker", "elastic-agent")
    write_events(Simulation(hosts=4, hours=13, start=START - timedelta(hours=13),
                            lookalikes=looks, seed=5).stream(), history)  # fmt: skip
    sim = Simulation(hosts=4, hours=2.5, start=START, scans=("slow",), lookalikes=looks, seed=5)
    write_events(sim.stream(), live)
    with pytest.raises(SystemExit) as done:
        main(["watch", "-r", "recon-baseline", "--history", str(history), str(live), "-f", "ndjson",
              "-o", str(out)])  # fmt: skip
    assert not done.value.code
    alerts = [json.loads(line) for line in out.read_text().splitlines()]
    (planted,) = sim.planted
    assert alerts and {(a["host.name"], a["process.executable"]) for a in alerts} == {
        (planted.host, planted.executable)
    }
    assert alerts[0]["reconwatch.detection.path"] == "native"


def test_detect_applies_exceptions_to_native_rules(tmp_path: Path) -> None:
    """An exception item matching the scanning process keeps its events from the detector (no
    alert), as it keeps them from an ES|QL rule's query; one matching nothing changes nothing."""
    sim = Simulation(hosts=4, hours=2.5, start=START, scans=("targeted",), seed=5, outcomes=True)
    events = tmp_path / "e.ndjson"
    write_events(sim.stream(), events)
    (planted,) = sim.planted

    def alerts(exe: str) -> list[dict[str, object]]:
        rules, out = tmp_path / f"x{len(exe)}.toml", tmp_path / f"a{len(exe)}.ndjson"
        rules.write_text(f'[[exception]]\n"process.executable" = "{exe}"\n')
        with pytest.raises(SystemExit) as done:
            main(["detect", "-r", "recon-trw", str(events), "-e", str(rules), "--from",
                  "2026-01-01T00:00:00Z", "--to", "2026-01-01T02:30:00Z", "-o", str(out)])  # fmt: skip
        assert not done.value.code
        return [json.loads(line) for line in out.read_text().splitlines()]

    (alert,) = alerts("/nothing/matches/this")
    assert alert["process.executable"] == planted.executable
    assert alerts(planted.executable) == []
