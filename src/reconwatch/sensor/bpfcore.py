"""Builds reconwatch's own eBPF collector (the `core` tracer) for this kernel, cached by hash."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

BTF = Path("/sys/kernel/btf/vmlinux")
# Root-owned: the sensor runs what it finds here as root, so the directory is checked first.
DEFAULT_CACHE = Path("/var/cache/reconwatch/bpfcore")
CACHE_ENV = "RECONWATCH_BPFCORE_CACHE"
SOURCES = ("rwcore.bpf.c", "rwcore.c")
LOADER, OBJECT = "rwcore", "rwcore.bpf.o"
_BUILD_TIMEOUT = 300.0  # clang on a loaded 2-core machine
# clang-14 first: the version the CI's Debian ships and the build was tested with
_CLANGS = ("clang-14", "clang")
_BPFTOOLS = ("bpftool",)
_BUILD_NAME = re.compile(r"[0-9a-f]{24}")  # build_key()'s
_SBIN = ("/usr/sbin", "/sbin")  # bpftool lives there, outside a non-login root's PATH


class CoreUnavailable(Exception):
    """The core tracer cannot be built or used here; the message says why, in one line."""


@dataclass(frozen=True, slots=True)
class Toolchain:
    clang: str
    bpftool: str
    cc: str


def source_text(name: str) -> bytes:
    return (resources.files("reconwatch.sensor") / "scripts" / name).read_bytes()


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def find_toolchain(which: Callable[[str], str | None] | None = None) -> Toolchain:
    """clang (BPF target), bpftool and a C compiler, or CoreUnavailable naming what is missing."""
    which = which or shutil.which
    clang = next((p for p in map(which, _CLANGS) if p), None)
    bpftool = next((p for p in map(which, _BPFTOOLS) if p), None)
    if bpftool is None:
        bpftool = next((p for d in _SBIN if (p := which(f"{d}/bpftool"))), None)
    cc = which("cc") or which("gcc")
    missing = [n for n, p in (("clang-14", clang), ("bpftool", bpftool), ("cc", cc)) if p is None]
    if clang is None or bpftool is None or cc is None:
        raise CoreUnavailable(
            f"{', '.join(missing)} not found (apt-get install clang-14 bpftool libbpf-dev)"
        )
    return Toolchain(clang, bpftool, cc)


def build_key(btf: Path = BTF) -> str:
    """A hash of the sources and of the kernel's BTF: a new kernel or release rebuilds."""
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update(source_text(name))
    try:
        digest.update(btf.read_bytes())
    except OSError as exc:
        raise CoreUnavailable(f"the kernel has no readable BTF at {btf} ({exc.strerror})") from None
    return digest.hexdigest()[:24]


def prepare(
    root: Path | None = None,
    *,
    btf: Path = BTF,
    which: Callable[[str], str | None] | None = None,
) -> list[str]:
    """The command that runs the core tracer: a cached build for these sources and this kernel,
    or a new one (needs the toolchain). CoreUnavailable if neither."""
    root = root or cache_root()
    key = build_key(btf)
    _safe_directory(root, create=True)
    built = root / key
    if not _cached(built):
        _build(built, find_toolchain(which), btf)
        _prune(root, keep=key)
    return [str(built / LOADER), str(built / OBJECT)]


def _prune(root: Path, *, keep: str) -> None:
    """Remove the builds for other sources or kernels (one per release and kernel otherwise
    piles up); a build of another version running meanwhile keeps its open files."""
    for entry in root.iterdir():
        if entry.name != keep and _BUILD_NAME.fullmatch(entry.name) and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)


def _safe_directory(path: Path, *, create: bool) -> None:
    """Refuse a directory others could write to or that is not ours: we execute from it."""
    if create:
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise CoreUnavailable(f"cannot create the build cache {path}: {exc.strerror}") from None
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise CoreUnavailable(f"the build cache {path} is not a directory only this user can write")


def _cached(built: Path) -> bool:
    if not built.is_dir():
        return False
    _safe_directory(built, create=False)
    for name in (LOADER, OBJECT):
        info = (built / name).lstat() if (built / name).exists() else None
        if info is None or info.st_uid != os.geteuid() or info.st_mode & 0o022:
            return False
    return True


def _build(built: Path, tools: Toolchain, btf: Path) -> None:
    """Compile into a fresh directory next to the final one, then rename it into place (a
    concurrent build's rename wins, with the same result)."""
    work = Path(tempfile.mkdtemp(prefix="build-", dir=built.parent))
    try:
        for name in SOURCES:
            (work / name).write_bytes(source_text(name))
        header = _run([tools.bpftool, "btf", "dump", "file", str(btf), "format", "c"], "bpftool")
        (work / "vmlinux.h").write_bytes(header)
        _run(
            [tools.clang, "-g", "-O2", "-target", "bpf", "-D__TARGET_ARCH_x86", f"-I{work}",
             "-c", str(work / SOURCES[0]), "-o", str(work / OBJECT)],
            "clang",
        )  # fmt: skip
        _run([tools.cc, "-O2", "-o", str(work / LOADER), str(work / SOURCES[1]), "-lbpf"], "cc")
        try:
            work.rename(built)
        except OSError:
            if not _cached(built):
                raise CoreUnavailable(f"cannot store the build in {built}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(argv: list[str], tool: str) -> bytes:
    try:
        done = subprocess.run(argv, capture_output=True, timeout=_BUILD_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CoreUnavailable(f"{tool} could not run: {exc}") from None
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").splitlines()
        first = next((line for line in lines if "error" in line.lower()), lines[0] if lines else "")
        raise CoreUnavailable(f"{tool} failed: {first.strip() or f'exit {done.returncode}'}")
    return done.stdout
