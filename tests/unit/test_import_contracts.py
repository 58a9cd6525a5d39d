"""docs/architecture.md's dependency rules as import contracts: kept by the code, and broken by an import the wrong way."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(src: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )


def test_the_code_keeps_every_contract() -> None:
    done = _lint_imports(ROOT / "src")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_a_wrong_way_import_breaks_a_contract(tmp_path: Path) -> None:
    """The plan importing the language (and, through it, ECS field mapping) fails the check."""
    src = tmp_path / "src"
    shutil.copytree(
        ROOT / "src" / "reconwatch",
        src / "reconwatch",
        ignore=shutil.ignore_patterns("*.so", "__pycache__"),
    )
    values = src / "reconwatch" / "plan" / "values.py"
    values.write_text(values.read_text() + "\nfrom reconwatch.esql import ast as _ast  # noqa\n")
    done = _lint_imports(src)
    assert done.returncode != 0
    assert "reconwatch.plan is not allowed to import reconwatch.esql" in done.stdout
