"""Event files named on a command line, checked before anything runs (shared by the commands)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from reconwatch.errors import UsageError


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
