"""A test-only pause inside the store's write transactions (RECONWATCH_TEST_PAUSE), where the crash tests kill the process."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

import msgspec

# "WHAT:SIGNAL_FILE" or "WHAT@N:SIGNAL_FILE": the first transaction of kind WHAT (`events`: an
# event batch; `alerts`: a run's or real-time alerts) once N events were committed before it
# (default 0) writes SIGNAL_FILE and never commits; the test then sends SIGKILL. Unset (every
# real run) it costs one dictionary lookup per transaction.
PAUSE_ENV = "RECONWATCH_TEST_PAUSE"
_fired = threading.Event()


def pause_point(what: str, ids: Sequence[str], committed: int = 0) -> None:
    """Inside an open transaction, before its COMMIT: when the environment asks for a pause
    here, say so in the signal file (pid, kind, the ids the transaction writes) and block."""
    spec = os.environ.get(PAUSE_ENV)
    if not spec or _fired.is_set():
        return
    kind, _, path = spec.partition(":")
    name, _, after = kind.partition("@")
    if name != what or not path or committed < int(after or 0):
        return
    _fired.set()
    signal = Path(path)
    partial = signal.with_name(signal.name + ".part")
    partial.write_bytes(msgspec.json.encode({"pid": os.getpid(), "what": what, "ids": list(ids)}))
    partial.rename(signal)  # whole or absent: the test reads it once it exists
    threading.Event().wait()  # held inside the transaction until the process is killed
