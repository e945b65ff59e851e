"""The console in real headless Chromium (Debian's ``chromium`` driven by Playwright's async
API): sign-in for each role, an operator watching a partner's outage and replaying a dead
letter, an IG lead's simulator and disclosure report, 403 on content for operators, layout at
1280x800 and 390x844, labelled controls and visible keyboard focus. Screenshots of every
page go to ``test-artifacts/console/``.

Skips locally when Chromium or Playwright is missing; fails under ``CI=true``.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from gateway.testing import RecordingReceiver
from tests.conftest import GatewayFactory, RunningGateway
from tests.console.support import PASSWORDS, artifacts, console_settings
from tests.servers import missing
from tests.support import (
    CSC,
    EXAMPLE,
    POLICE,
    SCHOOL,
    auth,
    body,
    eventually,
    message_for_child,
    valid_nhs_numbers,
)

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WIDE = {"width": 1280, "height": 800}
NARROW = {"width": 390, "height": 844}

UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
    .filter(e => !e.labels || e.labels.length === 0).map(e => e.name || e.id)"""
OVERFLOW = "() => document.documentElement.scrollWidth - window.innerWidth"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        missing("Playwright not installed: pip install 'playwright>=1.44' (never 'playwright install')")
    if shutil.which(str(CHROMIUM)) is None:
        missing("Chromium not installed: apt-get install -y chromium")
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield b
        finally:
            await b.close()


async def new_page(browser: Browser, viewport: dict[str, int] = WIDE) -> Page:
    context = await browser.new_context(viewport=viewport)  # type: ignore[arg-type]
    context.set_default_timeout(10_000)
    return await context.new_page()


async def shot(page: Page, name: str) -> None:
    await page.screenshot(path=str(artifacts() / f"{name}.png"), full_page=True)


async def sign_in(page: Page, base: str, user: str) -> None:
    await page.goto(base + "/console/sign-in")
    await page.get_by_label("User id").fill(user)
    await page.get_by_label("Password").fill(PASSWORDS[user])
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(re.compile(r".*/console/(ops|ig/agreements)$"))


async def check_accessible(page: Page, where: str) -> None:
    assert await page.evaluate(UNLABELLED) == [], f"{where}: form controls without a label"
    assert await page.evaluate(OVERFLOW) <= 1, f"{where}: the page scrolls sideways"


async def start(start_gateway: GatewayFactory, **kwargs: Any) -> RunningGateway:
    gw: RunningGateway = await start_gateway(settings_extra={"console": console_settings()}, **kwargs)
    return gw


async def send(gw: RunningGateway, child: str, seq: int = 0) -> str:
    doc = message_for_child(child, seq, recipients=[SCHOOL])
    async with gw.http.post(gw.url("/v1/messages"), data=body(doc), headers=auth(POLICE)) as r:
        assert r.status == 202, await r.text()
        return str((await r.json())["message_id"])


class TestSignIn:
    @pytest.mark.parametrize("viewport", [WIDE, NARROW], ids=["1280x800", "390x844"])
    async def test_each_role_signs_in_and_sees_its_pages(
        self, browser: Browser, start_gateway: GatewayFactory, viewport: dict[str, int]
    ) -> None:
        gw = await start(start_gateway)
        size = f"{viewport['width']}x{viewport['height']}"
        pages = {
            "demo-operator": [
                "/console/ops",
                "/console/ops/messages",
                "/console/ops/dead-letters",
                "/console/ops/rejections",
            ],
            "demo-ig-lead": [
                "/console/ig/agreements",
                "/console/ig/reviews",
                "/console/ig/simulator",
                "/console/ig/disclosures",
            ],
            "demo-admin": ["/console/ops", "/console/ig/agreements"],
        }
        for user, paths in pages.items():
            page = await new_page(browser, viewport)
            await page.goto(gw.base + "/console/sign-in")
            await check_accessible(page, "sign-in")
            await shot(page, f"sign-in-{size}")
            await sign_in(page, gw.base, user)
            assert user in await page.locator(".who").inner_text()
            for path in paths:
                response = await page.goto(gw.base + path)
                assert response is not None
                assert response.status == 200, path
                await check_accessible(page, f"{user} {path} {size}")
                await shot(page, f"{user}-{path.strip('/').replace('/', '-')}-{size}")
            await page.get_by_role("button", name="Sign out").click()
            await page.wait_for_url(re.compile(r".*/console/sign-in$"))
            await page.context.close()

    async def test_keyboard_focus_is_visible(self, browser: Browser, start_gateway: GatewayFactory) -> None:
        gw = await start(start_gateway)
        page = await new_page(browser)
        await page.goto(gw.base + "/console/sign-in")
        assert await page.evaluate("() => document.activeElement.id") == "user"  # autofocus
        await page.keyboard.press("Tab")
        await page.keyboard.press("Tab")
        assert await focus_ring(page) == ["BUTTON", True]
        await shot(page, "focus-visible-sign-in")
        await sign_in(page, gw.base, "demo-operator")
        await page.keyboard.press("Tab")  # the skip link comes first on every page
        assert await page.evaluate("() => document.activeElement.className") == "skip"
        assert (await focus_ring(page))[1]
        await shot(page, "focus-visible-skip-link")


async def focus_ring(page: Page) -> list[Any]:
    """The focused element's tag and whether it draws a focus outline."""
    result: list[Any] = await page.evaluate(
        """() => { const e = document.activeElement, s = getComputedStyle(e);
        return [e.tagName, s.outlineStyle !== "none" && parseFloat(s.outlineWidth) >= 2]; }"""
    )
    return result


class TestOperator:
    async def test_backlog_grows_while_down_then_a_dead_letter_is_replayed(
        self, browser: Browser, start_gateway: GatewayFactory, receiver: RecordingReceiver
    ) -> None:
        gw = await start(start_gateway, partner_delivery={CSC: {"max_attempts": 3}})
        page = await new_page(browser)
        await sign_in(page, gw.base, "demo-operator")
        row = page.locator(f'tr[data-partner="{CSC}"]')

        async def undelivered() -> int:
            cells = [
                await row.locator(f'[data-field="{f}"]').inner_text() for f in ("ready", "in_flight", "dead")
            ]
            return sum(int(c) for c in cells)

        assert await undelivered() == 0
        await shot(page, "ops-overview-before-outage")
        # Given social care's endpoint is down, messages keep arriving
        receiver.set_behaviour(CSC, status=503)
        ids = [await send(gw, child) for child in valid_nhs_numbers(3)]

        # Then the overview (polling, no reload) shows the backlog growing to all three
        async def grown() -> bool:
            return await undelivered() == len(ids)

        await eventually(grown, timeout=20, interval=0.25)
        await shot(page, "ops-overview-during-outage")

        # And once they are dead letters, the operator replays one after recovery
        async def all_dead() -> bool:
            return len(await gw.services.backend.dead_letters(CSC, 10)) == len(ids)

        await eventually(all_dead, timeout=20)
        receiver.set_behaviour(CSC, status=200)
        await page.get_by_role("link", name="Dead letters").click()
        await page.get_by_label("Partner", exact=True).first.select_option(CSC)
        await page.get_by_role("button", name="Show").click()
        await check_accessible(page, "dead letters")
        await shot(page, "ops-dead-letters")
        first = page.locator("table.dead tbody tr").first
        delivery_id = await first.get_attribute("data-delivery")
        await first.get_by_label("Reason").fill("endpoint restored (INC-7)")
        await first.get_by_role("button", name="Replay", exact=True).click()
        await page.wait_for_selector(".notice")
        assert "replayed" in await page.locator(".notice").inner_text()
        await shot(page, "ops-dead-letters-after-replay")
        replayed = [r async for r in gw.services.backend.audit_records() if r.kind == "delivery.replayed"]
        assert [(r.data["delivery_id"], r.actor) for r in replayed] == [
            (delivery_id, "console:demo-operator")
        ]
        await receiver.wait_for(lambda: len(receiver.unique(CSC)) == 1, timeout=10)

    async def test_content_urls_are_403_for_an_operator(
        self, browser: Browser, start_gateway: GatewayFactory
    ) -> None:
        gw = await start(start_gateway)
        message_id = await send(gw, valid_nhs_numbers(1)[0])
        page = await new_page(browser)
        await sign_in(page, gw.base, "demo-operator")
        response = await page.goto(gw.base + f"/console/ig/messages/{message_id}/content")
        assert response is not None
        assert response.status == 403
        assert "Example Street" not in await page.content()
        await shot(page, "operator-content-403")
        await page.goto(gw.base + f"/console/ops/messages/{message_id}")
        await shot(page, "ops-message-timeline")
        assert "Example Street" not in await page.content()

    async def test_a_store_that_is_down_shows_a_page(
        self, browser: Browser, start_gateway: GatewayFactory
    ) -> None:
        gw = await start(start_gateway)
        page = await new_page(browser, NARROW)
        await sign_in(page, gw.base, "demo-operator")
        await gw.services.backend.close()
        try:
            response = await page.goto(gw.base + "/console/ops/dead-letters")
            assert response is not None
            assert response.status == 503
            assert "store is not answering" in await page.inner_text("main")
            await shot(page, "store-down-390x844")
        finally:
            await gw.services.backend.open()


class TestIgLead:
    async def test_simulator_shows_the_schools_view_without_the_narrative(
        self, browser: Browser, start_gateway: GatewayFactory
    ) -> None:
        gw = await start(start_gateway)
        page = await new_page(browser)
        await sign_in(page, gw.base, "demo-ig-lead")
        await page.get_by_role("link", name="Simulator").click()
        await page.get_by_label("Format").select_option("canonical-json")
        await page.get_by_label("Sender (if the message does not say)").select_option(POLICE)
        await page.get_by_label("Message", exact=True).fill(
            (EXAMPLE / "messages" / "domestic-abuse-incident.json").read_text()
        )
        await page.get_by_role("button", name="Simulate").click()
        school = page.locator(f'section[data-recipient="{SCHOOL}"]')
        await school.wait_for()
        released = await school.locator(".released").inner_text()
        assert "event.summary" in released
        assert "event.narrative" not in released
        await school.locator("summary", has_text="What").click()
        payload = await school.locator("pre.payload").inner_text()
        assert "Verbal and physical abuse" in payload  # the summary goes to the school
        narrative = json_narrative()
        assert narrative not in payload
        assert await page.locator(f'section[data-recipient="{CSC}"]').count() == 1
        await check_accessible(page, "simulator")
        await shot(page, "ig-simulator")

    async def test_disclosure_report_lists_a_delivery(
        self, browser: Browser, start_gateway: GatewayFactory, receiver: RecordingReceiver
    ) -> None:
        gw = await start(start_gateway)
        child = valid_nhs_numbers(1)[0]
        message_id = await send(gw, child)
        await receiver.wait_for(lambda: message_id in receiver.unique(SCHOOL), timeout=10)

        async def audited() -> bool:
            return any(
                [
                    r.kind == "delivery.succeeded" and r.partner == SCHOOL
                    async for r in gw.services.backend.audit_records()
                ]
            )

        await eventually(audited, timeout=10)
        page = await new_page(browser)
        await sign_in(page, gw.base, "demo-ig-lead")
        await page.get_by_role("link", name="Disclosures").click()
        await page.get_by_label("Identifier").select_option("nhs-number")
        await page.get_by_label("Value").fill(child)
        await page.get_by_role("button", name="Show report").click()
        row = page.locator("table.disclosures tbody tr", has_text=SCHOOL)
        await row.wait_for()
        assert "delivered" in await row.locator(".delivery").inner_text()
        assert message_id in await row.inner_text()
        await shot(page, "ig-disclosures")
        async with page.expect_download() as download:
            await page.get_by_role("button", name="Export this report as CSV").click()
        assert (await download.value).suggested_filename == "disclosures.csv"


def json_narrative() -> str:
    import json

    doc = json.loads((EXAMPLE / "messages" / "domestic-abuse-incident.json").read_text())
    [item] = [i for i in doc["items"] if i["category"] == "event.narrative"]
    text = next(v for v in item["data"].values() if isinstance(v, str))
    return str(text)
