"""The triage UI in a real browser (Debian's chromium through Playwright): a planted scan sent
through `_bulk` appears live in the queue, is opened by keyboard, shows its evidence pictures,
keeps a ticked guide step, gets an exception from the alert, and the next run is quiet for that
executable. Screenshots of every page are written as artifacts; every control has a label."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from conftest import Clock, iso_ms
from reconwatch.service.app import Limits, Service, build_app, open_service
from reconwatch.service.realtime import RealTime
from reconwatch.service.rules import load_rules
from reconwatch.service.scheduler import Scheduler
from reconwatch.service.server import running
from reconwatch.store import Store

CHROMIUM = "/usr/bin/chromium"
playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"{CHROMIUM} is absent: install Debian's chromium (scripts/install-system-deps.sh)",
    ),
]
T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
SUBNET = "860f2a03-a1cf-48d6-a674-c6d62ae608a1"
NET = "logs-endpoint.events.network-default"
SCANNER = "/tmp/.x/scan"
# Where the screenshots go: $RECONWATCH_UI_ARTIFACTS, else the test's temporary directory.
ARTIFACTS_ENV = "RECONWATCH_UI_ARTIFACTS"
# Playwright waits up to this long for the page to reach a state (not a timing assertion).
WAIT_MS = 30_000
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Every control with its accessible name from a <label>, aria-label or its own text.
UNLABELLED_JS = """() => Array.from(document.querySelectorAll('input, select, textarea, button'))
  .filter((el) => el.type !== 'hidden')
  .filter((el) => !((el.labels && el.labels.length) || el.getAttribute('aria-label')
     || (el.tagName === 'BUTTON' && el.textContent.trim())))
  .map((el) => el.outerHTML.slice(0, 120))"""


def bulk_scan(url: str, at: datetime, exe: str, agent: str, net: int) -> None:
    """260 connection attempts to distinct addresses within 200 s, through `_bulk`."""
    lines = []
    for i in range(260):
        t = iso_ms(at + timedelta(seconds=i % 200))
        source = {
            "@timestamp": t,
            "event": {"type": ["start"], "action": "connection_attempted", "ingested": t},
            "host": {"os": {"type": "linux"}, "name": "web-1"},
            "agent": {"id": agent},
            "process": {"executable": exe, "pid": 4242},
            "destination": {"ip": f"10.{net}.{i // 250}.{i % 250 + 1}", "port": 22 + i % 3},
        }
        lines += [b'{"create": {}}', msgspec.json.encode(source)]
    answer = httpx.post(
        f"{url}/{NET}/_bulk",
        content=b"\n".join(lines) + b"\n",
        headers={"Content-Type": "application/x-ndjson"},
        timeout=60,
    )
    assert answer.status_code == 200 and answer.json()["errors"] is False


def run_rule(url: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    body = {"start": iso_ms(start), "end": iso_ms(end)}
    answer = httpx.post(f"{url}/api/rules/{SUBNET}/_run", json=body, timeout=120)
    assert answer.status_code == 200, answer.text
    alerts: list[dict[str, Any]] = answer.json()["alerts"]
    return alerts


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, str]]:
    clock = Clock(T0 + timedelta(days=1))
    store = Store(tmp_path_factory.mktemp("store"), clock)
    rules = load_rules([]).rules
    scheduler = Scheduler(store, list(rules.values()), clock)
    realtime = RealTime(store, rules)
    realtime.enable(SUBNET)
    service = open_service(store, Limits(), scheduler=scheduler, realtime=realtime)
    realtime.start()  # the schedule is driven by the tests (manual runs), not a thread
    with running(build_app(service)) as url:
        yield service, url
    service.close()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get(ARTIFACTS_ENV)
    path = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def page(served: tuple[Service, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One chromium for the module, on a fresh profile; closed before the server stops."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    with playwright_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            args=LAUNCH_ARGS,
            viewport={"width": 1280, "height": 860},
        )
        context.set_default_timeout(WAIT_MS)
        tab = context.new_page()
        problems: list[str] = []
        tab.on("pageerror", lambda exc: problems.append(str(exc)))
        tab.problems = problems
        yield tab
        context.close()
    shutil.rmtree(profile, ignore_errors=True)


def _labelled(page: Any) -> None:
    assert page.evaluate(UNLABELLED_JS) == []


def test_scan_to_exception_end_to_end(
    served: tuple[Service, str], page: Any, artifacts: Path
) -> None:
    service, url = served
    page.goto(url + "/")
    page.wait_for_selector("#rows")
    assert page.locator("tr[data-id]").count() == 0
    _labelled(page)
    # The planted scan through _bulk: the rule in real time alerts, the queue shows it without
    # a reload.
    bulk_scan(url, T0 + timedelta(hours=1, minutes=5), SCANNER, "agent-7", 3)
    row = page.locator("tr[data-id]")
    row.wait_for()
    alert_id = row.get_attribute("data-id")
    alert = httpx.get(f"{url}/api/alerts/{alert_id}").json()
    assert alert["process.executable"] == SCANNER
    assert alert["reconwatch.detection.path"] == "stream"
    # The scheduled (here: manual) run of the window finds the group and updates that alert.
    assert run_rule(url, T0, T0 + timedelta(hours=2)) == []
    assert "new alert" in page.locator("#live").inner_text()
    assert page.locator("#shown").inner_text() == "Alerts 1-1 of 1, newest first"
    page.screenshot(path=str(artifacts / "queue.png"))
    # Keyboard only: j focuses the first alert, Enter opens it.
    page.keyboard.press("j")
    assert page.evaluate("document.activeElement.dataset.id") == alert_id
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/alerts/{alert_id}")
    # The evidence pictures: the /24 maps, attempts per minute with the crossing, ports.
    maps = page.locator("svg.addrmap")
    assert maps.count() == 2
    assert maps.first.get_attribute("aria-label") == (
        "10.3.0.0/24: 250 of 256 addresses probed (internal)"
    )
    # The run refreshed the stream's evidence (251 addresses at firing) with the window's: all
    # 260 addresses, the ports the subnet rule does not count, and the stored crossing point
    # (the 251st distinct address, second 190 of the scan), drawn with the page.
    assert page.locator("svg.addrmap rect.hit").count() == 260
    assert page.locator("svg.chart line.crossing").count() == 1
    assert "2026-03-01T01:08:10.000Z" in page.locator("#timeline").inner_text()
    assert page.locator("#h-ports").inner_text() == "Destination ports (3 distinct)"
    assert page.locator("#console-link").count() == 1
    _labelled(page)
    page.screenshot(path=str(artifacts / "alert.png"), full_page=True)
    page.locator("#h-ev").scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "alert-evidence.png"))
    # A guide step ticked is saved with the alert.
    page.locator("#step-0").check()
    page.wait_for_function("document.querySelector('#live').textContent.includes('saved')")
    page.reload()
    assert page.locator("#step-0").is_checked()
    assert page.locator("#guide-progress").inner_text() == "1 of 5 steps done"
    page.locator("#step-4").scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "alert-guide.png"))
    # The exception from the alert, pre-filled with its executable and agent.
    assert page.locator("#ex-value-0").input_value() == SCANNER
    assert page.locator("#ex-value-1").input_value() == "agent-7"
    page.locator("#exception-form button[type=submit]").click()
    page.wait_for_function(
        "document.querySelector('#ex-result').textContent.startsWith('Exception added')"
    )
    assert "1 alert(s) closed" in page.locator("#ex-result").inner_text()
    # The next run: the same executable scans again and is not alerted on; another one is.
    bulk_scan(url, T0 + timedelta(hours=3, minutes=5), SCANNER, "agent-7", 5)
    bulk_scan(url, T0 + timedelta(hours=3, minutes=5), "/usr/bin/other", "agent-7", 6)
    run_rule(url, T0 + timedelta(hours=3), T0 + timedelta(hours=4))
    stored = httpx.get(f"{url}/api/alerts", params={"size": 100}).json()["alerts"]
    assert sorted(a["process.executable"] for a in stored) == sorted(["/usr/bin/other", SCANNER])
    assert service.store.get_alert(alert_id)["kibana.alert.workflow_status"] == "closed"  # type: ignore[index]
    assert page.problems == []


def test_queue_bulk_actions_by_keyboard(served: tuple[Service, str], page: Any) -> None:
    _, url = served
    page.goto(url + "/?status=open")
    page.wait_for_selector("tr[data-id]")
    first = page.locator("tr[data-id]").first.get_attribute("data-id")
    page.keyboard.press("j")
    page.keyboard.press("x")
    assert page.locator("tr[data-id] input.pick:checked").count() == 1
    page.keyboard.press("a")
    page.wait_for_function("document.querySelector('#live').textContent.includes('acknowledged')")
    status = httpx.get(f"{url}/api/alerts/{first}").json()
    assert status["kibana.alert.workflow_status"] == "acknowledged"
    assert status["kibana.alert.workflow_user"] == "analyst"
    # Another tab (here the API) reopens it: no alert is new, the open queue shows it again live.
    page.wait_for_selector(f'tr[data-id="{first}"]', state="detached")
    body = {"ids": [first], "status": "open", "user": "other-tab"}
    assert httpx.post(f"{url}/api/alerts/_status", json=body).status_code == 200
    page.wait_for_selector(f'tr[data-id="{first}"]')
    # The alert's own page follows a status set elsewhere too.
    page.goto(f"{url}/alerts/{first}")
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('open')")
    body = {"ids": [first], "status": "closed", "user": "other-tab"}
    assert httpx.post(f"{url}/api/alerts/_status", json=body).status_code == 200
    page.wait_for_function(
        "document.querySelector('#status').textContent.startsWith('closed (by other-tab')"
    )


def test_other_pages_render_labelled(
    served: tuple[Service, str], page: Any, artifacts: Path
) -> None:
    _, url = served
    for path, name, heading in [
        ("/rules", "rules", "Rules"),
        (
            "/query?q=FROM%20logs-*%20%7C%20STATS%20n%20%3D%20COUNT(*)%20BY%20process.executable",
            "query",
            "Query console",
        ),
        ("/query?q=FROM%20logs-*%20%7C%20WHERE%20x%20%3D%3D", "query-error", "Query console"),
        ("/exceptions", "exceptions", "Exception lists"),
        (f"/exceptions/{SUBNET}-default", "exception-list", "Exceptions for"),
        ("/alerts/no-such-alert", "not-found", "Not found"),
    ]:
        page.goto(url + path)
        assert page.locator("h1").inner_text().startswith(heading), path
        _labelled(page)
        page.screenshot(path=str(artifacts / f"{name}.png"))
    page.goto(url + "/query?q=FROM%20logs-*%20%7C%20WHERE%20x%20%3D%3D")
    assert page.locator("pre.caret").inner_text().endswith("^")
    # Rules: switch real time off from the page; the API lists it.
    page.goto(url + "/rules")
    box = page.locator(f'[data-rule="{SUBNET}"] input[data-setting="realtime"]')
    box.uncheck()
    page.wait_for_function("document.querySelector('#live').textContent.includes('realtime off')")
    rules = {r["rule_id"]: r for r in httpx.get(f"{url}/api/rules").json()["rules"]}
    assert rules[SUBNET]["realtime"] is False
    assert page.problems == []


KIBANA_EXPORT = (
    '{"list_id": "scanners", "name": "Approved scanners", "description": "", '
    '"type": "detection", "namespace_type": "single"}\n'
    '{"item_id": "nessus", "list_id": "scanners", "name": "nessus", "type": "simple", '
    '"namespace_type": "single", "entries": [{"field": "process.executable", '
    '"operator": "included", "type": "match", "value": "/opt/nessus/sbin/nessusd"}]}\n'
    '{"exported_exception_list_count": 1, "exported_exception_list_item_count": 1}\n'
)


def test_exceptions_import_edit_and_run_now_from_the_pages(
    served: tuple[Service, str], page: Any, tmp_path: Path
) -> None:
    _, url = served
    export = tmp_path / "export.ndjson"
    export.write_text(KIBANA_EXPORT, "utf-8")
    page.goto(url + "/exceptions")
    page.locator("#import-file").set_input_files(str(export))
    page.locator("#import-rule").select_option(SUBNET)
    page.locator("#import-form button[type=submit]").click()
    page.wait_for_function(
        "document.querySelector('#import-result').textContent.includes('success')"
    )
    assert '"success_count": 2' in page.locator("#import-result").inner_text()
    page.goto(url + "/exceptions/scanners")
    page.locator("#n-nessus").fill("nessus scanner")
    page.locator('form[data-item="nessus"] button[type=submit]').click()
    page.wait_for_load_state()
    page.wait_for_function("document.querySelector('h3').textContent === 'nessus scanner'")
    item = httpx.get(f"{url}/api/exceptions/scanners/items/nessus").json()
    assert item["name"] == "nessus scanner" and item["updated_by"] == "analyst"
    rules = {r["rule_id"]: r for r in httpx.get(f"{url}/api/rules").json()["rules"]}
    assert "scanners" in rules[SUBNET]["exceptions_list"]
    # Run now over a range from the rules page.
    page.goto(url + "/rules")
    form = page.locator(f'form.run-now[data-rule="{SUBNET}"]')
    form.locator("input[name=start]").fill(iso_ms(T0 + timedelta(hours=5)))
    form.locator("input[name=end]").fill(iso_ms(T0 + timedelta(hours=6)))
    form.locator("button[type=submit]").click()
    page.wait_for_function(
        f"document.querySelector('form.run-now[data-rule=\"{SUBNET}\"] .run-result')"
        ".textContent.includes('run(s)')"
    )
    assert form.locator(".run-result").inner_text() == "1 run(s), 0 new alert(s)."
    assert page.problems == []
