"""The rules shipped inside the package, and resolving `--rule` (built-in name, rule_id or path)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from reconwatch.errors import UsageError
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
}


def builtin_text(name: str) -> str:
    filename = BUILTINS[name][0]
    return resources.files("reconwatch").joinpath("data", "rules", filename).read_text("utf-8")


def load_builtin(name: str) -> Rule:
    return load_rule_text(builtin_text(name), f"builtin:{name}", builtin=name)


def builtin_rules() -> list[Rule]:
    return [load_builtin(name) for name in BUILTINS]


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
    msg = f"--rule {spec!r}: not a built-in rule ({known}), a built-in rule_id, or an existing file"
    raise UsageError(msg)
