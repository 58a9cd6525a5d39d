"""`reconwatch rules list | show NAME | check PATHS...`: the built-in rules and rule validation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markdown import Markdown

from reconwatch.errors import QueryError, RuleLoadError, UsageError
from reconwatch.rules.builtin import BUILTINS, DEFAULT_RULE, builtin_rules, resolve_rule
from reconwatch.rules.load import load_rule_file
from reconwatch.rules.model import Rule


def unsupported_features(rule: Rule) -> list[str]:
    """What the engine lacks to run this rule's query (empty: it runs)."""
    from reconwatch.esql.analyze import support_report
    from reconwatch.esql.parser import parse

    try:
        parsed = parse(rule.query)
    except QueryError as exc:
        return [f"does not parse: {exc.one_line()}"]
    return [e.one_line() for e in support_report(parsed)]


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

    @rules_app.command("list")
    def list_cmd() -> None:
        """The built-in rules."""
        console = Console(highlight=False, soft_wrap=True)
        for r in builtin_rules():
            label = f"{r.builtin} (default)" if r.builtin == DEFAULT_RULE else str(r.builtin)
            console.print(
                f"{label}\n    {r.name}: {BUILTINS[str(r.builtin)][1]}\n"
                f"    {r.severity}/{r.risk_score}, every {r.interval_text} over {r.from_}, rule_id {r.rule_id}",
                markup=False,
            )

    @rules_app.command("show")
    def show_cmd(
        name: Annotated[str, typer.Argument(help="Built-in name, rule_id or TOML path.")],
    ) -> None:
        """A rule's settings, query, and its investigation guide and setup rendered."""
        r = resolve_rule(name)
        console = Console()
        console.print(f"[bold]{r.name}[/]  ({r.label})")
        console.print(
            f"rule_id {r.rule_id}; severity {r.severity}, risk {r.risk_score}; every {r.interval_text} "
            f"over [{r.from_}, {r.to}] on {r.timestamp_override or '@timestamp'}; max_signals {r.max_signals}",
            markup=False,
        )
        console.print("tags: " + ", ".join(r.tags), markup=False)
        missing = unsupported_features(r)
        console.print(
            "engine: runs" if not missing else "engine: cannot run: " + "; ".join(missing),
            markup=False,
        )
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
        """Validate rule files; say which the engine can run and, for the rest, what it lacks."""
        console = Console(highlight=False, soft_wrap=True)
        files = _rule_files(paths)
        invalid = runnable = 0
        for f in files:
            try:
                r = load_rule_file(f)
            except RuleLoadError as exc:
                invalid += 1
                for field, reason in exc.problems:
                    console.print(f"INVALID {f}: {field}: {reason}", markup=False)
                continue
            missing = unsupported_features(r)
            if missing:
                console.print(f"UNSUPPORTED {f}: {'; '.join(missing)}", markup=False)
            else:
                runnable += 1
                console.print(f"OK {f}", markup=False)
        console.print(
            f"{len(files)} file(s): {len(files) - invalid} valid, {invalid} invalid; "
            f"{runnable} runnable, {len(files) - invalid - runnable} need unsupported features",
            markup=False,
        )
        if invalid:
            raise typer.Exit(2)
