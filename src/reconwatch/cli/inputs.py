"""Command-line pieces the commands share: event files checked before anything runs, the alerts output option."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer

from reconwatch.errors import UsageError

# detect's and watch's -o: where alerts go.
AlertsOutput = Annotated[
    str | None,
    typer.Option("--output", "-o", help="Write alerts to this file (- is stdout).", metavar="FILE"),
]


def require_files(paths: Iterable[str]) -> None:
    """A mistyped name or a directory must not read as "no alerts" or an empty result: refuse
    it before any run (exit 2)."""
    paths = list(paths)
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise UsageError(f"no such file: {', '.join(missing)}")
    folders = [p for p in paths if Path(p).is_dir()]
    if folders:
        raise UsageError(f"a directory, not an event file: {', '.join(folders)}")
