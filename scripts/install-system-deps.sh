#!/usr/bin/env bash
# Debian packages the sensor and its tests use (bpftrace, auditd, clang-14 + libbpf-dev + bpftool
# for the eBPF sensor's own collector, a few MB next to the LLVM bpftrace already pulls in, and the
# scanners nmap, fping, ping, masscan, zmap), the C compiler the stream's compiled line scan builds with (gcc,
# Python headers), chromium, the browser the triage UI's Playwright tests drive, and the Java
# runtime the Spark executor runs on (openjdk-17-jre-headless, skipped when a java is already
# on the PATH). Needs root; a no-op otherwise.
set -uo pipefail
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-system-deps: not root or no apt-get; sensor tests will say why they skip"
  exit 0
fi
missing=""
for pkg in bpftrace clang-14 libbpf-dev bpftool nmap fping iputils-ping masscan zmap auditd gcc \
  chromium; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
command -v java >/dev/null 2>&1 || dpkg -s openjdk-17-jre-headless >/dev/null 2>&1 \
  || missing="$missing openjdk-17-jre-headless"
# A Debian python3 needs its -dev package for Python.h (a pyenv or python.org build has it).
include="$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2>/dev/null)"
if [ -n "$include" ] && [ ! -f "$include/Python.h" ]; then
  missing="$missing python3-dev"
fi
[ -z "$missing" ] && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null || true
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null \
  || echo "install-system-deps: could not install:$missing; sensor tests will say why they skip, the stream falls back to its Python scan, and --engine spark names what to install"
exit 0
