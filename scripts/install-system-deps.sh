#!/usr/bin/env bash
# Debian packages the sensor and its tests use (bpftrace, nmap, auditd). Needs root; a no-op otherwise.
set -uo pipefail
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-system-deps: not root or no apt-get; sensor tests will say why they skip"
  exit 0
fi
missing=""
for pkg in bpftrace nmap auditd; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null || true
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null \
  || echo "install-system-deps: could not install:$missing; sensor tests will say why they skip"
exit 0
