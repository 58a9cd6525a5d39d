"""The rules shipped inside the package, and resolving `--rule` (pack, built-in name, rule_id or
path)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from reconwatch.errors import ReconwatchError, RuleRunError, UsageError
from reconwatch.rules.load import load_rule_file, load_rule_text
from reconwatch.rules.model import Rule

DEFAULT_RULE = "subnet-scanning-seed"

# name -> (file in reconwatch/data/rules, one-line summary)
BUILTINS: dict[str, tuple[str, str]] = {
    "subnet-scanning-seed": (
        "discovery_subnet_scanning_activity_from_compromised_host.b28338c6.toml",
        "subnet scanning, 2025-07-16 version (the seed; default)",
    ),
    "subnet-scanning": (
        "discovery_subnet_scanning_activity_from_compromised_host.toml",
        "subnet scanning, current upstream version (exclusions, mv_expand)",
    ),
    "port-scanning": (
        "discovery_port_scanning_activity_from_compromised_host.toml",
        "port scanning: >100 destination ports to one IP from one executable",
    ),
    # reconwatch's own rules (Apache-2.0), kept in data/rules/recon apart from Elastic's files.
    "recon-sweep": (
        "recon/recon_internal_sweep_by_host_process.toml",
        "sweep: >=100 internal addresses reached once in 65m by one process on one host",
    ),
    "recon-targeted-subnet": (
        "recon/recon_targeted_subnet_scan.toml",
        "targeted: >=40 addresses of one /24 (/64) reached once in 65m by one process on one host",
    ),
    "recon-slow-scan": (
        "recon/recon_slow_scan_by_host_process.toml",
        "slow scan: >=200 internal addresses, each within one hour, over 24h by one process on one host",
    ),
    "recon-port-scan": (
        "recon/recon_port_scan_by_host_process.toml",
        "port scan: >=50 ports below 32768 of one address in 65m by one process on one host",
    ),
    "recon-campaign": (
        "recon/recon_scan_campaign_across_hosts.toml",
        "campaign: one executable sweeping >=50 internal addresses from each of >=2 hosts in 65m",
    ),
    "recon-trw": (
        "recon/recon_trw_probe_outcomes.toml",
        "native: Threshold Random Walk on probe outcomes (scanner in ~4-5 failed first contacts)",
    ),
    "recon-baseline": (
        "recon/recon_new_destinations_baseline.toml",
        "native: >=30 internal destinations new to a (host, executable)'s learned baseline in 65m",
    ),
    # Network-level rules: events without a process (Zeek, pcap, firewall logs, Suricata),
    # grouped by source.ip.
    "recon-net-address-scan": (
        "recon/recon_network_address_scan.toml",
        "network: >=25 hosts failed on one port by one source.ip in 65m (Zeek addr_scan)",
    ),
    "recon-net-port-scan": (
        "recon/recon_network_port_scan.toml",
        "network: >=15 ports failed on one host by one source.ip in 65m (Zeek port_scan)",
    ),
    "recon-net-scan": (
        "recon/recon_network_scan_by_source.toml",
        "network: >=25 (internal: 250) failed (host, port) pairs by one source.ip, bro-simple-scan kinds",
    ),
    "recon-net-block-sweep": (
        "recon/recon_network_block_sweep.toml",
        "network: failed probes into >=3 /24 networks, >=25 hosts, by one source.ip in 65m",
    ),
}

# pack name -> (its rules' built-in names, one-line summary)
PACKS: dict[str, tuple[tuple[str, ...], str]] = {
    "recon": (
        (
            "recon-sweep",
            "recon-targeted-subnet",
            "recon-slow-scan",
            "recon-port-scan",
            "recon-campaign",
            "recon-trw",
            "recon-baseline",
            "recon-net-address-scan",
            "recon-net-port-scan",
            "recon-net-scan",
            "recon-net-block-sweep",
        ),
        "reconwatch's reconnaissance pack: the seed rule's blind spots closed, look-alikes quiet",
    ),
}


# Pack rules `watch` cannot stream (two STATS: the stream executor keeps one): a pack named in
# `watch` leaves them out with a notice instead of failing; `detect` and the service run them.
SCHEDULED_ONLY = frozenset({"recon-campaign", "recon-net-scan", "recon-net-block-sweep"})


def builtin_text(name: str) -> str:
    filename = BUILTINS[name][0]
    path = resources.files("reconwatch").joinpath("data", "rules", *filename.split("/"))
    return path.read_text("utf-8")


def load_builtin(name: str) -> Rule:
    return load_rule_text(builtin_text(name), f"builtin:{name}", builtin=name)


def builtin_rules() -> list[Rule]:
    return [load_builtin(name) for name in BUILTINS]


def resolve_rules(spec: str) -> list[Rule]:
    """The rules a `--rule` value names: every rule of a pack, else the one resolve_rule finds."""
    if spec in PACKS:
        return [load_builtin(name) for name in PACKS[spec][0]]
    return [resolve_rule(spec)]


def load_rule_specs(specs: list[str]) -> tuple[list[Rule], list[RuleRunError]]:
    """Every rule the --rule values name that loads (a pack gives all its rules, each rule once);
    the others come back as failures naming their file and reason, so `detect` and `watch` run
    the good ones. A single spec's failure, or no rule left, raises the (first) failure."""
    rules: list[Rule] = []
    failed: list[RuleRunError] = []
    for spec in specs:
        try:
            rules.extend(r for r in resolve_rules(spec) if r.label not in {x.label for x in rules})
        except ReconwatchError as exc:
            if len(specs) == 1:
                raise
            failed.append(RuleRunError(spec, exc))
    if not rules:
        raise failed[0]
    return rules, failed


def streamable(rules: list[Rule], specs: list[str]) -> tuple[list[Rule], list[Rule]]:
    """The rules `watch` streams, and the pack rules it leaves out (SCHEDULED_ONLY ones that only
    came with a pack: one named by itself stays, and its refusal is reported as any other)."""
    kept = [r for r in rules if r.builtin not in SCHEDULED_ONLY or r.builtin in specs]
    return kept, [r for r in rules if r not in kept]


def resolve_rule(spec: str) -> Rule:
    """A rule named by built-in name, rule_id of a built-in, or a file path."""
    if spec in BUILTINS:
        return load_builtin(spec)
    path = Path(spec)
    if path.exists():
        return load_rule_file(path)
    # Several built-ins share a rule_id (seed and current subnet rule); the default comes first.
    for rule in sorted(builtin_rules(), key=lambda r: r.builtin != DEFAULT_RULE):
        if rule.rule_id == spec:
            return rule
    known = ", ".join(BUILTINS)
    packs = ", ".join(PACKS)
    msg = (
        f"--rule {spec!r}: not a pack ({packs}), a built-in rule ({known}), a built-in rule_id, "
        "or an existing file"
    )
    raise UsageError(msg)
