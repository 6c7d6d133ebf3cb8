"""The dashboard in a real browser: Debian's Chromium, driven by Playwright, against a real
``heatgrid serve`` on a loopback port with a populated SQLite database.

Chromium is launched from its path (``/usr/bin/chromium``, or ``$HEATGRID_CHROMIUM``): no
browser is downloaded. Without it the tests skip, unless ``HEATGRID_REQUIRE_SERVICES=1`` (CI).
Every test saves screenshots in its temporary directory; with ``HEATGRID_UPDATE_SCREENSHOTS=1``
the populated pages are also written to ``docs/images/`` for ``docs/dashboard.md``.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from heatgrid.coordinator.accounts import create_api_key
from heatgrid.coordinator.db import make_engine, make_session_factory, upgrade

from .dashboard_fleet import Fleet, heartbeat, populate
from .serve_process import ServeProcess

pytestmark = pytest.mark.slow

_CHROMIUM = Path(os.environ.get("HEATGRID_CHROMIUM", "/usr/bin/chromium"))
_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
_DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
_DESKTOP = {"width": 1280, "height": 860}
_PHONE = {"width": 390, "height": 844}
_WAIT_MS = 30_000  # how long to wait for the page to show something: a bound, not a measurement


@dataclass
class Site:
    """A running coordinator with a populated fleet."""

    url: str
    fleet: Fleet
    client: httpx.Client


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """``heatgrid serve`` on a migrated SQLite database holding :func:`populate`'s fleet."""
    directory = tmp_path_factory.mktemp("dashboard")
    url = f"sqlite:///{directory / 'coordinator.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine)
    with make_session_factory(engine)() as session:
        operator_key = create_api_key(
            session, name="operator", role="operator", scopes=None, now_ts=time.time()
        ).token
    engine.dispose()
    server = ServeProcess(url, directory / "serve.log", ("--checkpoint-url", str(directory / "cp")))
    server.start()
    try:
        server.wait_ready()
        with httpx.Client(base_url=server.url, timeout=30.0) as client:
            fleet = populate(client, operator_key, time.time())
            yield Site(server.url, fleet, client)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, through Playwright."""
    if not _CHROMIUM.exists():
        if os.environ.get("HEATGRID_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{_CHROMIUM} is required here (HEATGRID_REQUIRE_SERVICES=1)")
        pytest.skip(f"{_CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(_CHROMIUM), args=_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where this test's screenshots go."""
    path = tmp_path / "screenshots"
    path.mkdir()
    return path


@pytest.fixture
def open_page(browser: Any, site: Site) -> Iterator[Callable[..., Any]]:
    """Open a page in a new browser context (its own cookies); all are closed after the test,
    so that no event stream keeps the server waiting when it stops."""
    contexts: list[Any] = []

    def open_one(viewport: dict[str, int] = _DESKTOP) -> Any:
        context = browser.new_context(base_url=site.url, viewport=viewport)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(_WAIT_MS)
        return page

    yield open_one
    for context in contexts:
        context.close()


def _log_in(page: Any, key: str) -> None:
    page.goto("/login")
    page.fill("#api_key", key)
    page.click("button[type=submit]")
    page.wait_for_selector("header nav")


def _shot(page: Any, shots: Path, name: str, *, for_docs: bool = False) -> None:
    path = shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if for_docs and os.environ.get("HEATGRID_UPDATE_SCREENSHOTS") == "1":
        _DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, _DOCS_IMAGES / path.name)


def _send_heartbeat(site: Site, name: str, **fields: Any) -> None:
    device_id = site.fleet.heaters[name][0]
    body = heartbeat(time.time(), samples=1)
    body["telemetry"][0].update(fields)
    answer = site.client.post(
        f"/v1/devices/{device_id}/heartbeat", json=body, headers=site.fleet.device_headers(name)
    )
    assert answer.status_code == 200, answer.text


def test_without_a_key_the_browser_gets_the_login_page_and_no_data(
    open_page: Callable[..., Any], site: Site, shots: Path
) -> None:
    page = open_page()
    for path in ("/", "/jobs", f"/heaters/{site.fleet.heaters['study'][0]}", "/ledger"):
        page.goto(path)
        assert page.url.startswith(f"{site.url}/login?next="), page.url
        assert page.locator("#api_key").is_visible()
        text = page.inner_text("body")
        assert "study" not in text
        assert "living room" not in text
    events = page.request.get("/events/fleet")
    assert events.status == 401
    _shot(page, shots, "login")


def test_a_wrong_key_gets_a_clear_message(
    open_page: Callable[..., Any], site: Site, shots: Path
) -> None:
    page = open_page()
    page.goto("/login")
    page.fill("#api_key", "hgk_0000000000000000_not-the-secret")
    page.click("button[type=submit]")
    message = page.locator("#login-message")
    assert message.inner_text() == "Login failed: the API key is not valid."
    page.fill("#api_key", "my password")
    page.click("button[type=submit]")
    assert "not an API key (hgk_…)" in page.locator("#login-message").inner_text()
    assert "living room" not in page.inner_text("body")
    _shot(page, shots, "wrong-key")


def test_log_in_with_the_keyboard_and_see_a_heater_update_live(
    open_page: Callable[..., Any], site: Site, shots: Path
) -> None:
    from playwright.sync_api import expect  # noqa: PLC0415

    page = open_page()
    page.goto("/")
    assert page.evaluate("document.activeElement.id") == "api_key"  # focus starts in the form
    page.keyboard.type(site.fleet.keys["alice"])
    page.keyboard.press("Enter")
    page.wait_for_url(f"{site.url}/")
    rows = page.locator("#fleet-rows tr")
    assert rows.count() == 2
    assert "living room" in rows.nth(0).inner_text()
    page.wait_for_selector("#live-state[data-state=open]")
    device_id = site.fleet.heaters["living room"][0]
    power = page.locator(f"#heater-{device_id} .power")
    assert power.inner_text() != "777 W"
    _send_heartbeat(site, "living room", power_w=777.0, room_temp_c=23.4)
    expect(power).to_have_text("777 W", timeout=_WAIT_MS)  # the page's CSP forbids eval
    assert "23.4 °C" in page.locator(f"#heater-{device_id} .room").inner_text()
    assert page.locator(f"#heater-{device_id} [data-label=Health]").inner_text() == "too hot"
    _shot(page, shots, "fleet-live")

    page.click(f"#heater-{device_id} a")  # the row was replaced by the live update
    page.wait_for_url(re.compile(r".*/heaters/"))
    page.wait_for_selector("#chart canvas")
    page.wait_for_selector("#live-state[data-state=open]")
    _send_heartbeat(site, "living room", power_w=555.0)
    expect(page.locator("#power")).to_have_text("555 W", timeout=_WAIT_MS)


def test_an_owner_does_not_see_another_owners_heater(
    open_page: Callable[..., Any], site: Site
) -> None:
    page = open_page()
    _log_in(page, site.fleet.keys["bob"])
    names = page.locator("#fleet-rows th a").all_inner_texts()
    assert names == ["attic office", "kitchen"]
    alices = site.fleet.heaters["living room"][0]
    answer = page.goto(f"/heaters/{alices}")
    assert answer.status == 404
    assert "No heater" in page.inner_text("main")
    assert "living room" not in page.inner_text("body")
    assert page.request.get(f"/events/heaters/{alices}").status == 404
    assert page.goto(f"/jobs/{site.fleet.job_id}").status == 404  # carol's job, not bob's


def test_open_a_job_with_its_tasks_heaters_and_checkpoints(
    open_page: Callable[..., Any], site: Site, shots: Path
) -> None:
    page = open_page()
    _log_in(page, site.fleet.keys["carol"])
    assert page.url == f"{site.url}/jobs"  # a submitter has no fleet: its jobs are its home
    page.click("text=digits-cnn")
    page.wait_for_url(f"{site.url}/jobs/{site.fleet.job_id}")
    tasks = page.locator("#tasks tbody tr")
    assert tasks.count() == 3
    states = [
        text.split()[0] for text in page.locator("#tasks [data-label=State]").all_inner_texts()
    ]
    assert sorted(states) == ["completed", "leased", "queued"]
    body = page.inner_text("main")
    assert "attic office" in body
    assert "study" in body
    assert page.locator("#job-progress").inner_text() == "42 %"  # (1 + 1/4) / 3
    _shot(page, shots, "job")


def test_a_stolen_cookie_without_the_csrf_token_changes_nothing(
    open_page: Callable[..., Any], site: Site
) -> None:
    page = open_page()
    _log_in(page, site.fleet.keys["alice"])
    refused = page.request.post("/logout", form={"csrf_token": "guessed"})
    assert refused.status == 403
    assert "nothing was changed" in refused.text()
    assert page.request.post("/logout", form={}).status == 403
    page.goto("/")
    assert page.locator("#fleet-rows tr").count() == 2  # still logged in
    for _ in range(10):  # Log out is reachable with the keyboard alone
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Log out":
            break
    page.keyboard.press("Enter")
    page.wait_for_url(f"{site.url}/login")
    cookies = page.context.cookies()
    assert [cookie["name"] for cookie in cookies if cookie["name"] == "heatgrid_session"] == []
    page.goto("/")
    assert page.url.startswith(f"{site.url}/login")


def test_screenshots_of_a_populated_dashboard(
    open_page: Callable[..., Any], site: Site, shots: Path
) -> None:
    """The pages docs/dashboard.md shows, at desktop and phone widths."""
    for label, viewport in (("desktop", _DESKTOP), ("phone", _PHONE)):
        page = open_page(viewport)
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(str(error)))  # noqa: B023
        page.on(
            "console",
            lambda message: problems.append(message.text) if message.type == "error" else None,  # noqa: B023
        )
        _log_in(page, site.fleet.keys["operator"])
        assert page.locator("#fleet-rows tr").count() == 4
        _shot(page, shots, f"fleet-{label}", for_docs=True)
        page.goto(f"/heaters/{site.fleet.heaters['study'][0]}")
        page.wait_for_selector("#chart canvas")
        _shot(page, shots, f"heater-{label}", for_docs=True)
        page.goto(f"/jobs/{site.fleet.job_id}")
        _shot(page, shots, f"job-{label}", for_docs=True)
        page.goto("/ledger")
        assert page.locator("text=owner:").count() >= 1
        _shot(page, shots, f"ledger-{label}", for_docs=True)
        assert problems == []  # no script error, nothing refused by the page's CSP
