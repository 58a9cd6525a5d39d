"""The service's network alert sinks, registered by URL scheme: webhook, syslog, Elasticsearch _bulk."""

from __future__ import annotations

import socket
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime

import msgspec

from reconwatch.alerts.sinks import Alerts, Formatter, register_sink
from reconwatch.errors import OutputError
from reconwatch.store.alerts import revision_of

TIMEOUT_SECONDS = 10.0
# Kibana's alerts index for the default space: a real Kibana shows what lands there.
DEFAULT_ALERT_INDEX = ".alerts-security.alerts-default"
# RFC 5424 severities by the alert's severity; facility local0 (16).
_FACILITY = 16
_SEVERITY = {"critical": 2, "high": 3, "medium": 4, "low": 5}
APP_NAME = "reconwatch"


def _fail(name: str, reason: object) -> OutputError:
    return OutputError(f"alert sink {name}: {reason}")


class WebhookSink:
    """POSTs each alert as a JSON object to an http(s) URL; any answer but 2xx is a failure."""

    def __init__(self, url: str, _formatter: Formatter | None = None) -> None:
        self.name = url
        self.url = url

    def write(self, alerts: Alerts) -> None:
        for alert in alerts:
            _post(self.name, self.url, msgspec.json.encode(alert), "application/json")

    def close(self) -> None:
        return None


def _post(name: str, url: str, body: bytes, content_type: str) -> bytes:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as answer:
            return bytes(answer.read())
    except urllib.error.HTTPError as exc:
        raise _fail(name, f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise _fail(name, reason) from None


class EsBulkSink:
    """Indexes alerts into an Elasticsearch-compatible `_bulk` endpoint (`es+http://host:port`
    or `es+https://...`, an optional `/index` path; default Kibana's alerts index) under their
    alert ids: a first revision with `create`, so delivering it twice stores it once (409
    counts as done); an update (a later run's revision) with `index`, which replaces it."""

    def __init__(self, target: str, _formatter: Formatter | None = None) -> None:
        self.name = target
        parts = urllib.parse.urlsplit(target.split("+", 1)[1])
        self.index = parts.path.strip("/") or DEFAULT_ALERT_INDEX
        self.url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, "/_bulk", "", ""))

    def write(self, alerts: Alerts) -> None:
        if not alerts:
            return
        lines: list[bytes] = []
        for alert in alerts:
            action = "index" if revision_of(alert) > 0 else "create"
            meta = {action: {"_index": self.index, "_id": alert.get("kibana.alert.uuid")}}
            lines.append(msgspec.json.encode(meta))
            lines.append(msgspec.json.encode(alert))
        body = b"\n".join(lines) + b"\n"
        answer = _post(self.name, self.url, body, "application/x-ndjson")
        try:
            doc = msgspec.json.decode(answer)
        except msgspec.DecodeError:
            raise _fail(self.name, "the _bulk answer is not JSON") from None
        for item in doc.get("items", []) if isinstance(doc, dict) else []:
            result = next(iter(item.values())) if isinstance(item, dict) and item else {}
            status = result.get("status", 0) if isinstance(result, dict) else 0
            if status not in (200, 201, 409):
                raise _fail(self.name, f"an alert was refused: {result.get('error')}")

    def close(self) -> None:
        return None


class SyslogSink:
    """RFC 5424 messages, one per alert, over UDP (`syslog://` or `syslog+udp://host:port`) or
    TCP (`syslog+tcp://`, octet-counted framing as RFC 6587); the message is the alert's JSON."""

    def __init__(self, target: str, _formatter: Formatter | None = None) -> None:
        self.name = target
        scheme, _, rest = target.partition("://")
        self.tcp = scheme == "syslog+tcp"
        parts = urllib.parse.urlsplit(f"//{rest}")
        if parts.hostname is None:
            msg = f"{target}: expected syslog+udp://HOST:PORT or syslog+tcp://HOST:PORT"
            raise _fail(target, msg)
        self.address = (parts.hostname, parts.port or 514)
        self.hostname = socket.gethostname()
        self._sock: socket.socket | None = None

    def message(self, alert: object) -> bytes:
        doc = alert if isinstance(alert, dict) else {}
        severity = _SEVERITY.get(str(doc.get("kibana.alert.severity", "")), 4)
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        msgid = "alert"
        head = f"<{_FACILITY * 8 + severity}>1 {stamp} {self.hostname} {APP_NAME} - {msgid} -"
        return head.encode() + b" " + msgspec.json.encode(alert)

    def write(self, alerts: Alerts) -> None:
        try:
            for alert in alerts:
                data = self.message(alert)
                if self.tcp:
                    self._connected().sendall(str(len(data)).encode() + b" " + data)
                else:
                    with socket.socket(_family(self.address[0]), socket.SOCK_DGRAM) as sock:
                        sock.sendto(data, self.address)
        except OSError as exc:
            self.close()
            raise _fail(self.name, exc) from None

    def _connected(self) -> socket.socket:
        if self._sock is None:
            self._sock = socket.create_connection(self.address, timeout=TIMEOUT_SECONDS)
        return self._sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


for _scheme in ("http", "https"):
    register_sink(_scheme, WebhookSink)
for _scheme in ("es+http", "es+https"):
    register_sink(_scheme, EsBulkSink)
for _scheme in ("syslog", "syslog+udp", "syslog+tcp"):
    register_sink(_scheme, SyslogSink)
