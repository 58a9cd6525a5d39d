#!/usr/bin/env bash
# Resolve the newest releases within pyproject.toml's ranges in a throw-away venv and write their
# exact versions to requirements.lock (run make test-all afterwards, and commit both together).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q --upgrade pip
"$tmp/venv/bin/pip" install -q -e '.[dev]'
{
  echo "# Exact versions the test suite passed with (Python 3.11, Linux). \`make setup\` (the README's"
  echo "# commands, .ci/run) installs from this file; pyproject.toml keeps the ranges a library user gets."
  echo "# Regenerate after a dependency change: make lock (then run make test-all)."
  "$tmp/venv/bin/pip" freeze --exclude-editable | grep -v '^reconwatch' | LC_ALL=C sort -f
} > requirements.lock
echo "requirements.lock: $(grep -vc '^#' requirements.lock) pins"
