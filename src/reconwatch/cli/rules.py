"""`reconwatch rules list | show NAME | check PATHS... | run RULE_ID`: built-ins, validation, manual runs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markdown import Markdown

from reconwatch.errors import RuleLoadError, UsageError
from reconwatch.rules.builtin import BUILTINS, DEFAULT_RULE, PACKS, builtin_rules, resolve_rule
from reconwatch.rules.load import load_rule_file
from reconwatch.rules.model import Rule


def query_problems(rule: Rule) -> tuple[list[str], list[str], list[str]]:
    """What running this rule's query would meet: (errors, features the engine lacks, fields
    that could not be checked), each a `line L:C: reason` where there is a position."""
    from reconwatch.rules.check import check_query

    if rule.native:
        return [], [], []  # a native detector has no query: its [rule.detector] was checked
    found = check_query(rule.query)
    return (
        [f.text for f in found.errors],
        [f.text for f in found.unsupported],
        [f.text for f in found.warnings],
    )


_QUERY_START = re.compile(r"^query\s*=\s*('''|\"\"\"|'|\")(\r?\n)?", re.MULTILINE)
_POSITION = re.compile(r"^line (\d+):(\d+): ")


def _query_line(path: Path) -> int | None:
    """The file line holding the query's first line (TOML drops a newline right after the
    opening quotes), or None when the file does not spell `query = ...` plainly."""
    try:
        text = path.read_text("utf-8", errors="replace")
    except OSError:
        return None
    found = _QUERY_START.search(text)
    if found is None:
        return None
    return text.count("\n", 0, found.end()) + 1


def _at(text: str, first: int | None) -> str:
    """`line L:C: reason` with the file's line added: `line L:C (file line N): reason`."""
    found = _POSITION.match(text)
    if found is None or first is None:
        return text
    line = int(found.group(1))
    return f"line {line}:{found.group(2)} (file line {first + line - 1}): {text[found.end() :]}"


def _rule_files(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            out.extend(sorted(p.rglob("*.toml")))
        elif p.exists():
            out.append(p)
        else:
            raise UsageError(f"{raw}: no such file or directory")
    return out


def register(app: typer.Typer) -> None:
    rules_app = typer.Typer(
        help="Built-in rules; show a rule and its investigation guide; check rule files.",
        no_args_is_help=True,
    )
    app.add_typer(rules_app, name="rules")
    from reconwatch.cli.client import register_rules_run

    register_rules_run(rules_app)

    @rules_app.command("list")
    def list_cmd() -> None:
        """The built-in rules, then the packs (`--rule PACK` runs all of a pack's rules)."""
        console = Console(highlight=False, soft_wrap=True)
        for r in builtin_rules():
            label = f"{r.builtin} (default)" if r.builtin == DEFAULT_RULE else str(r.builtin)
            console.print(
                f"{label}\n    {r.name}: {BUILTINS[str(r.builtin)][1]}\n"
                f"    {r.severity}/{r.risk_score}, every {r.interval_text} over {r.from_}, rule_id {r.rule_id}",
                markup=False,
            )
        for pack, (members, summary) in PACKS.items():
            console.print(
                f"pack {pack}\n    {summary}\n    rules: {', '.join(members)}", markup=False
            )

    @rules_app.command("show")
    def show_cmd(
        name: Annotated[str, typer.Argument(help="Pack, built-in name, rule_id or TOML path.")],
    ) -> None:
        """A rule's settings, query, and its investigation guide and setup rendered; for a
        pack, its rules."""
        console = Console()
        if name in PACKS:
            members, summary = PACKS[name]
            console.print(f"pack {name}: {summary}", markup=False)
            for member in members:
                rule = resolve_rule(member)
                console.print(
                    f"  {member}: {rule.name} (every {rule.interval_text} over {rule.from_})",
                    markup=False,
                )
            return
        r = resolve_rule(name)
        console.print(f"[bold]{r.name}[/]  ({r.label})")
        console.print(
            f"rule_id {r.rule_id}; severity {r.severity}, risk {r.risk_score}; every {r.interval_text} "
            f"over [{r.from_}, {r.to}] on {r.timestamp_override or '@timestamp'}; max_signals {r.max_signals}",
            markup=False,
        )
        console.print("tags: " + ", ".join(r.tags), markup=False)
        errors, missing, unchecked = query_problems(r)
        if errors:
            console.print("engine: fails at run time: " + "; ".join(errors), markup=False)
        elif missing:
            console.print("engine: cannot run: " + "; ".join(missing), markup=False)
        else:
            console.print("engine: runs", markup=False)
        for text in unchecked:
            console.print(f"warning: {text}", markup=False)
        if r.detector is not None:
            console.rule(f"native detector {r.detector.kind}")
            for key, value in r.detector.params.items():
                console.print(f"{key} = {value}", markup=False)
        else:
            console.rule("query")
            console.print(r.query.strip(), markup=False, highlight=False)
        if r.note.strip():
            console.rule("investigation guide")
            console.print(Markdown(r.note))
        if r.setup.strip():
            console.rule("setup")
            console.print(Markdown(r.setup))

    @rules_app.command("check")
    def check_cmd(
        paths: Annotated[list[str], typer.Argument(help="Rule files or folders of them.")],
    ) -> None:
        """Validate rule files and check each query against the schema of its index patterns:
        what would fail at run time (exit 2), what the engine lacks, what could not be checked."""
        from reconwatch.rules.check import check_query

        console = Console(highlight=False, soft_wrap=True)
        files = _rule_files(paths)
        invalid = failing = runnable = unsupported = unchecked = 0
        for f in files:
            try:
                r = load_rule_file(f)
            except RuleLoadError as exc:
                invalid += 1
                for field, reason in exc.problems:
                    console.print(f"INVALID {f}: {field}: {reason}", markup=False)
                continue
            if r.native:
                runnable += 1
                console.print(f"OK {f} (native detector {r.detector.kind})", markup=False)  # type: ignore[union-attr]
                continue
            result = check_query(r.query)
            first = _query_line(f)
            for w in result.warnings:
                console.print(f"WARNING {f}: rule.query: {_at(w.text, first)}", markup=False)
            unchecked += bool(result.warnings)
            if result.errors:
                failing += 1
                for e in result.errors:
                    console.print(f"FAIL {f}: rule.query: {_at(e.text, first)}", markup=False)
            elif result.unsupported:
                unsupported += 1
                reasons = "; ".join(u.text for u in result.unsupported)
                console.print(f"UNSUPPORTED {f}: {reasons}", markup=False)
            else:
                runnable += 1
                console.print(f"OK {f}", markup=False)
        console.print(
            f"{len(files)} file(s): {len(files) - invalid} valid, {invalid} invalid; "
            f"{failing} fail at run time; {runnable} runnable, {unsupported} need unsupported "
            f"features; {unchecked} with fields reconwatch cannot check",
            markup=False,
        )
        if invalid or failing:
            raise typer.Exit(2)
