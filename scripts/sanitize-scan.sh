#!/usr/bin/env bash
# The compiled stream scan (_scan.c) under AddressSanitizer and UBSan: rebuilt with both over
# its in-place build, its tests and the fast-path suite run, then the normal build restored.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
asan="$(gcc -print-file-name=libasan.so 2>/dev/null || true)"
ubsan="$(gcc -print-file-name=libubsan.so 2>/dev/null || true)"
if [ ! -f "$asan" ] || [ ! -f "$ubsan" ]; then
  echo "sanitize-scan: gcc's libasan/libubsan not found; the sanitizer run is skipped"
  exit 0
fi
# The in-place build's path (not found by importing it: an interrupted run leaves a sanitized
# build that only loads with the runtimes preloaded).
suffix="$("$BIN/python" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')"
so="src/reconwatch/backends/stream/_scan$suffix"
include="$("$BIN/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
trap '"$BIN/pip" install -q -e . >/dev/null' EXIT
gcc -shared -fPIC -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all \
  -fno-omit-frame-pointer -I"$include" src/reconwatch/backends/stream/_scan.c -o "$so"
# Python itself is not built with ASan: leak reports would be its own, so only errors count;
# --capture=sys leaves fd 2 to the sanitizers, so a report reaches the log before the abort.
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  LD_PRELOAD="$asan $ubsan" RECONWATCH_REQUIRE_COMPILED=1 \
  "$BIN/pytest" -q -p no:cacheprovider --capture=sys tests/unit/test_stream_scan_native.py \
  tests/unit/test_watch_reader.py tests/unit/test_stream_fastpath.py
