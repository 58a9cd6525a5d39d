#!/usr/bin/env bash
# Run the core of the suite on the oldest releases pyproject.toml admits (its ">=" bounds), so the
# ranges library users get stay honest. Not part of CI (it installs a second environment); run it
# after raising or lowering a bound.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
pins="$(python3 - <<'PY'
import re, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
for spec in project["dependencies"] + project["optional-dependencies"]["dev"]:
    print(re.sub(r">=([^,]+).*", r"==\1", spec))
PY
)"
# shellcheck disable=SC2086
"$tmp/venv/bin/pip" install -q $pins
"$tmp/venv/bin/pip" install -q --no-deps -e .
"$tmp/venv/bin/pytest" -q -p no:cacheprovider -W ignore::DeprecationWarning \
  tests/unit/test_ingest.py tests/unit/test_stream_watch.py tests/unit/test_duckdb_backend.py \
  tests/unit/test_differential.py tests/unit/test_stream_vs_batch.py tests/e2e/test_detect_cli.py
