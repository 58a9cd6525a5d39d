"""The triage UI's pages over HTTP (no browser): queue paging and filters over 100,000 alerts,
alert page, 404 page, console errors with the caret, escaping, sign-in with the API key."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import msgspec
import pyarrow as pa
import pytest

from conftest import Clock, iso_ms
from reconwatch.service.app import Limits, Service, build_app, open_service
from reconwatch.service.rules import load_rules
from reconwatch.service.scheduler import Scheduler
from reconwatch.service.server import running
from reconwatch.service.ui import markdown, pages, svg
from reconwatch.service.ui.context import stored_crossing
from reconwatch.store import NewEvent, Store

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
SUBNET = "860f2a03-a1cf-48d6-a674-c6d62ae608a1"
NET = "logs-endpoint.events.network-default"
HTML = {"Accept": "text/html,application/xhtml+xml"}
MANY = 100_000


def scan(at: datetime, exe: str) -> list[NewEvent]:
    out = []
    for i in range(260):
        t = iso_ms(at + timedelta(seconds=i % 200))
        source = {
            "@timestamp": t,
            "event": {"type": ["start"], "action": "connection_attempted", "ingested": t},
            "host": {"os": {"type": "linux"}, "name": "web-1"},
            "agent": {"id": "agent-1"},
            "process": {"executable": exe},
            "destination": {"ip": f"10.3.{i // 250}.{i % 250 + 1}", "port": 22 + i % 2},
        }
        out.append(NewEvent("create", NET, None, source))
    return out


def _service(path: Path, api_key: str | None = None) -> tuple[Service, Clock]:
    clock = Clock(T0 + timedelta(days=1))
    store = Store(path, clock)
    scheduler = Scheduler(store, list(load_rules([]).rules.values()), clock)
    return open_service(store, Limits(), api_key, scheduler=scheduler), clock


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Service, str]]:
    service, _ = _service(tmp_path)
    with running(build_app(service)) as url:
        yield service, url
    service.close()


def _many_alerts(service: Service, count: int) -> None:
    """`count` small alerts straight into the table (as a run stores them), one per second."""
    docs, created = [], []
    for i in range(count):
        at = T0 + timedelta(seconds=i)
        docs.append(
            msgspec.json.encode(
                {
                    "@timestamp": iso_ms(at),
                    "kibana.alert.uuid": f"a{i:06d}",
                    "kibana.alert.rule.name": "Many",
                    "kibana.alert.severity": "high" if i % 10 == 0 else "low",
                    "host.name": f"h{i % 100}",
                    "process.executable": f"/bin/x{i % 7}",
                    "kibana.alert.reason": f"<script>alert({i})</script>",
                }
            ).decode()
        )
        created.append(at.replace(tzinfo=None))
    table = pa.table(
        {
            "id": [f"a{i:06d}" for i in range(count)],
            "rule_id": ["many"] * count,
            "created": pa.array(created, pa.timestamp("us")),
            "status": ["open" if i % 3 else "closed" for i in range(count)],
            "document": docs,
            "severity": ["high" if i % 10 == 0 else "low" for i in range(count)],
            "host": [f"h{i % 100}" for i in range(count)],
            "executable": [f"/bin/x{i % 7}" for i in range(count)],
            "rule_name": ["Many"] * count,
        }
    )
    cur = service.store.cursor()
    cur.register("t", table)
    cur.execute(
        "INSERT INTO alerts (id, rule_id, created, status, document, severity, host, executable,"
        " rule_name) SELECT * FROM t"
    )
    cur.close()


def _ids(page: str) -> list[str]:
    return re.findall(r'<tr tabindex="0" data-id="([^"]+)"', page)


@pytest.mark.slow
def test_queue_pages_and_filters_100k_alerts(served: tuple[Service, str]) -> None:
    service, url = served
    _many_alerts(service, MANY)
    first = httpx.get(f"{url}/", headers=HTML, timeout=60)
    assert first.status_code == 200 and first.headers["content-type"].startswith("text/html")
    ids = _ids(first.text)
    assert ids == [f"a{i:06d}" for i in range(MANY - 1, MANY - 51, -1)]  # newest first, 50
    assert 'data-status="open">66666<' in first.text
    assert 'data-status="closed">33334<' in first.text
    # Every value is escaped: the reason's markup is text.
    assert "<script>alert(" not in first.text and "&lt;script&gt;alert(" in first.text
    older = httpx.get(f"{url}/?from=99950", headers=HTML, timeout=60).text
    assert _ids(older) == [f"a{i:06d}" for i in range(49, -1, -1)]
    assert 'rel="prev"' in older and 'rel="next"' not in older
    # A page far past the end is empty and its "Newer" leads to the last page, not one back.
    beyond = httpx.get(f"{url}/?from=1000000000", headers=HTML, timeout=60).text
    assert _ids(beyond) == [] and 'rel="prev" href="?from=99950"' in beyond
    query = "?status=open&severity=high&host=h10&executable=/bin/x3"
    picked = _ids(httpx.get(f"{url}/{query}", headers=HTML, timeout=60).text)
    expected = [
        f"a{i:06d}"
        for i in range(MANY - 1, -1, -1)
        if i % 3 and i % 10 == 0 and i % 100 == 10 and i % 7 == 3
    ][:50]
    assert picked == expected and picked
    since = iso_ms(T0 + timedelta(seconds=MANY - 10))
    assert len(_ids(httpx.get(f"{url}/?since={since}", headers=HTML).text)) == 10
    bad = httpx.get(f"{url}/?status=lost", headers=HTML)
    assert bad.status_code == 200 and "[status] must be one of" in bad.text
    fragment = httpx.get(f"{url}/ui/queue?status=closed", timeout=60).json()
    assert fragment["total"] == 33334 and "data-id=" in fragment["rows"]


def test_root_is_the_es_answer_for_clients_and_the_queue_for_browsers(
    served: tuple[Service, str],
) -> None:
    _, url = served
    assert httpx.get(f"{url}/").json()["tagline"] == "You Know, for Search"
    assert "<h1>Alerts</h1>" in httpx.get(f"{url}/", headers=HTML).text


@pytest.mark.slow
def test_alert_page_evidence_guide_report_and_404(served: tuple[Service, str]) -> None:
    service, url = served
    service.store.write(scan(T0 + timedelta(hours=1, minutes=5), "/tmp/a"))
    service.store.write(scan(T0 + timedelta(hours=1, minutes=6), "/tmp/b"))  # not in the group
    body = {"start": iso_ms(T0), "end": iso_ms(T0 + timedelta(hours=2))}
    created = httpx.post(f"{url}/api/rules/{SUBNET}/_run", json=body, timeout=60).json()["alerts"]
    [alert] = [a for a in created if a["process.executable"] == "/tmp/a"]
    aid = alert["kibana.alert.uuid"]
    page = httpx.get(f"{url}/alerts/{aid}", headers=HTML, timeout=60).text
    # The /24 maps: 250 and 10 addresses probed of 256.
    assert "10.3.0.0/24: 250 of 256 addresses probed (internal)" in page
    assert "10.3.1.0/24: 10 of 256 addresses probed (internal)" in page
    # The crossing point is stored with the alert's evidence, drawn with the page: the 251st
    # distinct address came at 01:08:10 (second 190 of the scan).
    assert "rule condition met at 2026-03-01T01:08:10.000Z" in page
    assert "data-crossing-url" not in page
    assert "top destination ports (2 distinct)" in page
    assert 'href="https://attack.mitre.org/techniques/T1046/"' in page
    # Only the guide's investigation steps are a checklist; the false-positive, response and
    # setup lists are text.
    assert page.count('type="checkbox" data-step=') == 5
    assert "<li>Isolate the compromised host immediately" in page
    assert "High-volume legitimate network monitoring tools" in page  # false-positive advice
    # Host context: the host's activity around the alert and its executables' first sighting.
    activity = re.search(r"network activity of the host.*?</table>", page, re.S)
    assert activity is not None
    assert "<td>/tmp/a</td><td>connection_attempted</td><td>260</td><td>260</td>" in activity[0]
    assert "<td>/tmp/a</td><td>2026-03-01T01:05:00.000Z</td><td>260</td>" in page
    console = re.search(r'id="console-link" href="/query\?q=([^"]+)"', page)
    assert console is not None
    link = console[1].replace("&amp;", "&")
    events = httpx.get(f"{url}/query?q={link}", headers=HTML, timeout=60).text
    assert "260 rows" in events
    report = httpx.get(f"{url}/alerts/{aid}/report.md").text
    assert (
        report.startswith("# Potential Subnet Scanning")
        and "Condition first met: 2026-03-01T01:08:10.000Z" in report
        and "| process.executable | /tmp/a |" in report
    )
    assert "<svg" in httpx.get(f"{url}/alerts/{aid}/report.html").text
    missing = httpx.get(f"{url}/alerts/nope", headers=HTML)
    assert missing.status_code == 404 and "There is no alert with id nope" in missing.text
    assert httpx.get(f"{url}/no/such/page", headers=HTML).status_code == 404


def test_console_shows_the_error_with_its_caret(served: tuple[Service, str]) -> None:
    _, url = served
    page = httpx.get(f"{url}/query", params={"q": "FROM logs-* | WHERE x =="}, headers=HTML)
    assert page.status_code == 400
    assert "line 1:25:" in page.text and "Traceback" not in page.text
    assert re.search(r"<pre class='caret'>FROM logs-\* \| WHERE x ==\n {24}\^</pre>", page.text)
    # Non-ASCII in an unterminated string: the caret under it, the text escaped.
    bad = httpx.get(f"{url}/query", params={"q": 'ROW a = "é<b>'}, headers=HTML)
    assert bad.status_code == 400 and "unterminated string" in bad.text and "<b>" not in bad.text
    # A query that runs with warnings shows them, as Elasticsearch's Warning header carries them.
    warned = httpx.get(
        f"{url}/query", params={"q": 'ROW a = 1 | EVAL b = TO_IP("x")'}, headers=HTML
    )
    assert warned.status_code == 200
    assert 'aria-label="Query warnings"' in warned.text and "x" in warned.text


def test_pages_need_the_key_beyond_loopback(tmp_path: Path) -> None:
    service, _ = _service(tmp_path, api_key="s3cret")
    with running(build_app(service)) as url:
        to_login = httpx.get(f"{url}/rules?x=1", headers=HTML)
        assert to_login.status_code == 303
        assert to_login.headers["location"] == "/login?next=%2Frules%3Fx%3D1"
        form = httpx.get(f"{url}{to_login.headers['location']}", headers=HTML).text
        assert '<input type="hidden" name="next" value="/rules?x=1">' in form
        assert httpx.get(f"{url}/api/rules").status_code == 401
        wrong = httpx.post(f"{url}/login", content="key=nope", headers=HTML)
        assert wrong.status_code == 401
        with httpx.Client(base_url=url, headers=HTML) as browser:
            signed = browser.post("/login", content="key=s3cret&next=%2Frules%3Fx%3D1")
            assert signed.status_code == 303 and signed.headers["location"] == "/rules?x=1"
            # Only this service's paths: another site is not where a sign-in sends anyone.
            for away in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
                elsewhere = browser.post("/login", content=f"key=s3cret&next={quote(away)}")
                assert elsewhere.headers["location"] == "/"
            assert "<h1>Rules</h1>" in browser.get("/rules").text
    service.close()


def test_a_key_that_is_not_ascii_signs_in_by_header_and_by_cookie(tmp_path: Path) -> None:
    service, _ = _service(tmp_path, api_key="clé-ß")
    with running(build_app(service)) as url:
        header = {"Authorization": "ApiKey clé-ß".encode()}
        assert httpx.get(f"{url}/api/rules", headers=header).status_code == 200
        with httpx.Client(base_url=url, headers=HTML) as browser:
            assert browser.post("/login", content="key=cl%C3%A9-%C3%9F").status_code == 303
            assert "<h1>Rules</h1>" in browser.get("/rules").text
    service.close()


def test_only_the_investigation_section_is_a_checklist() -> None:
    note = (
        "## Triage and analysis\n### Possible investigation steps\n- one\n- two\n  more\n"
        "### False positive analysis\n- fp\n### Response and remediation\n- isolate\n"
    )
    guide = markdown.render(note)
    assert guide.steps == ("one", "two")
    assert guide.html.count('type="checkbox"') == 2
    assert "<li>fp</li>" in guide.html and "<li>isolate</li>" in guide.html
    assert 'id="step-1"> two more</label>' in guide.html
    # A guide without such a heading is all steps.
    assert markdown.render("- a\n- b").steps == ("a", "b")


def test_markdown_escapes_everything_and_lists_steps() -> None:
    guide = markdown.render(
        "## Steps\n- check <img src=x onerror=alert(1)> `a<b`\n- see [docs](https://e.x/a)"
        " and [bad](javascript:alert(1))\n\n<script>x</script> **bold**"
    )
    assert guide.steps == (
        "check <img src=x onerror=alert(1)> `a<b`",
        "see [docs](https://e.x/a) and [bad](javascript:alert(1))",
    )
    assert "<img" not in guide.html and "<script>" not in guide.html
    assert "&lt;img src=x onerror=alert(1)&gt;" in guide.html
    assert "<code>a&lt;b</code>" in guide.html
    assert '<a href="https://e.x/a" rel="noreferrer">docs</a>' in guide.html
    assert "javascript:" in guide.html and 'href="javascript' not in guide.html
    assert "<strong>bold</strong>" in guide.html


def test_address_map_marks_the_probed_addresses() -> None:
    bits = (1 << 0) | (1 << 17) | (1 << 255)
    picture = svg.address_map("10.0.0.0/24", f"{bits:064x}", True)
    assert picture.count('class="hit"') == 3 and picture.count('class="miss"') == 253
    assert 'class="hit" x="9" y="9"' in picture  # .17: row 1, column 1


def test_ipv6_destinations_are_grouped_by_64() -> None:
    alert = {
        "kibana.alert.uuid": "x",
        "reconwatch.evidence": {
            "available": True,
            "destination": {
                "distinct_ips": 3,
                "blocks": [
                    {"cidr": "2001:db8:0:1::/64", "distinct_ips": 2, "events": 5},
                    {"cidr": "203.0.113.0/24", "distinct_ips": 1, "events": 1},
                ],
                "probed": {"203.0.113.0/24": f"{1 << 7:064x}"},
                "blocks_total": 2,
            },
        },
    }
    html = pages.evidence_html(alert, stored_crossing(alert), None)
    assert "<h4>IPv6 by /64</h4>" in html
    assert "<td>2001:db8:0:1::/64</td><td>2</td><td>5</td>" in html
    assert "<h4>External blocks</h4>" in html and "<h4>Internal blocks</h4>" not in html
    assert "203.0.113.0/24: 1 of 256 addresses probed (external)" in html


def test_the_live_stream_pushes_a_status_change_not_only_a_new_alert(
    served: tuple[Service, str],
) -> None:
    """Another tab (or the API) acknowledging an alert changes no count: the stream's state
    changes all the same, and the queue page carries the state it was drawn with."""
    service, url = served
    _many_alerts(service, 3)
    page = httpx.get(f"{url}/", headers=HTML).text
    drawn = re.search(r'data-state="([^"]+)"', page)
    assert drawn is not None
    with httpx.stream("GET", f"{url}/ui/stream", timeout=30) as response:
        lines = response.iter_lines()
        states = []
        for line in lines:
            if line.startswith("data: "):
                states.append(line[6:])
                if len(states) == 1:
                    assert states[0] == drawn[1]
                    body = {"ids": ["a000001"], "status": "acknowledged", "user": "ann"}
                    assert httpx.post(f"{url}/api/alerts/_status", json=body).status_code == 200
                else:
                    break
    assert states[1] != states[0]
    assert states[1].split("-")[0] == states[0].split("-")[0] == "3"  # no new alert


def test_a_real_time_alerts_report_lists_ports_without_counts() -> None:
    """The stream keeps which ports, not how often: the report lists them (it raised before)."""
    alert = {
        "kibana.alert.uuid": "x",
        "reconwatch.detection.path": "stream",
        "reconwatch.evidence": {
            "available": True,
            "destination_ports": {"distinct": 2, "top": [{"port": 22}, {"port": 80}]},
        },
    }
    crossing = stored_crossing(alert)
    assert crossing.at is None and "next scheduled run" in crossing.how
    report = pages.report_markdown(alert, crossing, None)
    assert "- Ports: 2 distinct; top 22, 80" in report
    assert "Destination ports (2 distinct)" in pages.report_html(alert, crossing, None)


def test_the_crossing_label_stays_inside_the_chart() -> None:
    minutes = [{"minute": "2026-03-01T01:00:00.000Z", "attempts": 3}]
    window = (datetime(2026, 3, 1, 0, 0, tzinfo=UTC), datetime(2026, 3, 1, 1, 1, tzinfo=UTC))
    late = svg.per_minute(minutes, window, datetime(2026, 3, 1, 1, 0, 30, tzinfo=UTC))
    early = svg.per_minute(minutes, window, datetime(2026, 3, 1, 0, 1, tzinfo=UTC))
    assert re.search(r'class="crossing-label" x="[\d.]+" text-anchor="end"', late)
    assert 'text-anchor="end" y="14">crossed' not in early


def test_ticks_under_an_older_numbering_do_not_count() -> None:
    note = "### Possible investigation steps\n- one\n- two\n### Response and remediation\n- r\n"
    state = {1: {"done": True, "by": "a", "at": "t"}, 12: {"done": True, "by": "a", "at": "t"}}
    html = pages.guide_html(note, state, "x")
    assert "1 of 2 steps done" in html and 'id="step-1" checked' in html


def test_an_items_entries_are_edited_as_written() -> None:
    """Non-ASCII values as they are (not \\u escapes), markup escaped."""
    entries = [{"field": "process.executable", "type": "match", "operator": "included"}]
    entries[0]["value"] = "/tmp/<b>/ścan"
    item = {"item_id": "i", "name": "n", "entries": entries, "expire_time": None}
    lst = {"list_id": "l", "name": "L", "type": "detection", "description": ""}
    html = pages.exception_list_page(lst, [item])
    assert "/tmp/&lt;b&gt;/ścan" in html and "\\u015b" not in html
