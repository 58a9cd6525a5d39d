"""Choosing the eBPF tracer: the core collector's build cache, and the fallback to bpftrace."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from conftest import run_cli
from reconwatch.errors import SensorError
from reconwatch.sensor import bpf, bpfcore
from reconwatch.sensor.bpf import BpfCollector, Tracer, select_tracer
from reconwatch.sensor.bpfcore import CoreUnavailable, build_key, prepare


@pytest.fixture
def btf(tmp_path: Path) -> Path:
    path = tmp_path / "vmlinux"
    path.write_bytes(b"not really BTF, but hashed all the same")
    return path


def nothing(_: str) -> str | None:
    return None


def test_without_toolchain_or_cached_build_the_core_tracer_is_unavailable(
    tmp_path: Path, btf: Path
) -> None:
    with pytest.raises(CoreUnavailable, match="clang-14, bpftool, cc not found"):
        prepare(tmp_path / "cache", btf=btf, which=nothing)


def test_a_cached_build_for_these_sources_and_this_kernel_needs_no_toolchain(
    tmp_path: Path, btf: Path
) -> None:
    built = tmp_path / "cache" / build_key(btf)
    built.mkdir(parents=True, mode=0o700)
    for name in (bpfcore.LOADER, bpfcore.OBJECT):
        (built / name).write_bytes(b"")
        (built / name).chmod(0o755)
    assert prepare(tmp_path / "cache", btf=btf, which=nothing) == [
        str(built / bpfcore.LOADER),
        str(built / bpfcore.OBJECT),
    ]
    # another kernel (other BTF) is another build
    btf.write_bytes(b"another kernel")
    with pytest.raises(CoreUnavailable, match="not found"):
        prepare(tmp_path / "cache", btf=btf, which=nothing)


def test_a_new_build_removes_the_builds_for_other_sources_or_kernels(
    tmp_path: Path, btf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    old = cache / ("0" * 24)
    old.mkdir(parents=True)
    (old / bpfcore.LOADER).write_bytes(b"")
    other = cache / "not-a-build"
    other.mkdir()

    def build(built: Path, tools: object, btf: Path) -> None:
        built.mkdir(mode=0o700)
        for name in (bpfcore.LOADER, bpfcore.OBJECT):
            (built / name).write_bytes(b"")

    monkeypatch.setattr(bpfcore, "_build", build)
    monkeypatch.setattr(bpfcore, "find_toolchain", lambda which=None: None)
    loader, _ = prepare(cache, btf=btf)
    assert sorted(p.name for p in cache.iterdir()) == sorted([build_key(btf), "not-a-build"])
    assert Path(loader).parent.name == build_key(btf)


def test_a_cache_others_can_write_is_refused(tmp_path: Path, btf: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o777)
    with pytest.raises(CoreUnavailable, match="only this user can write"):
        prepare(cache, btf=btf, which=nothing)


def test_a_kernel_without_btf_is_named(tmp_path: Path) -> None:
    with pytest.raises(CoreUnavailable, match="no readable BTF"):
        prepare(tmp_path / "cache", btf=tmp_path / "missing", which=nothing)


@pytest.fixture
def host_without_toolchain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A root x86-64 host whose PATH has a bpftrace and nothing else, and an empty build cache:
    the messages select_tracer logs go to the returned list."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "bpftrace"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv(bpfcore.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(bpfcore, "_SBIN", ())
    monkeypatch.setattr(bpf, "check_host", lambda: None)
    monkeypatch.setattr(bpf, "_root", lambda: True)
    monkeypatch.setattr(bpf, "ensure_tracefs", lambda mount=True: None)
    return []


def test_auto_falls_back_to_bpftrace_saying_why_in_one_line(
    host_without_toolchain: list[str],
) -> None:
    collector = select_tracer("auto", log=host_without_toolchain.append)
    assert collector.tracer.name == "bpftrace"
    assert "tracer bpftrace (own collector unavailable: clang-14" in collector.summary()
    assert collector.tracer.argv[-1] == str(bpf.script_path())
    assert len(host_without_toolchain) == 1
    assert "own eBPF collector unavailable" in host_without_toolchain[0]
    assert "clang-14" in host_without_toolchain[0]
    assert host_without_toolchain[0].endswith("using bpftrace")


def test_an_explicit_core_tracer_fails_instead_of_falling_back(
    host_without_toolchain: list[str],
) -> None:
    with pytest.raises(SensorError, match="--tracer core: clang-14"):
        select_tracer("core", log=host_without_toolchain.append)
    assert host_without_toolchain == []
    assert select_tracer("bpftrace", log=host_without_toolchain.append).tracer.name == "bpftrace"
    assert host_without_toolchain == []


def test_a_core_tracer_that_fails_to_load_falls_back_to_bpftrace() -> None:
    """The build worked but the kernel refused the programs: auto starts bpftrace instead."""
    failing = Tracer("core", [sys.executable, "-c", "import sys; sys.stderr.write('ERROR: no\\n')"])
    ready = Tracer("bpftrace", [sys.executable, "-c", "print('R\\tready', flush=True)"])
    messages: list[str] = []
    collector = BpfCollector(tracer=failing, fallback=lambda: ready, log=messages.append)
    collector.start()
    list(collector.events())
    assert collector.tracer.name == "bpftrace"
    assert messages == [
        "sensor: own eBPF collector unavailable (core failed to start: ERROR: no); using bpftrace"
    ]
    # without a fallback (--tracer core) the failure is the sensor's error
    alone = BpfCollector(tracer=failing)
    with pytest.raises(SensorError, match="core failed to start: ERROR: no"):
        alone.start()


def test_the_c_sources_ship_in_the_package_with_their_license() -> None:
    for name in bpfcore.SOURCES:
        text = bpfcore.source_text(name).decode()
        assert "SPDX-License-Identifier: Apache-2.0" in text.splitlines()[0]
        assert os.sep + "work" + os.sep not in text  # no machine paths


def test_the_core_tracer_is_given_how_long_probes_wait_for_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--answer-seconds reaches the loader's command line (its argv[2])."""
    monkeypatch.setattr(bpf, "_root", lambda: True)
    monkeypatch.setattr(bpf, "check_host", lambda: None)
    monkeypatch.setattr(bpfcore, "prepare", lambda: ["/cache/rwcore", "/cache/rwcore.bpf.o"])
    collector = select_tracer("core", answer_seconds=7)
    assert collector.tracer.argv == ["/cache/rwcore", "/cache/rwcore.bpf.o", "7"]


@pytest.mark.parametrize("value", ["0", "3601", "soon"])
def test_an_answer_wait_outside_1_to_3600_seconds_is_a_usage_error(
    value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """From the option or the environment, before anything starts: exit 2, naming the option."""
    out = str(tmp_path / "events.ndjson")
    code, _, err = run_cli(["sensor", "--output", out, "--answer-seconds", value], capsys)
    assert code == 2 and "--answer-seconds" in err, err
    monkeypatch.setenv("RECONWATCH_ANSWER_SECONDS", value)
    code, _, err = run_cli(["sensor", "--output", out], capsys)
    assert code == 2 and "--answer-seconds" in err, err
    assert not (tmp_path / "events.ndjson").exists()
