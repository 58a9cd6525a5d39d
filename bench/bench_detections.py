"""Labelled detection benchmark: seed rule vs current upstream rules vs the recon pack on a simulated fleet with planted scans and benign look-alikes.

The simulator builds a fleet (default 200 hosts x 24 h, with the sensor's outcome events) and a
history (the 12 hours before, no scans) for the baselines to learn from. Labels (every planted
scan and look-alike) go to `labels.json`, which only the scoring reads. Then:

* seed rule and current upstream rules (subnet + port scanning): `detect` with Kibana's hourly
  schedule over the day, read from hourly NDJSON files (each run reads the files its window
  overlaps);
* the pack: its streaming ES|QL rules and its native detectors in `watch`'s executors, the
  day's lines handed over in micro-batches of 1,024 as `watch` reads a file, after the history
  (native detectors: all of it, to learn; ES|QL rules: its last window-length, to fill their
  windows), detection time = the event time the evidence sufficed; real-time latency = from the
  arrival of the batch holding the deciding event to the alert; its scheduled-only campaign
  rule through `detect` every 5 minutes.

The streaming pack and the scheduled rules run in two processes (the machine's two cores), as
do the day and the history while the fleet is built. It prints one table: recall per scan kind,
false alerts per 1,000 host-days, median time and attempts to detection, runZero recognised as an
authorised scanner, and the CPU time of each; then every false alert by rule and by what it
was on (the look-alike its host and executable are labelled with, else the executable of
unlabelled fleet traffic), from the labels alone, after detection.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec

from reconwatch.backends.stream.cells import iso_millis
from reconwatch.backends.stream.decode import PlanDecoder
from reconwatch.engine.collector import settle
from reconwatch.engine.detect import DatasetBackend, Schedule, detect
from reconwatch.engine.native.contact import FIELDS, contact_of
from reconwatch.engine.native.watch import NativeWatch
from reconwatch.engine.watch import RuleWatch
from reconwatch.ingest import Dataset
from reconwatch.plan.values import datetime_to_millis, parse_datetime
from reconwatch.rules.builtin import PACKS, SCHEDULED_ONLY, load_builtin
from reconwatch.simulate import LOOKALIKE_KINDS, SCAN_KINDS, Simulation

START = datetime(2026, 1, 2, tzinfo=UTC)
HISTORY_HOURS = 12
# A detection counts for a scan when it comes no later than this after the scan ended (the
# hourly rules' next run, the slow-scan rule's hour).
GRACE = timedelta(hours=2)
SEED = ["subnet-scanning-seed"]
UPSTREAM = ["subnet-scanning", "port-scanning"]
AUTHORISED = "runzero"


def build(
    out: Path,
    hosts: int,
    hours: float,
    seed: int,
    history_hours: float = HISTORY_HOURS,
    *,
    parallel: bool = True,
) -> dict[str, object]:
    """The day in hourly NDJSON files, the history in one file, the labels apart."""
    out.mkdir(parents=True, exist_ok=True)
    labels_path = out / "labels.json"
    if labels_path.exists():
        return dict(json.loads(labels_path.read_text()))
    if not parallel:
        _history(out, hosts, seed, history_hours)
        labels = _day(out, hosts, hours, seed)
        labels_path.write_text(json.dumps(labels, indent=1))
        return labels
    # The history in a second process (the machine's two cores) while this one builds the day.
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork")) as pool:
        history = pool.submit(_history, out, hosts, seed, history_hours)
        labels = _day(out, hosts, hours, seed)
        history.result()
    labels_path.write_text(json.dumps(labels, indent=1))
    return labels


def _history(out: Path, hosts: int, seed: int, hours: float) -> None:
    """The hours before the day (look-alikes, no scans): only the baselines learn from it."""
    encoder = msgspec.json.Encoder()
    history = Simulation(
        hosts=hosts, hours=hours, start=START - timedelta(hours=hours),
        lookalikes=tuple(LOOKALIKE_KINDS), seed=seed, outcomes=True,
    )  # fmt: skip
    with open(out / "history.ndjson", "wb") as fh:
        for event in history.stream():
            fh.write(encoder.encode(event) + b"\n")


def _day(out: Path, hosts: int, hours: float, seed: int) -> dict[str, object]:
    """The day in hourly NDJSON files; its labels."""
    encoder = msgspec.json.Encoder()
    sim = Simulation(
        hosts=hosts, hours=hours, start=START, scans=tuple(SCAN_KINDS),
        lookalikes=tuple(LOOKALIKE_KINDS), seed=seed, outcomes=True,
    )  # fmt: skip
    files: dict[int, object] = {}
    for event in sim.stream():
        stamp = str(event.get("@timestamp"))
        hour = int((parse_datetime(stamp) - START).total_seconds() // 3600)
        fh = files.get(hour)
        if fh is None:
            fh = files[hour] = open(out / f"day-{hour:02d}.ndjson", "wb")  # noqa: SIM115
        fh.write(encoder.encode(event) + b"\n")  # type: ignore[attr-defined]
    for fh in files.values():
        fh.close()  # type: ignore[attr-defined]

    def row(p: object) -> dict[str, object]:
        d = asdict(p)  # type: ignore[call-overload]
        d["start"], d["end"] = d["start"].isoformat(), d["end"].isoformat()
        return dict(d)

    labels = {
        "hosts": hosts,
        "hours": hours,
        "start": START.isoformat(),
        "scans": [row(p) for p in sim.planted],
        "lookalikes": [row(p) for p in sim.planted_lookalikes],
    }
    return labels


def day_files(out: Path) -> list[Path]:
    return sorted(out.glob("day-*.ndjson"))


LINES_PER_BATCH = 1024  # watch's reader hands the executors micro-batches of about this size
LABEL_FIELDS = ("@timestamp", "event.action", "host.name", "process.executable")


def batches(out: Path) -> Iterator[list[bytes]]:
    """The day's NDJSON lines in time order (the simulator writes in time order; the hourly
    files follow each other), in micro-batches as `watch` reads them."""
    for path in day_files(out):
        lines = path.read_bytes().splitlines()
        for i in range(0, len(lines), LINES_PER_BATCH):
            yield lines[i : i + LINES_PER_BATCH]


def attempt_times(out: Path, wanted: set[tuple[str, str]]) -> dict[tuple[str, str], list[int]]:
    """The planted scans' connection_attempted times (scoring only: attempts to detection),
    decoding only the four fields it needs."""
    decode = PlanDecoder(LABEL_FIELDS).decode
    hosts = {h.encode() for h, _ in wanted}
    attempts: dict[tuple[str, str], list[int]] = defaultdict(list)
    for batch in batches(out):
        for line in batch:
            if not any(h in line for h in hosts):
                continue
            e = decode(line)
            key = (str(e.get("host.name", [""])[0]), str(e.get("process.executable", [""])[0]))
            if key in wanted and "connection_attempted" in e.get("event.action", []):
                stamp = str(e["@timestamp"][0])
                attempts[key].append(iso_millis(stamp) or _millis(stamp))
    return attempts


def _millis(stamp: str) -> int:
    return datetime_to_millis(parse_datetime(stamp))


def scheduled(out: Path, names: list[str]) -> tuple[list[dict[str, object]], float]:
    """Rules on Kibana's schedule over the day, each run reading only the hourly files its
    window overlaps (runs reading the same files share one dataset); the alerts (only what
    the scoring reads) and the CPU seconds."""
    began = time.process_time()
    files = day_files(out)
    alerts: list[dict[str, object]] = []
    for name in names:
        rule = load_builtin(name)
        first = START
        last = START + timedelta(hours=len(files))
        backends: dict[tuple[int, int], DatasetBackend] = {}
        for window in Schedule(first=first, last=last).windows(rule):
            lo = int((window.start - START).total_seconds() // 3600)
            hi = int((window.end - START).total_seconds() // 3600)
            chosen = [f for f in files if lo <= int(f.stem[4:]) <= hi]
            if not chosen:
                continue
            backend = backends.get((lo, hi))
            if backend is None:
                backends.clear()  # windows move forward: an older pair of files is done
                backend = backends[(lo, hi)] = DatasetBackend(Dataset.from_files(chosen))
            report = detect([rule], backend, Schedule(at=window.run_at), evidence=False)
            for alert in report.alerts:
                alert["_detected"] = alert["@timestamp"]
                alert["_rule"] = name
                alerts.append(_scored(alert))
    return alerts, time.process_time() - began


def _scored(alert: dict[str, object]) -> dict[str, object]:
    """What the scoring reads of an alert (alerts cross processes)."""
    keep = ("_detected", "_rule", "host.name", "Esql.host_name_values", "process.executable",
            "Esql.scanner_product", "reconwatch.scanner_product")  # fmt: skip
    return {k: alert[k] for k in keep if k in alert}


def streamed(
    out: Path,
) -> tuple[list[dict[str, object]], list[tuple[float, float]], int, float]:
    """The pack's streaming rules and native detectors over the day's lines in micro-batches,
    as `watch` runs them (each ES|QL rule's window first filled from the history, as `watch
    --history` does); the alerts, each alert's (wall, CPU) seconds from its batch's arrival to
    the alert, the events read and the CPU seconds."""
    began = time.process_time()
    # The process-level rules: the pack's network-level ones read Zeek/flow/firewall indices.
    names = [
        n for n in PACKS["recon"][0] if n not in SCHEDULED_ONLY and not n.startswith("recon-net-")
    ]
    watches: list[RuleWatch | NativeWatch] = []
    for name in names:
        rule = load_builtin(name)
        watches.append(
            NativeWatch.create(rule) if rule.native else RuleWatch.create(rule, evidence=False)
        )
    rule_names = dict(zip(map(id, watches), names, strict=True))
    natives = [w for w in watches if isinstance(w, NativeWatch)]
    decode = PlanDecoder(FIELDS).decode
    contacts = []
    with open(out / "history.ndjson", "rb") as fh:
        for line in fh:
            contact = contact_of(decode(line))
            if contact is not None:
                contacts.append(contact)
    for watch in natives:
        watch.learn(contacts)
    _prime([w for w in watches if isinstance(w, RuleWatch)], out / "history.ndjson")
    alerts: list[dict[str, object]] = []
    latencies: list[tuple[float, float]] = []
    events = 0
    for batch in batches(out):
        events += len(batch)
        # The batch arrives at once (a replayed file): an alert's latency runs from then until
        # its rule hands it back, through the rules before it, as `watch` emits them.
        wall, cpu = time.perf_counter(), time.thread_time()
        for watch in watches:
            fired = watch.push_lines(batch)
            if fired:
                took = (time.perf_counter() - wall, time.thread_time() - cpu)
                for alert in fired:
                    latencies.append(took)
                    alert["_rule"] = rule_names[id(watch)]
                    alert["_detected"] = alert.get(
                        "reconwatch.detector.decided_at",
                        alert.get("reconwatch.stream.trigger_time"),
                    )
                    alerts.append(_scored(alert))
        settle()  # as `watch` does after each batch
    return alerts, latencies, events, time.process_time() - began


def realtime_line(latencies: list[tuple[float, float]]) -> str:
    """Median and p99 of the alerts' real-time latency, wall and CPU."""

    def quantiles(values: list[float]) -> str:
        values = sorted(values)
        p99 = values[min(len(values) - 1, int(0.99 * len(values)))]
        return f"median {statistics.median(values) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"

    walls, cpus = [w for w, _ in latencies], [c for _, c in latencies]
    return (
        f"pack real-time latency, {len(latencies)} streamed alerts (from the arrival of the "
        f"{LINES_PER_BATCH}-line batch holding the deciding event to the alert): wall "
        f"{quantiles(walls)}; CPU {quantiles(cpus)}"
    )


def realtime_by_rule(alerts: list[dict[str, object]], latencies: list[tuple[float, float]]) -> str:
    """The same per rule (`streamed` returns its alerts and their latencies in one order): a
    rule's alerts wait for the rules before it in the batch, as in `watch`."""
    by_rule: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for alert, took in zip(alerts, latencies, strict=True):
        by_rule[str(alert["_rule"])].append(took)
    lines = []
    for rule, took in by_rule.items():
        walls = sorted(w for w, _ in took)
        cpus = sorted(c for _, c in took)
        lines.append(
            f"  {rule}: {len(took)} alerts, wall median {statistics.median(walls) * 1000:.0f} ms "
            f"max {walls[-1] * 1000:.0f} ms; CPU median {statistics.median(cpus) * 1000:.0f} ms "
            f"max {cpus[-1] * 1000:.0f} ms"
        )
    return "\n".join(lines)


def _prime(watches: list[RuleWatch], history: Path) -> None:
    """As `watch --history` does: each ES|QL rule's window filled with the history's last
    window-length of lines (in micro-batches; what matches there is not alerted)."""
    decode = PlanDecoder(("@timestamp",)).decode
    lines = history.read_bytes().splitlines()
    times = [iso_millis(str(decode(line)["@timestamp"][0])) or 0 for line in lines]
    latest = max(times, default=0)
    for watch in watches:
        since = latest - watch.executor.window.length_ms
        chosen = [line for line, ms in zip(lines, times, strict=True) if ms > since]
        for i in range(0, len(chosen), LINES_PER_BATCH):
            watch.prime_lines(chosen[i : i + LINES_PER_BATCH])


def _hosts(alert: dict[str, object]) -> list[str]:
    value = alert.get("host.name", alert.get("Esql.host_name_values"))
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _execs(alert: dict[str, object]) -> list[str]:
    value = alert.get("process.executable")
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _cause(
    look: dict[str, object] | None,
    hosts: list[str],
    execs: list[str],
    scans: list[dict[str, object]],
) -> str:
    """What a false alert was on, from the labels alone: the look-alike it names, a planted
    scan's process outside the scan's time (late or early), or unlabelled fleet traffic (named
    by the executable's file name: the labels list only what was planted)."""
    if look is not None:
        return f"look-alike: {look['kind']}"
    if any(s["host"] in hosts and s["executable"] in execs for s in scans):
        return "planted scan, outside its time + grace"
    return "fleet traffic: " + ", ".join(sorted({e.rsplit("/", 1)[-1] for e in execs}))


def false_alert_table(results: dict[str, dict[str, object]]) -> list[str]:
    """Markdown rows: every (rule, cause) of a false alert, with a count per rule set."""
    names = list(results)
    keys = sorted({k for r in results.values() for k in r["false_by"]})  # type: ignore[attr-defined]
    rows = ["| rule | false alert on | " + " | ".join(names) + " |",
            "|---|---|" + "---|" * len(names)]  # fmt: skip
    for rule, cause in keys:
        counts = [str(results[n]["false_by"].get((rule, cause), "")) for n in names]  # type: ignore[attr-defined]
        rows.append(f"| {rule} | {cause} | " + " | ".join(counts) + " |")
    if not keys:
        rows.append("| (none) | | " + " | ".join("0" for _ in names) + " |")
    return rows


def attempts_to_detection(
    alerts: list[dict[str, object]],
    scan: dict[str, object],
    attempts: dict[tuple[str, str], list[int]],
) -> int | None:
    """The scan's connection attempts from its start up to its first detection (None: not
    found)."""
    found = score(alerts, {"hosts": 1, "hours": 24, "scans": [scan], "lookalikes": []}, attempts)
    probes = found["median_attempts"]
    return None if probes is None else int(probes)  # type: ignore[call-overload]


def score(
    alerts: list[dict[str, object]],
    labels: dict[str, object],
    attempts: dict[tuple[str, str], list[int]],
) -> dict[str, object]:
    scans: list[dict[str, object]] = labels["scans"]  # type: ignore[assignment]
    looks: list[dict[str, object]] = labels["lookalikes"]  # type: ignore[assignment]
    found: dict[int, datetime] = {}
    false = 0
    causes: Counter[tuple[str, str]] = Counter()
    authorised_named = authorised_alerts = 0
    for alert in alerts:
        at = parse_datetime(str(alert["_detected"]))
        hosts, execs = _hosts(alert), _execs(alert)
        matched = False
        for i, s in enumerate(scans):
            begin, end = parse_datetime(str(s["start"])), parse_datetime(str(s["end"]))
            if s["host"] in hosts and s["executable"] in execs and begin <= at <= end + GRACE:
                matched = True
                if i not in found or at < found[i]:
                    found[i] = at
        if matched:
            continue
        look = next((lk for lk in looks if lk["host"] in hosts and lk["executable"] in execs), None)
        if look is not None and look["kind"] == AUTHORISED:
            authorised_alerts += 1
            named = alert.get("Esql.scanner_product") or alert.get("reconwatch.scanner_product")
            authorised_named += named == "runZero"
            if named == "runZero":
                continue
        false += 1
        causes[(str(alert.get("_rule", "?")), _cause(look, hosts, execs, scans))] += 1
    per_kind: dict[str, list[bool]] = defaultdict(list)
    delays, probes = [], []
    for i, s in enumerate(scans):
        per_kind[str(s["kind"])].append(i in found)
        if i in found:
            begin = parse_datetime(str(s["start"]))
            delays.append(max(0.0, (found[i] - begin).total_seconds()))
            times = attempts.get((str(s["host"]), str(s["executable"])), [])
            lo, hi = int(begin.timestamp() * 1000), int(found[i].timestamp() * 1000)
            probes.append(sum(lo <= t <= hi for t in times))
    host_days = int(labels["hosts"]) * float(labels["hours"]) / 24  # type: ignore[arg-type]
    return {
        "recall": {k: sum(v) / len(v) for k, v in per_kind.items()},
        "overall": len(found) / len(scans),
        "false_alerts": false,
        "fa_per_1000_host_days": false * 1000 / host_days,
        "false_by": dict(causes),
        "median_seconds": statistics.median(delays) if delays else None,
        "median_attempts": statistics.median(probes) if probes else None,
        "authorised": f"{authorised_named}/{authorised_alerts} named"
        if authorised_alerts
        else "not alerted",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--hours", type=float, default=24)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--history-hours", type=float, default=HISTORY_HOURS)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "reconwatch-bench-detections",
        help="where the fleet is built once and kept (a second run reuses it)",
    )
    args = parser.parse_args()
    out = args.workdir / f"fleet-{args.hosts}x{args.hours:g}h-s{args.seed}"
    if args.history_hours != HISTORY_HOURS:
        out = out.with_name(f"{out.name}-history{args.history_hours:g}h")
    began = time.process_time()
    wall = time.time()
    labels = build(out, args.hosts, args.hours, args.seed, args.history_hours)
    print(
        f"fleet built in {time.process_time() - began:.0f} s CPU: {out} (labels apart: labels.json)"
    )
    wanted = {(str(s["host"]), str(s["executable"])) for s in labels["scans"]}  # type: ignore[attr-defined]
    attempts = attempt_times(out, wanted)
    # Two processes (the machine's two cores): the streaming pack; the scheduled rules.
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("fork")) as pool:
        live_job = pool.submit(streamed, out)
        campaign_job = pool.submit(scheduled, out, sorted(SCHEDULED_ONLY))
        seed_job = pool.submit(scheduled, out, SEED)
        upstream_job = pool.submit(scheduled, out, UPSTREAM)
        live, latencies, count, live_cpu = live_job.result()
        campaign, campaign_cpu = campaign_job.result()
        seed, seed_cpu = seed_job.result()
        upstream, upstream_cpu = upstream_job.result()
    print(f"{count:,} events, {len(labels['scans'])} planted scans, "  # type: ignore[arg-type]
          f"{len(labels['lookalikes'])} look-alikes")  # type: ignore[arg-type]  # fmt: skip
    results = {
        "seed rule": score(seed, labels, attempts),
        "upstream rules": score(upstream, labels, attempts),
        "recon pack": score(live + campaign, labels, attempts),
    }
    cpu = {"seed rule": seed_cpu, "upstream rules": upstream_cpu,
           "recon pack": live_cpu + campaign_cpu}  # fmt: skip
    kinds = sorted({str(s["kind"]) for s in labels["scans"]})  # type: ignore[attr-defined]
    names = list(results)
    print("| | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for kind in kinds:
        print(
            f"| recall: {kind} | "
            + " | ".join(f"{results[n]['recall'][kind]:.2f}" for n in names)
            + " |"
        )  # type: ignore[index]
    rows = [
        ("overall recall", "overall", "{:.2f}"),
        ("false alerts (count)", "false_alerts", "{}"),
        ("false alerts per 1,000 host-days", "fa_per_1000_host_days", "{:.1f}"),
        ("median time to detection (s)", "median_seconds", "{:.0f}"),
        ("median attempts to detection", "median_attempts", "{:.0f}"),
        ("runZero (authorised)", "authorised", "{}"),
    ]
    for label, key, fmt in rows:
        cells = [fmt.format(results[n][key]) if results[n][key] is not None else "-" for n in names]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print("| CPU seconds | " + " | ".join(f"{cpu[n]:.0f}" for n in names) + " |")
    print()
    print("False alerts by rule and what they were on (from labels.json, after detection):")
    print("\n".join(false_alert_table(results)))
    if latencies:
        print(realtime_line(latencies))
        print(realtime_by_rule(live, latencies))
    print(f"wall time: {time.time() - wall:.0f} s")


if __name__ == "__main__":
    main()
