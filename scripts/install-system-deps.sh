#!/usr/bin/env bash
# Debian packages the sensor and its tests use (bpftrace, auditd, and the scanners nmap, fping,
# ping, masscan, zmap) and the C compiler the stream's compiled line scan builds with (gcc,
# Python headers), and chromium, the browser the triage UI's Playwright tests drive. Needs root;
# a no-op otherwise.
set -uo pipefail
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-system-deps: not root or no apt-get; sensor tests will say why they skip"
  exit 0
fi
missing=""
for pkg in bpftrace nmap fping iputils-ping masscan zmap auditd gcc chromium; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
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
  || echo "install-system-deps: could not install:$missing; sensor tests will say why they skip, and the stream falls back to its Python scan"
exit 0
