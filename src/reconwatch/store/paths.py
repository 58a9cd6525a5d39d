"""Where the store lives by default: the user's data directory (XDG_DATA_HOME)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """$XDG_DATA_HOME/reconwatch, else ~/.local/share/reconwatch (the XDG base-directory default)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_DATA_HOME", "")
    # The spec says a relative XDG_DATA_HOME is invalid and must be ignored.
    if base and Path(base).is_absolute():
        return Path(base) / "reconwatch"
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".local" / "share" / "reconwatch"
