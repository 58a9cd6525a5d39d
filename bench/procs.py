"""What the whole-process benchmarks share: bytecode compiled as an installed package has it, CPU seconds of a child's whole process tree."""

from __future__ import annotations

import compileall
import resource
import subprocess
import time
from pathlib import Path

import reconwatch


def compile_package() -> None:
    """Write reconwatch's bytecode, as `pip install` does: a checkout run with
    PYTHONDONTWRITEBYTECODE set (CI, this machine) would otherwise compile every module it
    imports in every run (~0.1 CPU s), while the other side (duckdb, installed) loads bytecode."""
    compileall.compile_dir(str(Path(reconwatch.__file__).parent), quiet=1)


def timed(cmd: list[str], *, capture: bool = False) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds user+sys of the child and everything it waited for, stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE if capture else subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out.stdout.decode() if capture else ""
