"""Input formats: one registry entry per kind of event file, recognised by content or named."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from reconwatch.errors import IngestError, UsageError
from reconwatch.ingest.head import Head, read_head
from reconwatch.records import record

if TYPE_CHECKING:
    from reconwatch.ingest.report import IngestReport

Reader = Callable[[Path, "IngestReport"], Iterator[tuple[int, object]]]


@record
class InputFormat:
    """An input format: how it is recognised, read, and which readers may take it.

    `sniff` decides from the file's head alone; `read` yields (line or record number, decoded
    event) and reports bad records to the IngestReport. `duckdb`: DuckDB's NDJSON reader may
    read the file itself (ingest.fast). `lines`: text read line by line, so a plain file can be
    followed and streamed (ingest.follow); `line_decoder` then makes, per file, what turns its
    lines into events (None: each line is an NDJSON event the stream executor decodes itself)."""

    name: str
    summary: str
    sniff: Callable[[Head], bool]
    read: Reader
    duckdb: bool = False
    lines: bool = False
    line_decoder: Callable[[Path, IngestReport], LineDecoder] | None = None
    # Compressed files of this format are read too (not followed).
    gzip: bool = True


class LineDecoder(Protocol):
    """A line format's reader for one file, fed line by line as the file is read or grows."""

    def feed(self, raw: bytes, lineno: int) -> list[tuple[int, dict[str, object]]]:
        """One line (without its newline); the (line, event) pairs it completes."""
        ...

    def flush(self) -> list[tuple[int, dict[str, object]]]:
        """At the end of the input: the events still pending."""
        ...


class UnrecognisedFormatError(IngestError):
    """A file no registered format recognises: named, with what it looks like instead."""

    def __init__(self, path: str, looks_like: str) -> None:
        self.looks_like = looks_like
        known = ", ".join(names())
        super().__init__(
            f"unrecognised format: {path} looks like {looks_like} (formats read: {known}; "
            "force one with --input-format NAME)",
            path,
            None,
        )

    def one_line(self) -> str:
        return self.reason  # names the file itself


_REGISTRY: dict[str, InputFormat] = {}
_LOADED = False


def register(fmt: InputFormat, *, before: str | None = None) -> InputFormat:
    """Add a format; sniffers run in registration order, so a more specific format (a JSON
    log with its own keys) registers `before` the general one it would otherwise match."""
    _builtin()
    if fmt.name in _REGISTRY:
        msg = f"input format {fmt.name!r} is already registered"
        raise ValueError(msg)
    items = list(_REGISTRY.items())
    at = next((i for i, (n, _f) in enumerate(items) if n == before), len(items))
    items.insert(at, (fmt.name, fmt))
    _REGISTRY.clear()
    _REGISTRY.update(items)
    return fmt


def names() -> tuple[str, ...]:
    _builtin()
    return tuple(_REGISTRY)


def get(name: str, option: str = "--input-format") -> InputFormat:
    """A format by name; a UsageError listing the names otherwise."""
    _builtin()
    fmt = _REGISTRY.get(name)
    if fmt is None:
        msg = f"{option} {name!r}: choose one of {', '.join(_REGISTRY)} (default: by content)"
        raise UsageError(msg)
    return fmt


def sniff(path: Path, head: Head | None = None) -> InputFormat:
    """The format whose sniffer recognises the file first. OSError if it cannot be read;
    UnrecognisedFormatError naming what it looks like if no format takes it."""
    _builtin()
    head = head if head is not None else read_head(path)
    for fmt in _REGISTRY.values():
        if (fmt.gzip or not head.compressed) and fmt.sniff(head):
            return fmt
    raise UnrecognisedFormatError(str(path), looks_like(head))


def resolve(path: Path, forced: str | None = None) -> InputFormat:
    """The format a file is read as: `forced` (--input-format) or its sniffed one."""
    return get(forced) if forced is not None else sniff(path)


def read_events(
    path: Path, report: IngestReport, input_format: str | None = None
) -> Iterator[tuple[int, object]]:
    """(line or record number, decoded value) for each event of a file, read by its format
    (ingest.formats: `input_format` by name, else recognised by content); bad events and
    unreadable or unrecognised files are reported."""
    name = str(path)
    try:
        fmt = resolve(path, input_format)
    except OSError as exc:
        report.add(f"cannot read file: {exc.strerror or exc}", name, None)
        return
    except IngestError as exc:  # an unrecognised format, named
        report.errors.append(exc)
        return
    yield from fmt.read(path, report)


# What a file no format reads looks like, so the error says more than "unrecognised". Later
# formats (Zeek, pcap, netfilter LOG) register readers; these descriptions stay the fallback.
_PCAP_MAGIC = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
_SIGNATURES: tuple[tuple[str, Callable[[Head], bool]], ...] = (
    ("a pcap packet capture", lambda h: h.raw[:4] in _PCAP_MAGIC),
    ("a pcapng packet capture", lambda h: h.raw[:4] == b"\x0a\x0d\x0d\x0a"),
    ("zstd-compressed data (only gzip is read)", lambda h: h.raw[:4] == b"\x28\xb5\x2f\xfd"),
    ("bzip2-compressed data (only gzip is read)", lambda h: h.raw[:3] == b"BZh"),
    ("xz-compressed data (only gzip is read)", lambda h: h.raw[:6] == b"\xfd7zXZ\x00"),
    ("a zip archive", lambda h: h.raw[:4] == b"PK\x03\x04"),
    ("a Zeek log (#separator header)", lambda h: h.data.startswith(b"#separator")),
    (
        "netfilter LOG lines (iptables/nftables kernel log)",
        lambda h: any(b" SRC=" in x and b" DST=" in x and b" PROTO=" in x for x in h.lines()[:20]),
    ),
    ("an EVTX Windows event log", lambda h: h.raw[:8] == b"ElfFile\x00"),
)


def looks_like(head: Head) -> str:
    for description, test in _SIGNATURES:
        if test(head):
            return description
    if b"\x00" in head.data[:4096]:
        return "binary data"
    first = head.first_line()
    if not first:
        return "an empty file"
    shown = first[:40].decode("utf-8", "replace")
    return f"text that is not JSON (first line {shown!r})"


# -- the formats reconwatch reads today -------------------------------------------------------


def _sniff_parquet(head: Head) -> bool:
    return head.raw[:4] == b"PAR1"


def _sniff_json_array(head: Head) -> bool:
    return head.data.lstrip()[:1] == b"["


def _sniff_ndjson(head: Head) -> bool:
    """An object on some line of the head, or nothing but blanks: a file whose first lines are
    damaged is still NDJSON (the damaged lines are reported, the good ones read)."""
    found = head.lines()
    return not found or head.broken or any(line[:1] == b"{" for line in found)


def _builtin() -> None:
    """Register today's formats once, on first use (the readers import lazily)."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    from reconwatch.ingest import auditd, netfilter, osquery, pcap, read, suricata, sysmon, zeek

    register(
        InputFormat(
            "parquet", "Apache Parquet files", _sniff_parquet, read.read_parquet, gzip=False
        )
    )
    register(
        InputFormat(
            auditd.FORMAT,
            "Linux audit logs (auditd's audit.log): connect() records as ECS events",
            auditd.sniff,
            auditd.read_audit_log_events,
            lines=True,
            line_decoder=auditd.AuditLines,
        )
    )
    register(
        InputFormat(
            pcap.FORMAT,
            "packet captures (pcap, pcapng): probes and their outcomes, as Zeek summarises them",
            pcap.sniff,
            pcap.read_pcap,
            gzip=False,
        )
    )
    register(
        InputFormat(
            zeek.FORMAT,
            "Zeek conn.log, TSV (#fields/#types header) or JSON lines",
            zeek.sniff,
            zeek.read_zeek,
            lines=True,
            line_decoder=zeek.ZeekLines,
        )
    )
    register(
        InputFormat(
            netfilter.FORMAT,
            "iptables/nftables LOG lines: kernel log, syslog, journalctl -o json / -o export",
            netfilter.sniff,
            netfilter.read_netfilter,
            lines=True,
            line_decoder=netfilter.NetfilterLines,
        )
    )
    register(
        InputFormat(
            suricata.FORMAT,
            "Suricata EVE JSON: flow events (alerts kept as context)",
            suricata.sniff,
            suricata.read_eve,
            lines=True,
            line_decoder=suricata.EveLines,
        )
    )
    register(
        InputFormat(
            sysmon.FORMAT,
            "Sysmon for Linux syslog lines: network connections (Event ID 3)",
            sysmon.sniff,
            sysmon.read_sysmon,
            lines=True,
            line_decoder=sysmon.SysmonLines,
        )
    )
    register(
        InputFormat(
            osquery.FORMAT,
            "osquery results log: socket_events connect/accept rows",
            osquery.sniff,
            osquery.read_osquery,
            lines=True,
            line_decoder=osquery.OsqueryLines,
        )
    )
    register(InputFormat("json", "a JSON array of ECS events", _sniff_json_array, read.read_array))
    register(
        InputFormat(
            "ndjson",
            "ECS events, one JSON object per line (NDJSON, JSON Lines), plain or gzip",
            _sniff_ndjson,
            read.read_ndjson,
            duckdb=True,
            lines=True,
        )
    )
