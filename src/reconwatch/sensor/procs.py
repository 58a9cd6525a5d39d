"""pid -> executable, args and user: fed by exec events, falling back to /proc for older processes."""

from __future__ import annotations

import os
import pwd
import time
from collections import OrderedDict
from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    executable: str | None
    args: list[str] | None = None
    ppid: int | None = None
    start: float | None = None  # epoch seconds of the exec, when seen
    exec_ns: int | None = None  # the tracer's clock (nanoseconds) at that exec


def _readlink_exe(pid: int) -> str | None:
    """The executable's path; undecodable bytes come back as surrogates, losslessly."""
    try:
        return fs_text(os.readlink(b"/proc/%d/exe" % pid))
    except OSError:
        return None


def fs_text(raw: bytes) -> str:
    """Bytes from the kernel as str without loss (like os.fsdecode, but always UTF-8): a byte
    that is not UTF-8 becomes a lone surrogate, which ecs.network turns back into these bytes
    for process.entity_id and into U+FFFD for the JSON documents."""
    return raw.decode("utf-8", "surrogateescape")


def _still_runs(pid: int, filename: str) -> bool:
    """Whether `pid`'s comm is still the one an exec of `filename` gave it (the file's name, cut
    to 15 bytes); a comm set since with prctl(PR_SET_NAME) also says no, and the caller then
    falls back to the exec path, which names the same program."""
    try:
        with open(f"/proc/{pid}/comm", "rb") as handle:
            comm = handle.read().rstrip(b"\n")
    except OSError:
        return False
    name = os.fsencode(filename).rsplit(b"/", 1)[-1][:15]
    return comm == name


def _cmdline(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    parts = [fs_text(p) for p in raw.split(b"\0") if p]
    return parts or None


class ProcessCache:
    """Bounded LRU of what each live pid runs; exec events keep it right for short-lived processes."""

    def __init__(self, capacity: int = 65536, *, miss_ttl: float = 1.0) -> None:
        self.capacity = capacity
        self.entries: OrderedDict[int, ProcessInfo] = OrderedDict()
        self.users: dict[int, str | None] = {}
        # pid -> (monotonic expiry, what /proc said): a process that is gone sends its buffered
        # events in a burst, and three failed /proc reads per event would dominate the sensor.
        self.miss_ttl = miss_ttl
        self.misses: dict[int, tuple[float, ProcessInfo]] = {}
        # pid -> what it ran before its last exec: the tracer batches events, so one made just
        # before an exec can be read after the exec's line (see lookup's `at_ns`)
        self.before: OrderedDict[int, ProcessInfo] = OrderedDict()

    def on_exec(
        self,
        pid: int,
        filename: str | None,
        ppid: int | None,
        start: float,
        at_ns: int | None = None,
    ) -> None:
        # /proc names the real binary (the interpreter for a script); the exec path (None when
        # the tracer had to cut it) is the fallback when the process is already gone, or has
        # exec'd again since (its comm, which exec sets to the file's name, is another's: the
        # sensor reads this exec's line after the process ran on).
        exe = _readlink_exe(pid)
        if exe is not None and filename is not None and not _still_runs(pid, filename):
            exe = None
        if exe is None and filename is not None and filename.startswith("/"):
            exe = filename
        self.misses.pop(pid, None)
        if at_ns is not None:
            self._remember_before(pid, ppid)
        # args come next, from the tracer's own copy (on_args), not from /proc
        self._put(pid, ProcessInfo(exe, None, ppid, start, at_ns))

    def _remember_before(self, pid: int, ppid: int | None) -> None:
        """What `pid` ran until this exec: its cached image if that is the same process (exec
        keeps the parent), otherwise the parent's (a forked child runs its parent's image until
        it execs); nothing when neither is known (its earlier events stay unattributed rather
        than given the new image)."""
        previous = self.entries.get(pid)
        if previous is None or previous.ppid != ppid:
            parent = self.entries.get(ppid) if ppid else None
            previous = None if parent is None else replace(parent, ppid=ppid, exec_ns=None)
        if previous is None:
            self.before.pop(pid, None)
            return
        self.before[pid] = previous
        self.before.move_to_end(pid)
        while len(self.before) > self.capacity:
            self.before.popitem(last=False)

    def on_args(self, pid: int, args: list[str], whole: bool) -> None:
        """The argv of the exec just seen for `pid`. A list the tracer had to cut is completed
        from /proc/PID/cmdline while the process still runs; otherwise the cut list is kept."""
        info = self.entries.get(pid)
        if info is None:
            return  # its exec line was lost or bad: lookup() falls back to /proc
        if not whole:
            args = _cmdline(pid) or args
        self.entries[pid] = replace(info, args=args or None)

    def lookup(self, pid: int, at_ns: int | None = None) -> ProcessInfo:
        """What `pid` runs; with `at_ns` (the tracer's clock at the event), what it ran then: an
        event from before the last exec seen for it gets the image before that exec."""
        info = self.entries.get(pid)
        if info is not None:
            self.entries.move_to_end(pid)
            if at_ns is not None and info.exec_ns is not None and at_ns < info.exec_ns:
                return self.before.get(pid) or ProcessInfo(None, None, info.ppid)
            return info
        now = time.monotonic()
        miss = self.misses.get(pid)
        if miss is not None and miss[0] > now:
            return miss[1]
        info = ProcessInfo(_readlink_exe(pid), _cmdline(pid), _ppid(pid))
        if info.executable is not None:
            self.misses.pop(pid, None)
            self._put(pid, info)
        else:
            if len(self.misses) >= self.capacity:
                self.misses.clear()
            self.misses[pid] = (now + self.miss_ttl, info)
        return info

    def _put(self, pid: int, info: ProcessInfo) -> None:
        self.entries[pid] = info
        self.entries.move_to_end(pid)
        while len(self.entries) > self.capacity:
            self.entries.popitem(last=False)

    def user_name(self, uid: int) -> str | None:
        if uid not in self.users:
            try:
                self.users[uid] = pwd.getpwuid(uid).pw_name
            except KeyError:
                self.users[uid] = None
        return self.users[uid]


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses; fields after the last ')' are fixed.
    fields = stat.rpartition(")")[2].split()
    return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None
