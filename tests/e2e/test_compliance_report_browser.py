"""The public HTML report in a real headless Chromium: Greek text renders, the directorate filter
narrows the rows, and screenshots are kept as test artifacts under .local/artifacts/.

The browser is Debian's `chromium` (deploy/chromium/install.sh, run by `make install`) driven by
Playwright's Python package through `executable_path`; Playwright's own browser download is never
used. The compliance API runs as the real `compliance-api` process over a compliance database whose
read model the real projector folded from generated units and certification events.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright

from shared.clock import SystemClock
from shared.devissuer import load_or_create
from tests.conftest import DatabaseFactory
from tests.integration.compliance.reminder_kit import (
    DIRECTORATE,
    OTHER_DIRECTORATE,
    ComplianceDb,
    certified,
    small_tree,
)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / ".local" / "artifacts"
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCHOOLS = ("0160075", "0160076", "0160077")  # ΓΥΜΝΑΣΙΑ of the Δ.Ε. directorate
PRIMARY = ("9160001", "9160002")  # ΔΗΜΟΤΙΚΑ of the Π.Ε. directorate
HEADING = "Μονάδες που δεν έχουν ολοκληρώσει την απογραφή"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} missing: run `make install`"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def api_url(
    fresh_database: DatabaseFactory, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """Start `compliance-api` over a folded read model; yield its base URL."""
    db = await ComplianceDb.create(fresh_database("report_browser"))
    # One school certifies just now: it leaves the not-completed report whatever the window.
    await db.fold(
        *small_tree(SCHOOLS, PRIMARY),
        certified(SCHOOLS[0], at=SystemClock().now() - timedelta(minutes=1)),
    )
    await db.close()
    tmp_path = tmp_path_factory.mktemp("compliance-api")
    issuer = load_or_create(tmp_path / "issuer")
    port = free_port()
    env = {
        **os.environ,
        "COMPLIANCE_DATABASE_URL": db.url,
        "COMPLIANCE_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "COMPLIANCE_PORT": str(port),
        "COMPLIANCE_AUTH_ISSUER": issuer.issuer,
        "COMPLIANCE_AUTH_AUDIENCE": issuer.audience,
        "COMPLIANCE_AUTH_JWKS_FILE": str(tmp_path / "issuer" / "jwks.json"),
        "OTEL_SDK_DISABLED": "true",
    }
    api = subprocess.Popen([str(ROOT / ".venv" / "bin" / "compliance-api")], env=env, cwd=ROOT)  # noqa: ASYNC220  (a long-lived child, polled)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            deadline = asyncio.get_running_loop().time() + 60
            while True:
                assert api.poll() is None, "compliance-api died"
                try:
                    if (await client.get("/reports/not-completed.json")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert asyncio.get_running_loop().time() < deadline, "compliance-api never served"
                await asyncio.sleep(0.2)
        yield base
    finally:
        api.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(api.wait, 30)
        finally:
            if api.poll() is None:
                api.kill()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


async def unit_rows(page: Page) -> list[dict[str, str]]:
    """Return the units table's rows as {column label: cell text}."""
    rows: list[dict[str, str]] = await page.eval_on_selector_all(
        "table.units tbody tr",
        """rows => rows.map(row => Object.fromEntries(
            [...row.querySelectorAll('td')].map(td => [td.dataset.label, td.innerText.trim()])))""",
    )
    return rows


async def save(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    await page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return path


async def test_report_renders_greek_and_the_directorate_filter_narrows_rows(
    api_url: str, browser: Browser
) -> None:
    page = await browser.new_page(locale="el-GR", viewport={"width": 1280, "height": 900})
    try:
        response = await page.goto(f"{api_url}/reports/not-completed.html")
        assert response is not None
        assert response.status == 200

        # Greek text, as the browser decoded and laid it out (not only as bytes on the wire).
        assert await page.title() == HEADING
        assert await page.inner_text("h1") == HEADING
        assert await page.evaluate("document.characterSet") == "UTF-8"
        assert await page.evaluate("document.documentElement.lang") == "el"
        heading_width = await page.eval_on_selector("h1", "h => h.getBoundingClientRect().width")
        assert heading_width > 200
        everything = await unit_rows(page)
        names = {row["Ονομασία"] for row in everything}
        assert "2ο ΓΥΜΝΑΣΙΟ ΑΓΡΙΝΙΟΥ" in names
        assert "1ο ΔΗΜΟΤΙΚΟ ΑΓΡΙΝΙΟΥ" in names
        assert "1ο ΓΥΜΝΑΣΙΟ ΑΓΡΙΝΙΟΥ" not in names  # it certified
        assert {row["Κωδικός"] for row in everything} == {*SCHOOLS[1:], *PRIMARY}
        await save(page, "compliance-report-not-completed.png")

        # Filter by directorate through the page's own form, as a visitor would.
        await page.select_option("select[name=directorate]", DIRECTORATE)
        async with page.expect_navigation():
            await page.click("form button")
        assert f"directorate={DIRECTORATE}" in page.url
        narrowed = await unit_rows(page)
        assert 0 < len(narrowed) < len(everything)
        assert {row["Κωδικός"] for row in narrowed} == set(SCHOOLS[1:])
        assert {row["Διεύθυνση"] for row in narrowed} == {"ΔΙΕΥΘΥΝΣΗ Δ.Ε. ΑΙΤΩΛΟΑΚΑΡΝΑΝΙΑΣ"}
        await save(page, "compliance-report-not-completed-directorate.png")

        # The other directorate: the complementary rows.
        await page.select_option("select[name=directorate]", OTHER_DIRECTORATE)
        async with page.expect_navigation():
            await page.click("form button")
        assert {row["Κωδικός"] for row in await unit_rows(page)} == set(PRIMARY)
    finally:
        await page.close()


WIDER_THAN_THE_SCREEN = """() => [...document.querySelectorAll(arguments_selector)]
    .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
    .map(e => `${e.tagName.toLowerCase()}.${e.className} right=${
        Math.round(e.getBoundingClientRect().right)}`)"""


async def wider_than_the_screen(page: Page, selector: str) -> list[str]:
    """Return the elements under `selector` that stick out of the viewport on the right."""
    found: list[str] = await page.evaluate(
        WIDER_THAN_THE_SCREEN.replace("arguments_selector", repr(selector))
    )
    return found


async def phone_page(browser: Browser, api_url: str) -> Page:
    page = await browser.new_page(
        locale="el-GR", viewport={"width": 390, "height": 844}, is_mobile=True
    )
    await page.goto(f"{api_url}/reports/not-completed.html")
    return page


async def test_report_list_is_readable_on_a_phone(api_url: str, browser: Browser) -> None:
    page = await phone_page(browser, api_url)
    try:
        assert await page.inner_text("h1") == HEADING
        await save(page, "compliance-report-not-completed-phone.png")
        # The list of units (one card per unit on a phone) and the filter form fit the screen.
        assert await wider_than_the_screen(page, "table.units *, form *, h1, nav") == []
        assert len(await unit_rows(page)) == len(SCHOOLS) - 1 + len(PRIMARY)
    finally:
        await page.close()


async def test_report_counts_fit_a_phone(api_url: str, browser: Browser) -> None:
    page = await phone_page(browser, api_url)
    try:
        assert await wider_than_the_screen(page, "body *") == []
    finally:
        await page.close()
