"""Deterministic benign fleet traffic plus planted scans, as Elastic Defend network events."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from reconwatch.plan.values import format_datetime
from reconwatch.simulate.fleet import (
    EXTERNAL_WEB,
    FLEET_SERVER,
    NTP_POOL,
    RESOLVER,
    EventFactory,
    Host,
    Process,
    make_fleet,
)

# Benign traffic is made this much simulated time at a time (bounds `stream`'s memory).
CHUNK = timedelta(minutes=10)
NMAP = Process("/usr/bin/nmap", args=("nmap", "-sn"))
# kind -> what it plants (docs and `reconwatch simulate --help` list these)
SCAN_KINDS: dict[str, str] = {
    "subnet": "nmap host discovery of 300 addresses in 10.30.0.0/23 within ~4 minutes (alerts)",
    "port": "nmap connect scan of 1000 ports on one host (port-scanning rule alerts)",
    "slow": "300 addresses spread over 3 hours, ~100 per hour (stays under the threshold)",
    "split": "300 addresses over 60 minutes straddling a run boundary (each run sees ~150)",
    "ipv6": "sweep of 300 IPv6 addresses in fd00:30::/64 (alerts)",
    "distributed": "the same scanner on two hosts, 200 addresses each (agent count 2: no alert)",
    "interpreter": "python3 sweeps 300 addresses in 10 minutes; python3 also runs on another host "
    "(agent count 2: no alert)",
    "targeted": "40 hosts of one /24 probed on 22, 445 and 3389 within 2 minutes (under 250)",
    "crawl": "400 addresses over 8 hours, 50 per hour, on 22 (under any hourly threshold)",
    "syn": "nmap -sS as root: raw SYN probes to 443 and 80 of 300 addresses within ~4 minutes "
    "(reconwatch.probe raw; no outcome events)",
    "udp": "nmap -sU as root: raw UDP probes to 53, 161 and 123 of 120 addresses (no outcomes)",
    "icmp": "fping: ICMP echo sweep of 300 addresses through a raw socket (no port, no outcomes)",
    "dotted": "a sweep of 300 addresses whose events are written with dotted keys (half fully "
    "dotted, half mixed with nested objects)",
}
FPING = Process("/usr/bin/fping", args=("fping", "-a", "-g"))
# Benign TCP connections whose outcome is a failure (a peer restarting, a lost packet).
BENIGN_FAILURE_RATE = 0.02
PYTHON = Process("/usr/bin/python3", user="ops")
# kind -> the benign fan-out it adds (look-alikes of a scan; none of them is labelled a scan)
LOOKALIKE_KINDS: dict[str, str] = {
    "prometheus": "Prometheus scraping 300 exporters in 10.48.0.0/23 on 9100 every 5 minutes",
    "ansible": "Ansible (ssh from the bastion) reaching 300 hosts in 10.41.0.0/23 every 30 minutes",
    "backup": "a backup director starting nightly jobs on 300 clients in 10.42.0.0/23 (port 9102, "
    "4 at a time, 2 minutes each)",
    "cdn": "a browser reaching 300 external CDN addresses on 443 within the hour, again and again",
    "runzero": "runZero's scanner agent sweeping 300 addresses in 10.43.0.0/23 (an authorised "
    "scanner: the pack alerts and names it)",
    "discovery": "Consul agents' gossip: each minute 12 random members of 300 in 10.49.0.0/23 on "
    "8301 (service discovery)",
    "updater": "apt and snapd reaching 300 external CDN mirrors on 443 every 2 hours",
    "firefox": "Firefox (snap) reaching 300 external addresses on 443 within the hour, again and again",
    "virtualbox": "VBoxHeadless (a VM's NAT) reaching 400 external addresses and 20 internal ones",
    "elastic-agent": "Elastic Agent's heartbeat monitoring 300 internal endpoints on 443 every 10 "
    "minutes",
    "gitlab": "GitLab's bundled Prometheus scraping 300 exporters in 10.51.0.0/23 every 15 minutes",
    "qbittorrent": "qBittorrent in a Docker container reaching 1,500 external peers on high ports, "
    "most of them failing",
    "docker": "a Docker-run connector (connectord) reaching 300 internal services every 10 minutes",
}


@dataclass(frozen=True, slots=True)
class PlantedScan:
    kind: str
    host: str
    start: datetime
    end: datetime
    targets: int
    executable: str = NMAP.executable


class Simulation:
    """Events for `hosts` machines over `hours` from `start`, with `scans` planted; same seed,
    same events."""

    def __init__(
        self,
        *,
        hosts: int,
        hours: float,
        start: datetime,
        scans: tuple[str, ...] = (),
        lookalikes: tuple[str, ...] = (),
        seed: int = 0,
        outcomes: bool = False,
    ) -> None:
        unknown = [s for s in scans if s not in SCAN_KINDS]
        if unknown:
            msg = f"unknown scan kind {unknown[0]!r}; kinds: {', '.join(SCAN_KINDS)}"
            raise ValueError(msg)
        odd = [s for s in lookalikes if s not in LOOKALIKE_KINDS]
        if odd:
            msg = f"unknown look-alike {odd[0]!r}; look-alikes: {', '.join(LOOKALIKE_KINDS)}"
            raise ValueError(msg)
        if hosts < 3:
            msg = "need at least 3 hosts (monitoring, bastion, one more)"
            raise ValueError(msg)
        self.start = start
        self.end = start + timedelta(hours=hours)
        self.seed = seed
        self.rng = random.Random(seed)
        self.fleet = make_fleet(hosts, self.rng)
        self.factory = EventFactory(self.rng)
        self.scans = scans
        self.lookalikes = lookalikes
        # With outcomes, every attempt is followed by a connection_result event as reconwatch's
        # eBPF sensor writes it; scanned addresses stay silent but for one in ten.
        self.outcomes = outcomes
        self.silent: set[str] = set()
        # (address, port) a live target refuses (RST): its other ports are closed.
        self.closed: set[tuple[str, int]] = set()
        self.planted: list[PlantedScan] = []
        # Benign fan-outs added on purpose; a detector should stay quiet (runzero: name it).
        self.planted_lookalikes: list[PlantedScan] = []

    def events(self) -> list[dict[str, object]]:
        """All events sorted by @timestamp (in memory: `stream` for large fleets)."""
        return list(self.stream())

    def stream(self) -> Iterator[dict[str, object]]:
        """All events sorted by @timestamp, made one CHUNK of time at a time: memory holds one
        chunk of the fleet's traffic, not the whole span (1,000 hosts x 12 h is 4 GB of dicts)."""
        # Planted scans are small (at most a few thousand events): made first, merged in by time.
        # Streamed again, the same events are made again (same seed): record them once.
        self.rng = random.Random(self.seed)
        self.fleet = make_fleet(len(self.fleet), self.rng)
        self.factory = EventFactory(self.rng)
        self.planted, self.planted_lookalikes = [], []
        self.silent, self.closed = set(), set()
        planted = [e for i, kind in enumerate(self.scans) for e in self._scan(kind, i)]
        planted += [e for kind in self.lookalikes for e in self._lookalike(kind)]
        planted.sort(key=_stamp)
        taken = 0
        begin = self.start
        while begin < self.end:
            end = min(begin + CHUNK, self.end)
            chunk = list(self._benign(begin, end))
            limit = format_datetime(end)
            while taken < len(planted) and _stamp(planted[taken]) < limit:
                chunk.append(planted[taken])
                taken += 1
            chunk.sort(key=_stamp)
            yield from self._with_outcomes(chunk)
            begin = end
        yield from self._with_outcomes(planted[taken:])

    def _with_outcomes(self, events: list[dict[str, object]]) -> Iterator[dict[str, object]]:
        """The events, each attempt followed by its result when outcomes are on (stamped at the
        attempt's time, so the stream stays sorted)."""
        for event in events:
            dotted = event.pop("_dotted", None)
            yield _dotted(event, bool(dotted == "all")) if dotted else event
            if (
                self.outcomes
                and event["event"]["action"] == "connection_attempted"  # type: ignore[index]
                and "reconwatch" not in event  # raw, packet, datagram probes: no outcome
                and event["network"]["transport"] == "tcp"  # type: ignore[index]
            ):
                yield self._result(event)

    def _result(self, attempt: dict[str, object]) -> dict[str, object]:
        dest: dict[str, object] = attempt["destination"]  # type: ignore[assignment]
        ip = str(dest["ip"])
        refused = (ip, dest.get("port")) in self.closed
        answered = ip not in self.silent and not refused
        if answered and self.rng.random() < BENIGN_FAILURE_RATE:
            refused = True
            answered = False
        result = dict(attempt)
        event: dict[str, object] = dict(attempt["event"])  # type: ignore[call-overload]
        self.factory.sequence += 1
        event.update(
            action="connection_result",
            type=["end"],
            outcome="success" if answered else "failure",
            reason="established" if answered else "refused" if refused else "timeout",
            sequence=self.factory.sequence,
            id=f"{self.rng.getrandbits(64):016X}",
        )
        result["event"] = event
        return result

    # -- benign traffic ------------------------------------------------------------------------

    def _times(self, per_hour: float, begin: datetime, end: datetime) -> Iterator[datetime]:
        """Poisson arrivals over [begin, end) (memoryless: chunks join without a seam)."""
        if per_hour <= 0:
            return
        mean = 3600.0 / per_hour
        t = begin + timedelta(seconds=self.rng.expovariate(1 / mean))
        while t < end:
            yield t
            t += timedelta(seconds=self.rng.expovariate(1 / mean))

    def _benign(self, begin: datetime, end: datetime) -> Iterator[dict[str, object]]:
        f, rng = self.factory, self.rng

        def times(per_hour: float) -> Iterator[datetime]:
            return self._times(per_hour, begin, end)

        monitoring, bastion = self.fleet[0], self.fleet[1]
        resolved = Process("/usr/lib/systemd/systemd-resolved", user="systemd-resolve")
        chrony = Process("/usr/sbin/chronyd", user="_chrony")
        agent = Process("/opt/Elastic/Agent/data/elastic-agent-8.15.2-a1b2c3/elastic-agent")
        curl, apt = Process("/usr/bin/curl"), Process("/usr/lib/apt/methods/http", user="_apt")
        for host in self.fleet:
            for t in times(30):
                yield f.connection(
                    host, resolved, t, dest_ip=RESOLVER, dest_port=53, transport="udp"
                )
            for t in times(2):
                yield f.connection(
                    host, chrony, t, dest_ip=rng.choice(NTP_POOL), dest_port=123, transport="udp"
                )
            for t in times(12):
                yield f.connection(host, agent, t, dest_ip=FLEET_SERVER, dest_port=8220)
            for t in times(4):
                proc = curl if rng.random() < 0.6 else apt
                yield f.connection(host, proc, t, dest_ip=rng.choice(EXTERNAL_WEB), dest_port=443)
            if host.role in ("web", "app"):
                yield from self._app_traffic(host, times)
            # node_exporter scraped by the monitoring server: an accepted connection here ...
            exporter = Process("/usr/local/bin/node_exporter", user="node_exporter")
            for t in times(4):
                yield f.connection(
                    host,
                    exporter,
                    t,
                    dest_ip=host.ip,
                    dest_port=9100,
                    action="connection_accepted",
                    source_ip=monitoring.ip,
                )
        # ... and the scrapes themselves: one Prometheus process reaching every host, a classic
        # false positive of the 2025-07-16 rule for fleets above 250 hosts (upstream excludes it).
        prometheus = Process("/usr/local/bin/prometheus", user="prometheus")
        for host in self.fleet:
            for t in times(4):
                yield f.connection(monitoring, prometheus, t, dest_ip=host.ip, dest_port=9100)
        ssh = Process("/usr/bin/ssh", user="ops")
        for t in times(20):
            target = rng.choice(self.fleet[2:])
            yield f.connection(bastion, ssh, t, dest_ip=target.ip, dest_port=22)

    def _app_traffic(
        self, host: Host, times: Callable[[float], Iterator[datetime]]
    ) -> Iterator[dict[str, object]]:
        dbs = [h for h in self.fleet if h.role == "db"] or self.fleet[2:3]
        caches = [h for h in self.fleet if h.role == "cache"] or self.fleet[2:3]
        app = Process("/usr/local/bin/app-server", user="app")
        for t in times(25):
            yield self.factory.connection(
                host, app, t, dest_ip=self.rng.choice(dbs).ip, dest_port=5432
            )
        for t in times(15):
            yield self.factory.connection(
                host, app, t, dest_ip=self.rng.choice(caches).ip, dest_port=6379
            )

    # -- planted scans -------------------------------------------------------------------------

    def _scan(self, kind: str, number: int) -> list[dict[str, object]]:
        # The first planted scan runs on host 2; each further one on a host of its own, so a
        # fleet can hold every kind at once and each stays apart (labels by host and executable).
        host = self._scan_host(number)
        span = (self.end - self.start).total_seconds()
        if kind == "subnet":
            return self._sweep(kind, host, _v4_targets(300, 30), self._at(0.5), 240)
        if kind == "ipv6":
            targets = [f"fd00:30::{i + 1:x}" for i in range(300)]
            return self._sweep(kind, host, targets, self._at(0.6), 240)
        if kind == "slow":
            return self._sweep(kind, host, _v4_targets(300, 40), self.start, min(span, 3 * 3600.0))
        if kind == "split":
            middle = self.start + timedelta(hours=max(1, int(span // 3600) // 2))
            begin = middle - timedelta(minutes=30)
            return self._sweep(kind, host, _v4_targets(300, 50), begin, 3600)
        if kind == "distributed":
            other = self._scan_host(number, 1)
            targets = _v4_targets(400, 60)
            first = self._sweep(kind, host, targets[:200], self._at(0.4), 300)
            return first + self._sweep(kind, other, targets[200:], self._at(0.45), 300)
        if kind == "interpreter":
            events = self._sweep(kind, host, _v4_targets(300, 44), self._at(0.35), 600, PYTHON)
            # The same interpreter on another host, as on any fleet: the seed rule's agent count.
            other = self._scan_host(number, 1)
            for i in range(5):
                t = self._at(0.35) + timedelta(minutes=2 * i)
                events.append(
                    self.factory.connection(other, PYTHON, t, dest_ip=FLEET_SERVER, dest_port=8000)
                )
            return events
        if kind == "crawl":
            duration = min(span, 8 * 3600.0)
            return self._sweep(kind, host, _v4_targets(400, 46), self.start, duration, NMAP, (22,))
        if kind == "targeted":
            targets = [f"10.45.7.{n}" for n in range(10, 250, 6)][:40]
            return self._sweep(kind, host, targets, self._at(0.55), 120, NMAP, (22, 445, 3389))
        if kind in ("syn", "udp", "icmp", "dotted"):
            return self._probe_scan(kind, host)
        if kind == "port":
            target = self.fleet[-1].ip
            begin = self._at(0.3)
            events = []
            # The target answers on its open ports and refuses (RST) the rest.
            self.closed.update((target, p) for p in _ports(1000) if p not in (22, 9100))
            for i, port in enumerate(_ports(1000)):
                t = begin + timedelta(seconds=i * 0.12)
                events.append(
                    self.factory.connection(host, NMAP, t, dest_ip=target, dest_port=port)
                )
            self.planted.append(
                PlantedScan(kind, host.name, begin, begin + timedelta(seconds=120), 1)
            )
            return events
        msg = f"unknown scan kind {kind!r}"
        raise ValueError(msg)

    def _scan_host(self, number: int, offset: int = 0) -> Host:
        """Host 2 (and 3) for the first scan, as always; later scans on hosts 20 + 3n (+1) in a
        large fleet, clear of the monitoring server, the bastion, the look-alikes' hosts (2 to
        10) and the last host; a small fleet wraps around (scans may share a host)."""
        if number == 0:
            return self.fleet[2 + offset]
        return self.fleet[2 + (18 + 3 * number + offset) % max(1, len(self.fleet) - 3)]

    def _probe_scan(self, kind: str, host: Host) -> list[dict[str, object]]:
        """Scans a root scanner sends without connect(), as the eBPF sensor records them, and
        a sweep written with dotted keys."""
        if kind == "syn":
            args = ("nmap", "-sS")
            return self._sweep(
                kind, host, _v4_targets(300, 52), self._at(0.65), 240,
                Process("/usr/bin/nmap", args=args), probe="raw",
            )  # fmt: skip
        if kind == "udp":
            return self._sweep(
                kind, host, _v4_targets(120, 53), self._at(0.75), 300,
                Process("/usr/bin/nmap", args=("nmap", "-sU")), (53, 161, 123), transport="udp",
                probe="raw",
            )  # fmt: skip
        if kind == "icmp":
            return self._sweep(
                kind, host, _v4_targets(300, 54), self._at(0.8), 120, FPING, (0,),
                transport="icmp", probe="raw",
            )  # fmt: skip
        events = self._sweep(kind, host, _v4_targets(300, 55), self._at(0.85), 240)
        for i, event in enumerate(events):
            event["_dotted"] = "all" if i % 2 else "mixed"
        return events

    def _at(self, fraction: float) -> datetime:
        """A moment inside the simulated span, leaving room for a 4-minute scan."""
        usable = max(0.0, (self.end - self.start).total_seconds() - 600)
        return self.start + timedelta(seconds=int(usable * fraction))

    def _sweep(
        self,
        kind: str,
        host: Host,
        targets: list[str],
        begin: datetime,
        duration: float,
        process: Process = NMAP,
        ports: tuple[int, ...] = (443, 80),
        into: list[PlantedScan] | None = None,
        silent: bool = True,
        transport: str = "tcp",
        probe: str | None = None,
    ) -> list[dict[str, object]]:
        """nmap -sn style host discovery by default: a SYN to 443 and an ACK to 80 per address.
        Nine targets in ten are silent; the tenth answers on the first port and refuses the rest."""
        step = duration / max(1, len(targets))
        events = []
        for i, ip in enumerate(targets):
            t = begin + timedelta(seconds=i * step + self.rng.uniform(0, step / 2))
            if t >= self.end:
                break
            if silent and i % 10:
                self.silent.add(ip)
            elif silent:
                self.closed.update((ip, p) for p in ports[1:])
            for port in ports:
                events.append(
                    self.factory.connection(
                        host, process, t, dest_ip=ip, dest_port=port, transport=transport,
                        probe=probe,
                    )
                )  # fmt: skip
        end = begin + timedelta(seconds=duration)
        record = PlantedScan(kind, host.name, begin, end, len(targets), process.executable)
        (self.planted if into is None else into).append(record)
        return events

    # -- benign look-alikes --------------------------------------------------------------------

    def _lookalike(self, kind: str) -> list[dict[str, object]]:
        monitoring, bastion = self.fleet[0], self.fleet[1]
        into = self.planted_lookalikes
        if kind == "prometheus":
            proc = Process("/usr/local/bin/prometheus", user="prometheus")
            return self._periodic(kind, monitoring, proc, _v4_targets(300, 48), 9100, 300)
        if kind == "ansible":
            return self._periodic(
                kind,
                bastion,
                Process("/usr/bin/ssh", user="ops"),
                _v4_targets(300, 41),
                22,
                1800,
                burst=180,
            )
        if kind == "backup":
            director = Process("/usr/sbin/bacula-dir", user="bacula")
            # 4 jobs at a time, 2 minutes each: 300 clients take 150 minutes.
            return self._sweep(
                kind,
                self.fleet[4 % len(self.fleet)],
                _v4_targets(300, 42),
                self._at(0.05),
                150 * 60,
                director,
                (9102,),
                into,
                silent=False,  # every client answers its director
            )
        if kind == "cdn":
            chrome = Process("/opt/google/chrome/chrome", user="alice")
            cdn = [
                f"{a}.{b}.{c}.{d}"
                for a, b in ((151, 101), (104, 16), (23, 45))
                for c in range(10)
                for d in range(10, 20)
            ]
            return self._periodic(kind, self.fleet[-1], chrome, cdn, 443, 1800, burst=1500)
        if kind == "runzero":
            agent = Process("/opt/rumble/bin/rumble-agent-linux-amd64", user="root")
            return self._sweep(
                kind,
                self.fleet[4 % len(self.fleet)],
                _v4_targets(300, 43),
                self._at(0.7),
                300,
                agent,
                (443, 80, 22),
                into,
            )
        return self._more_lookalikes(kind)

    def _more_lookalikes(self, kind: str) -> list[dict[str, object]]:
        """The other benign fan-outs the upstream rule's exclusions record (docs/detections.md)."""
        monitoring = self.fleet[0]
        last = self.fleet[-1]
        if kind == "discovery":
            return self._gossip(self.fleet[6 % len(self.fleet)])
        if kind == "updater":
            apt = Process("/usr/lib/apt/methods/https", user="_apt")
            return self._periodic(kind, last, apt, _external(300, 185), 443, 7200, burst=900)
        if kind == "firefox":
            firefox = Process("/snap/firefox/4336/usr/lib/firefox/firefox", user="bob")
            return self._periodic(kind, last, firefox, _external(300, 104), 443, 1800, burst=1500)
        if kind == "virtualbox":
            vbox = Process("/usr/lib/virtualbox/VBoxHeadless", user="vbox")
            host = self.fleet[7 % len(self.fleet)]
            targets = _external(400, 142) + [h.ip for h in self.fleet[2:22]]
            return self._periodic(kind, host, vbox, targets, 443, 3600, burst=3000)
        if kind == "elastic-agent":
            beat = Process(
                "/usr/share/elastic-agent/data/elastic-agent-8.15.2-a1b2c3/components/heartbeat"
            )
            return self._periodic(kind, monitoring, beat, _v4_targets(300, 50), 443, 600)
        if kind == "gitlab":
            prom = Process("/opt/gitlab/embedded/bin/prometheus", user="gitlab-prometheus")
            host = self.fleet[8 % len(self.fleet)]
            return self._periodic(kind, host, prom, _v4_targets(300, 51), 9100, 900)
        if kind == "qbittorrent":
            torrent = Process(
                "/var/lib/docker/overlay2/4f1c0d2e9a7b/merged/usr/bin/qbittorrent-nox", user="abc"
            )
            return self._torrent(kind, self.fleet[9 % len(self.fleet)], torrent)
        if kind == "docker":
            connector = Process(
                "/var/lib/docker/overlay2/9b2e7c1d3f4a/merged/usr/local/bin/connectord"
            )
            host = self.fleet[10 % len(self.fleet)]
            return self._periodic(kind, host, connector, _v4_targets(300, 56), 5432, 600)
        msg = f"unknown look-alike {kind!r}"
        raise ValueError(msg)

    def _gossip(self, host: Host) -> list[dict[str, object]]:
        """Consul's gossip: every minute a dozen random members of the pool, for the whole span."""
        consul = Process("/usr/bin/consul", user="consul")
        members = _v4_targets(300, 49)
        events = []
        t = self.start
        while t < self.end:
            for ip in self.rng.sample(members, 12):
                at = t + timedelta(seconds=self.rng.uniform(0, 60))
                events.append(self.factory.connection(host, consul, at, dest_ip=ip, dest_port=8301))
            t += timedelta(minutes=1)
        self.planted_lookalikes.append(
            PlantedScan("discovery", host.name, self.start, self.end, 300, consul.executable)
        )
        return events

    def _torrent(self, kind: str, host: Host, process: Process) -> list[dict[str, object]]:
        """A BitTorrent client: new external peers all day, on random high ports; most fail."""
        events = []
        peers = _external(1500, 77)
        per_peer = (self.end - self.start).total_seconds() / len(peers)
        for i, ip in enumerate(peers):
            t = self.start + timedelta(seconds=i * per_peer)
            if i % 3:
                self.silent.add(ip)
            port = self.rng.randrange(6881, 65000)
            events.append(self.factory.connection(host, process, t, dest_ip=ip, dest_port=port))
        self.planted_lookalikes.append(
            PlantedScan(kind, host.name, self.start, self.end, len(peers), process.executable)
        )
        return events

    def _periodic(
        self,
        kind: str,
        host: Host,
        process: Process,
        targets: list[str],
        port: int,
        period: float,
        burst: float | None = None,
    ) -> list[dict[str, object]]:
        """Every target once per `period` seconds over the whole span, spread over `burst`
        seconds (default: the period) with a fixed offset per target: a scrape or a schedule."""
        spread = period if burst is None else burst
        offsets = [self.rng.uniform(0, spread) for _ in targets]
        events = []
        cycle = self.start
        while cycle < self.end:
            for ip, offset in zip(targets, offsets, strict=True):
                t = cycle + timedelta(seconds=offset)
                if t < self.end:
                    events.append(
                        self.factory.connection(host, process, t, dest_ip=ip, dest_port=port)
                    )
            cycle += timedelta(seconds=period)
        self.planted_lookalikes.append(
            PlantedScan(kind, host.name, self.start, self.end, len(targets), process.executable)
        )
        return events


def _v4_targets(count: int, second_octet: int) -> list[str]:
    """`count` addresses 10.<second_octet>.0.1 upward, skipping .0 and .255."""
    out: list[str] = []
    n = 0
    while len(out) < count:
        third, fourth = divmod(n, 256)
        n += 1
        if fourth in (0, 255):
            continue
        out.append(f"10.{second_octet}.{third}.{fourth}")
    return out


def _external(count: int, first_octet: int) -> list[str]:
    """`count` public addresses <first_octet>.x.y.z (none of them internal)."""
    return [
        f"{first_octet}.{(n // 250) % 250 + 1}.{n // 62500 + 1}.{n % 250 + 1}" for n in range(count)
    ]


def _dotted(event: dict[str, object], every: bool) -> dict[str, object]:
    """The event with dotted keys: every leaf (`every`), or mixed (host stays an object)."""
    out: dict[str, object] = {}

    def walk(node: dict[str, object], prefix: str) -> None:
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict) and (every or name != "host"):
                walk(value, name + ".")
            else:
                out[name] = value

    walk(event, "")
    return out


def _ports(count: int) -> list[int]:
    """nmap-like order: well-known service ports first, then the rest of 1..1024 and beyond."""
    common = [
        21,
        22,
        23,
        25,
        53,
        80,
        110,
        111,
        135,
        139,
        143,
        443,
        445,
        993,
        995,
        1723,
        3306,
        3389,
        5900,
        8080,
    ]
    rest = [p for p in range(1, 20000) if p not in common]
    return (common + rest)[:count]


def _stamp(event: dict[str, object]) -> str:
    return str(event["@timestamp"])
