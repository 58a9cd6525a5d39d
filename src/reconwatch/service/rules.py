"""The rules the service runs: the built-ins (one version per rule_id) and rule directories."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reconwatch.errors import ReconwatchError
from reconwatch.rules.builtin import load_builtin, resolve_rules
from reconwatch.rules.load import load_rule_file
from reconwatch.rules.model import Rule

# Kibana installs one version of a prebuilt rule: the current subnet rule, not its 2025-07-16
# seed version (the same rule_id), and the port-scanning rule.
SERVICE_BUILTINS = ("subnet-scanning", "port-scanning")


@dataclass(slots=True)
class RuleSet:
    """Rules by rule_id, and the files that could not be used (file, field and reason each)."""

    rules: dict[str, Rule] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    # The rule_ids that are built-ins (not replaced by a directory's file).
    builtin: set[str] = field(default_factory=set)

    def realtime_default(self) -> set[str]:
        """The rules that run in real time unless the configuration says otherwise: the
        built-ins and every native detector rule (their detectors decide event by event)."""
        return self.builtin | {r for r, rule in self.rules.items() if rule.native}


class RuleReloader:
    """Loads the rules again when a file under the rule directories changed (added, removed,
    edited: by name, size and modification time), so an edited rule runs without a restart."""

    def __init__(
        self, directories: Sequence[Path], *, builtin: bool = True, specs: Sequence[str] = ()
    ) -> None:
        self.directories = list(directories)
        self.builtin = builtin
        self.specs = list(specs)
        self._seen = self._signature()

    def _signature(self) -> tuple[tuple[str, int, int], ...]:
        out: list[tuple[str, int, int]] = []
        for directory in self.directories:
            for path in sorted(directory.rglob("*.toml")):
                try:
                    st = path.stat()
                except OSError:
                    continue  # removed while listed: the next look sees it gone
                out.append((str(path), st.st_mtime_ns, st.st_size))
        return tuple(out)

    def changed(self) -> RuleSet | None:
        """The rules as the files are now, when they changed since the last look; else None."""
        if not self.directories:
            return None
        now = self._signature()
        if now == self._seen:
            return None
        self._seen = now
        return load_rules(self.directories, builtin=self.builtin, specs=self.specs)


def load_rules(
    directories: Sequence[Path], *, builtin: bool = True, specs: Sequence[str] = ()
) -> RuleSet:
    """Built-ins first, then the rules `specs` name (`--rule`: a built-in, a pack such as
    `recon`, a file); a directory's rule with a built-in's rule_id replaces it (a newer or
    customised version); two files with one rule_id: the second is refused."""
    out = RuleSet()
    if builtin:
        for name in SERVICE_BUILTINS:
            rule = load_builtin(name)
            out.rules[rule.rule_id] = rule
            out.builtin.add(rule.rule_id)
    for spec in specs:
        try:
            named = resolve_rules(spec)
        except ReconwatchError as exc:
            out.failures.append(f"--rule {spec}: {exc.one_line()}")
            continue
        for rule in named:
            out.rules[rule.rule_id] = rule
    from_files: dict[str, Path] = {}
    for directory in directories:
        for path in sorted(directory.rglob("*.toml")):
            try:
                rule = load_rule_file(path)
            except ReconwatchError as exc:
                out.failures.append(exc.one_line())
                continue
            first = from_files.get(rule.rule_id)
            if first is not None:
                out.failures.append(
                    f"{path}: rule.rule_id: {rule.rule_id} is already loaded from {first}"
                )
                continue
            from_files[rule.rule_id] = path
            out.rules[rule.rule_id] = rule
            out.builtin.discard(rule.rule_id)
    return out
