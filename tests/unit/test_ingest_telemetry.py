"""Zeek, netfilter LOG, pcap, Suricata EVE, Sysmon for Linux and osquery inputs: recognised by content, mapped to ECS, bad records counted with their location."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import dpkt
import pytest

from reconwatch.ingest import formats
from reconwatch.ingest.dataset import Dataset
from reconwatch.ingest.report import IngestReport

ZEEK_HEADER = (
    "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n"
    "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\t"
    "orig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\t"
    "orig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents\n"
    "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\t"
    "bool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]\n"
)
ZEEK_ROWS = [
    "1700000000.5\tCa1\t10.0.0.5\t40000\t10.0.0.9\t22\ttcp\t-\t-\t-\t-\tS0\tT\tT\t0\tS\t1\t44\t0\t0\t(empty)",
    "1700000001.0\tCa2\t10.0.0.5\t40001\t10.0.0.9\t23\ttcp\t-\t0.001\t0\t0\tREJ\tT\tT\t0\tSr\t1\t44\t1\t40\t(empty)",
    "1700000002.0\tCa3\t10.0.0.5\t40002\t10.0.0.9\t80\ttcp\thttp\t1.5\t100\t2000\tSF\tT\tT\t0\tShADadFf\t5\t400\t5\t2400\t(empty)",
    "1700000003.0\tCa4\t10.0.0.9\t80\t10.0.0.5\t40003\ttcp\t-\t-\t-\t-\tSHR\tT\tT\t0\th\t0\t0\t1\t44\t(empty)",
]


def _read(
    path: Path, fmt: str | None = None, year: int | None = None
) -> tuple[list[dict[str, object]], IngestReport]:
    report = IngestReport(year)
    events = [e for _line, e in formats.read_events(path, report, fmt)]
    assert all(isinstance(e, dict) for e in events)
    return events, report  # type: ignore[return-value]


def _get(doc: object, dotted: str) -> object:
    for part in dotted.split("."):
        assert isinstance(doc, dict), dotted
        doc = doc.get(part)
    return doc


def test_zeek_tsv_is_recognised_and_mapped(tmp_path: Path) -> None:
    path = tmp_path / "conn.log"
    path.write_text(ZEEK_HEADER + "\n".join(ZEEK_ROWS) + "\n")
    assert formats.sniff(path).name == "zeek"
    events, report = _read(path)
    assert not report.errors
    s0, rej, sf, shr = events
    assert _get(s0, "source.ip") == "10.0.0.5" and _get(s0, "destination.port") == 22
    assert _get(s0, "zeek.session_id") == "Ca1"
    assert _get(s0, "event.dataset") == "zeek.connection"
    assert _get(s0, "data_stream.dataset") == "zeek.connection"
    assert (_get(s0, "event.action"), _get(s0, "event.outcome"), _get(s0, "event.reason")) == (
        "connection_attempted",
        "failure",
        "timeout",
    )
    assert (_get(rej, "event.outcome"), _get(rej, "event.reason")) == ("failure", "refused")
    assert (_get(sf, "event.outcome"), _get(sf, "event.reason")) == ("success", "established")
    assert _get(sf, "network.protocol") == "http" and _get(sf, "event.duration") == 1_500_000_000
    assert _get(sf, "zeek.connection.state") == "SF"
    assert _get(sf, "zeek.connection.history") == "ShADadFf"
    assert _get(shr, "event.action") == "network_flow"  # the responder alone: no probe


def test_zeek_json_lines_and_index(tmp_path: Path) -> None:
    path = tmp_path / "conn.json"
    path.write_text(
        '{"ts":1700000000.1,"uid":"Cx","id.orig_h":"192.168.1.9","id.orig_p":5,"id.resp_h":"45.33.32.156",'
        '"id.resp_p":443,"proto":"tcp","conn_state":"REJ","history":"Sr","orig_pkts":1,"resp_pkts":1}\n'
    )
    assert formats.sniff(path).name == "zeek"
    ds = Dataset.from_files([path])
    from datetime import UTC, datetime

    from reconwatch.query import run_query

    result = run_query(
        "from logs-zeek.connection-* metadata _index | keep _index, zeek.session_id, event.reason",
        ds,
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert result.as_dicts() == [
        {
            "_index": "logs-zeek.connection-default",
            "zeek.session_id": "Cx",
            "event.reason": "refused",
        }
    ]


def test_zeek_json_line_cut_short_is_reported_as_not_json(tmp_path: Path) -> None:
    line = (
        '{"ts":1700000000.1,"uid":"Cx","id.orig_h":"192.168.1.9","id.orig_p":5,'
        '"id.resp_h":"45.33.32.156","id.resp_p":443,"proto":"tcp","conn_state":"REJ"}'
    )
    path = tmp_path / "conn.json"
    path.write_text(line + "\n" + line[:40] + "\n" + line + "\n")
    events, report = _read(path)
    assert len(events) == 2
    assert [(e.line, e.reason.split(":")[0]) for e in report.errors] == [(2, "not JSON")]


def test_zeek_header_and_columns_disagree(tmp_path: Path) -> None:
    path = tmp_path / "conn.log"
    cut = ZEEK_ROWS[1][:30]  # a line cut in the middle
    path.write_text(
        ZEEK_HEADER + "\n".join([ZEEK_ROWS[0], cut, ZEEK_ROWS[2], "1.0\tx\t1.2.3.4"]) + "\n"
    )
    events, report = _read(path)
    assert len(events) == 2
    lines = [e.line for e in report.errors]
    assert lines == [9, 11]
    assert "columns where #fields names 21" in report.errors[0].reason


def test_zeek_header_of_fields_and_types_only(tmp_path: Path) -> None:
    path = tmp_path / "conn.tsv"
    header = "".join(
        x + "\n" for x in ZEEK_HEADER.splitlines() if x.startswith(("#fields", "#types"))
    )
    path.write_text(header + ZEEK_ROWS[1] + "\n")
    assert formats.sniff(path).name == "zeek"
    events, report = _read(path)
    assert not report.errors and _get(events[0], "event.reason") == "refused"


def test_zeek_data_before_header_and_bad_value(tmp_path: Path) -> None:
    path = tmp_path / "conn.log"
    bad_port = ZEEK_ROWS[0].replace("\t40000\t", "\tforty\t")
    path.write_text(ZEEK_HEADER + bad_port + "\n" + ZEEK_ROWS[1] + "\n")
    events, report = _read(path, "zeek")
    assert len(events) == 1
    assert report.errors[0].line == 8 and "id.orig_p" in report.errors[0].reason


PSAD = (
    "Mar 11 20:35:11 fw kernel: [463490.251762] DROP IN=eth1 OUT= MAC=23:87:fc:c6:24:58:00:21:3f:98:99:78:09:00 "
    "SRC=192.168.10.55 DST=192.168.10.1 LEN=44 TOS=0x00 PREC=0x00 TTL=53 ID=15270 PROTO=TCP SPT=56247 "
    "DPT=1025 WINDOW=3072 RES=0x00 SYN URGP=0 OPT (020405B4) "
)


def test_netfilter_syslog_year_from_option_or_mtime(tmp_path: Path) -> None:
    path = tmp_path / "kern.log"
    udp = PSAD.replace(
        "PROTO=TCP SPT=56247 DPT=1025 WINDOW=3072 RES=0x00 SYN URGP=0 OPT (020405B4) ",
        "PROTO=UDP SPT=1 DPT=53 LEN=8",
    )
    path.write_text(
        "Mar 11 20:35:10 fw sshd[1]: unrelated\n" + PSAD + "\n" + udp + "\n" + PSAD[:120] + "\n"
    )
    os.utime(path, (1_700_000_000, 1_700_000_000))  # 2023-11-14
    assert formats.sniff(path).name == "netfilter"
    events, report = _read(path)
    assert [_get(e, "@timestamp") for e in events] == ["2023-03-11T20:35:11.000Z"] * 2
    assert "2023, the file's modification year" in report.notes[0]
    assert [e.line for e in report.errors] == [4]  # the line cut short
    tcp, udp_event = events
    assert _get(tcp, "event.action") == "connection_attempted"
    assert _get(tcp, "reconwatch.tcp_flags") == "S"
    assert _get(tcp, "iptables.blocked") is True and _get(tcp, "event.type") == ["denied"]
    assert _get(tcp, "observer.ingress.interface.name") == "eth1"
    assert (
        _get(udp_event, "network.transport") == "udp" and _get(udp_event, "destination.port") == 53
    )
    events, report = _read(path, year=2019)
    assert _get(events[0], "@timestamp") == "2019-03-11T20:35:11.000Z"
    assert "2019 (--year)" in report.notes[0]


def test_netfilter_journald_json_and_export(tmp_path: Path) -> None:
    message = PSAD.split("kernel: ", 1)[1]
    js = tmp_path / "journal.json"
    js.write_text(
        '{"__REALTIME_TIMESTAMP":"1700000000000000","_HOSTNAME":"fw","MESSAGE":"' + message + '"}\n'
    )
    export = tmp_path / "journal.export"
    export.write_text(
        f"__CURSOR=s=1\n__REALTIME_TIMESTAMP=1700000000000000\n_HOSTNAME=fw\nMESSAGE={message}\n\n"
    )
    for path in (js, export):
        assert formats.sniff(path).name == "netfilter"
        events, report = _read(path)
        assert not report.errors and len(events) == 1
        assert _get(events[0], "@timestamp") == "2023-11-14T22:13:20.000Z"
        assert _get(events[0], "observer.hostname") == "fw"


def test_netfilter_ipv6_addresses_are_compressed(tmp_path: Path) -> None:
    path = tmp_path / "kern.log"
    path.write_text(
        "Mar 17 13:39:13 linux kernel: [956932.482352] DROP IN=eth0 OUT= SRC=2001:0db8:0000:f101:0000:0000:0000:0002 "
        "DST=2001:0db8:0000:f101:0000:0000:0000:0001 LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=TCP SPT=46395 DPT=80 "
        "WINDOW=5760 RES=0x00 SYN URGP=0 \n"
    )
    events, _ = _read(path, year=2026)
    assert _get(events[0], "source.ip") == "2001:db8:0:f101::2"
    assert _get(events[0], "network.type") == "ipv6"


def _pcap(path: Path, packets: list[bytes], start: float = 1_700_000_000.0) -> None:
    with path.open("wb") as fh:
        writer = dpkt.pcap.Writer(fh, linktype=dpkt.pcap.DLT_RAW)
        for i, pkt in enumerate(packets):
            writer.writepkt(pkt, ts=start + i)


def _tcp(src: str, dst: str, sport: int, dport: int, flags: int) -> bytes:
    import socket

    seg = dpkt.tcp.TCP(sport=sport, dport=dport, flags=flags, off=5)
    ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=6, data=seg)
    ip.len = len(ip)
    return bytes(ip)


def test_pcap_probes_and_outcomes(tmp_path: Path) -> None:
    syn, syn_ack, rst_ack = 0x02, 0x12, 0x14
    path = tmp_path / "scan.pcap"
    _pcap(
        path,
        [
            _tcp("10.0.0.5", "10.0.0.9", 4000, 22, syn),
            _tcp("10.0.0.5", "10.0.0.9", 4000, 22, syn),  # a retransmission: the same probe
            _tcp("10.0.0.9", "10.0.0.5", 22, 4000, syn_ack),
            _tcp("10.0.0.5", "10.0.0.9", 4001, 23, syn),
            _tcp("10.0.0.9", "10.0.0.5", 23, 4001, rst_ack),
            _tcp("10.0.0.5", "10.0.0.9", 4002, 25, syn),  # never answered
            _tcp("8.8.8.8", "10.0.0.7", 80, 999, syn_ack),  # backscatter: no probe
        ],
    )
    assert formats.sniff(path).name == "pcap"
    events, report = _read(path)
    assert not report.errors
    got = [
        (
            _get(e, "event.action"),
            _get(e, "source.ip"),
            _get(e, "destination.port"),
            _get(e, "event.reason"),
        )
        for e in events
    ]
    assert got == [
        ("connection_attempted", "10.0.0.5", 22, None),
        ("connection_result", "10.0.0.5", 22, "established"),
        ("connection_attempted", "10.0.0.5", 23, None),
        ("connection_result", "10.0.0.5", 23, "refused"),
        ("connection_attempted", "10.0.0.5", 25, None),
        ("connection_result", "10.0.0.7", 80, "established"),
    ]


def test_pcap_truncated_keeps_whole_packets(tmp_path: Path) -> None:
    path = tmp_path / "cut.pcap"
    _pcap(path, [_tcp("10.0.0.5", "10.0.0.9", 4000 + i, 22, 0x02) for i in range(3)])
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    events, report = _read(path)
    assert len(events) == 2
    assert len(report.errors) == 1 and report.errors[0].line == 3
    assert "cut short after packet 2" in report.errors[0].reason


def test_pcapng_is_read(tmp_path: Path) -> None:
    path = tmp_path / "scan.pcapng"
    with path.open("wb") as fh:
        writer = dpkt.pcapng.Writer(fh, linktype=dpkt.pcap.DLT_RAW)
        writer.writepkt(_tcp("10.0.0.5", "10.0.0.9", 4000, 22, 0x02), ts=1_700_000_000.0)
    assert formats.sniff(path).name == "pcap"
    events, report = _read(path)
    assert not report.errors and _get(events[0], "destination.port") == 22


def test_unrecognised_still_names_what_it_looks_like(tmp_path: Path) -> None:
    path = tmp_path / "dns.log"
    path.write_text("#separator \\x09\n#path\tdns\n#fields\tts\tuid\tquery\n")
    with pytest.raises(formats.UnrecognisedFormatError, match="a Zeek log"):
        formats.sniff(path)


def test_gzip_zeek_is_read(tmp_path: Path) -> None:
    path = tmp_path / "conn.log.gz"
    path.write_bytes(gzip.compress((ZEEK_HEADER + ZEEK_ROWS[0] + "\n").encode()))
    events, report = _read(path)
    assert len(events) == 1 and not report.errors


def test_format_names_are_registered() -> None:
    for name in ("zeek", "netfilter", "pcap", "suricata", "sysmon", "osquery"):
        assert formats.get(name).name == name


EVE_FLOW = (
    '{"timestamp":"2026-03-11T20:35:11.000100+0000","flow_id":1,"event_type":"flow","src_ip":"10.0.0.5",'
    '"src_port":40000,"dest_ip":"10.0.0.9","dest_port":22,"proto":"TCP","flow":{"pkts_toserver":1,'
    '"pkts_toclient":1,"start":"2026-03-11T20:35:11.000100+0000","state":"closed","reason":"timeout"},'
    '"tcp":{"tcp_flags_ts":"02","tcp_flags_tc":"14"}}'
)
EVE_ALERT = (
    '{"timestamp":"2026-03-11T20:35:12.0+0000","event_type":"alert","src_ip":"10.0.0.5","src_port":1,'
    '"dest_ip":"10.0.0.9","dest_port":22,"proto":"TCP","alert":{"signature":"ET SCAN","signature_id":2003068}}'
)


def test_suricata_eve_flow_and_alert(tmp_path: Path) -> None:
    path = tmp_path / "eve.json"
    dns = '{"timestamp":"2026-03-11T20:35:12.0+0000","event_type":"dns","src_ip":"10.0.0.5","dest_ip":"1.1.1.1"}'
    path.write_text("\n".join([EVE_FLOW, EVE_ALERT, dns, EVE_FLOW[:90]]) + "\n")
    assert formats.sniff(path).name == "suricata"
    events, report = _read(path)
    assert [e.line for e in report.errors] == [4]
    flow, alert = events
    assert (
        _get(flow, "event.action"),
        _get(flow, "event.reason"),
        _get(flow, "event.outcome"),
    ) == ("connection_attempted", "refused", "failure")
    assert _get(flow, "suricata.eve.flow_id") == 1
    assert (_get(alert, "event.kind"), _get(alert, "event.action")) == ("alert", "network_flow")
    assert _get(alert, "rule.name") == "ET SCAN"


SYSMON = (
    'Mar 11 20:35:11 web1 sysmon: <Event><System><Provider Name="Linux-Sysmon"/><EventID>3</EventID>'
    '<Computer>web1</Computer></System><EventData><Data Name="UtcTime">2026-03-11 20:35:11.123</Data>'
    '<Data Name="ProcessGuid">{8a2f1c4e-0000-0000-0000-000000000001}</Data><Data Name="ProcessId">4321</Data>'
    '<Data Name="Image">/usr/bin/nc</Data><Data Name="User">alice</Data><Data Name="Protocol">tcp</Data>'
    '<Data Name="Initiated">true</Data><Data Name="SourceIp">10.0.0.5</Data><Data Name="SourcePort">40000</Data>'
    '<Data Name="DestinationIp">10.0.0.9</Data><Data Name="DestinationPort">22</Data></EventData></Event>'
)


def test_sysmon_linux_event_3(tmp_path: Path) -> None:
    path = tmp_path / "syslog"
    other = SYSMON.replace("<EventID>3</EventID>", "<EventID>1</EventID>")
    path.write_text("\n".join([SYSMON, other, SYSMON[:200]]) + "\n")
    assert formats.sniff(path).name == "sysmon"
    events, report = _read(path)
    assert [e.line for e in report.errors] == [3]
    (event,) = events
    assert _get(event, "@timestamp") == "2026-03-11T20:35:11.123Z"
    assert _get(event, "process.executable") == "/usr/bin/nc" and _get(event, "process.pid") == 4321
    assert _get(event, "event.action") == "connection_attempted"
    assert _get(event, "network.direction") == "egress" and _get(event, "host.name") == "web1"


OSQUERY = (
    '{"name":"pack_socket_events","hostIdentifier":"web1","unixTime":1773261311,"columns":{"action":"connect",'
    '"family":"2","local_address":"10.0.0.5","local_port":"40000","path":"/usr/bin/nc","pid":"4321",'
    '"protocol":"6","remote_address":"10.0.0.9","remote_port":"22","status":"failed","time":"1773261311"},'
    '"action":"added"}'
)


def test_osquery_socket_events(tmp_path: Path) -> None:
    path = tmp_path / "osqueryd.results.log"
    unix = OSQUERY.replace('"family":"2"', '"family":"1"')
    path.write_text("\n".join([OSQUERY, unix, OSQUERY[:60]]) + "\n")
    assert formats.sniff(path).name == "osquery"
    events, report = _read(path)
    assert [e.line for e in report.errors] == [3]
    (event,) = events
    assert (_get(event, "event.reason"), _get(event, "event.outcome")) == ("error", "failure")
    assert _get(event, "network.transport") == "tcp" and _get(event, "process.pid") == 4321


def _zeek_query(dataset: Dataset) -> list[tuple[object, ...]]:
    from datetime import UTC, datetime

    from reconwatch.esql.parser import parse
    from reconwatch.query import run_query

    query = parse(
        "FROM logs-zeek.connection-* | STATS n = COUNT(*), ports = COUNT_DISTINCT(destination.port)"
        " BY source.ip, event.outcome | SORT source.ip, event.outcome"
    )
    result = run_query(query, dataset, now=datetime(2024, 1, 1, tzinfo=UTC))
    return [tuple(row.values()) for row in result.as_dicts()]


def test_a_kept_input_is_converted_to_arrow_once_per_column_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replay's runs read the same columns of a kept input: the typed batches are reused,
    the answers stay the same, and an input too large to keep is converted per query."""
    import reconwatch.ingest.dataset as dataset_module

    path = tmp_path / "conn.log"
    path.write_text(ZEEK_HEADER + "\n".join(ZEEK_ROWS) + "\n")
    dataset = Dataset.from_files([path])
    first = _zeek_query(dataset)
    assert first and sum(row[0] for row in first) == len(ZEEK_ROWS)  # type: ignore[misc]
    cached = dict(dataset._converted)
    assert len(cached) == 1

    def again(*_args: object) -> None:
        pytest.fail("the kept input was converted again")

    monkeypatch.setattr(Dataset, "_batch", again)
    assert _zeek_query(dataset) == first
    monkeypatch.undo()

    monkeypatch.setattr(dataset_module, "KEEP_EVENTS", 2)
    big = Dataset.from_files([path])
    assert _zeek_query(big) == first
    assert not big._converted  # not kept: nothing held between queries
    assert _zeek_query(big) == first


def test_every_line_format_is_followed_by_the_service_into_the_index_its_rules_read(
    tmp_path: Path,
) -> None:
    """`serve --follow`: each line format of the registry decoded as it is tailed; network-level
    events land in their data stream (what the network-level rules read), host events with a
    process where the process-level rules read; the cut last line of each is not stored."""
    from datetime import UTC, datetime

    from conftest import Clock
    from reconwatch.service.follow import FOLLOW_INDEX, FileFeed
    from reconwatch.service.writer import Writer
    from reconwatch.store import Store

    files = {
        "conn.log": (ZEEK_HEADER + "\n".join(ZEEK_ROWS[:2]), "logs-zeek.connection-default", 2),
        "kern.log": (PSAD, "logs-iptables.log-default", 1),
        "eve.json": (EVE_FLOW, "logs-suricata.eve-default", 1),
        "syslog": (SYSMON, FOLLOW_INDEX, 1),
        "osqueryd.results.log": (OSQUERY, FOLLOW_INDEX, 1),
    }
    paths = []
    for name, (text, _index, _count) in files.items():
        path = tmp_path / name
        path.write_text(text + "\n")
        paths.append(path)
    store = Store(tmp_path / "data", Clock(datetime(2026, 3, 12, tzinfo=UTC)))
    writer = Writer(store, 4)
    feed = FileFeed(store, writer, paths)
    try:
        assert feed.poll() == sum(count for _t, _i, count in files.values())
        for path in paths:  # a line cut in the middle, then the rest of the file grows
            with path.open("a") as out:
                out.write(files[path.name][0][:40] + "\n")
        feed.poll()
        assert feed.errors == []
        stored: dict[str, int] = {}
        for index in store.indices():
            stored[index] = sum(1 for _ in store.documents([index], None, None))
        expected: dict[str, int] = {}
        for _text, index, count in files.values():
            expected[index] = expected.get(index, 0) + count
        assert stored == expected
        (zeek,) = [
            doc
            for _index, _id, doc in store.documents(["logs-zeek.connection-default"], None, None)
            if _get(doc, "destination.port") == 22
        ]
        assert _get(zeek, "source.ip") == "10.0.0.5" and _get(zeek, "zeek.session_id") == "Ca1"
    finally:
        feed.stop()
        writer.close()
        store.close()
