"""Server-side authorisation of every console route for every role (table-driven), and the
rule that an operator (or an admin) can never get a message's content."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from gateway.console import ROUTES
from gateway.console.routes import PUBLIC
from tests.conftest import GatewayFactory, RunningGateway
from tests.console.support import ROLES, USER_OF_ROLE, ConsoleClient, start_console_gateway
from tests.support import POLICE, auth, body, message_for_child, valid_nhs_numbers

FORM = {
    "reason": "authorisation test",
    "justification": "authorisation test of the content view",
    "partner": "csc-northshire",
    "format": "canonical-json",
    "message": "{}",
    "system": "nhs-number",
    "value": "9990000018",
}


MESSAGE_VALUES = ["Alex", "Example Street", "ZZ99 1ZZ", "07700 900001", "Placeholder", "2017-03-14"]
"""Values from the sample message that no operator page may show."""


async def send_one(gw: RunningGateway) -> str:
    doc = message_for_child(valid_nhs_numbers(1)[0])
    async with gw.http.post(gw.url("/v1/messages"), data=body(doc), headers=auth(POLICE)) as r:
        assert r.status == 202, await r.text()
        return str((await r.json())["message_id"])


def concrete(path: str, message_id: str) -> str:
    return path.replace("{message_id}", message_id).replace("{delivery_id}", "dlv_NOSUCHDELIVERY")


@pytest.fixture
async def gw(start_gateway: GatewayFactory) -> RunningGateway:
    return await start_console_gateway(start_gateway)


@pytest.fixture
async def clients(gw: RunningGateway) -> AsyncIterator[dict[str, ConsoleClient]]:
    out = {"anonymous": ConsoleClient.open(gw.base)}
    for role in ROLES:
        out[role] = ConsoleClient.open(gw.base)
        assert await out[role].sign_in(USER_OF_ROLE[role]) == 303
    yield out
    for c in out.values():
        await c.close()


class TestEveryRouteForEveryRole:
    async def test_the_route_table_is_enforced(
        self, gw: RunningGateway, clients: dict[str, ConsoleClient]
    ) -> None:
        message_id = await send_one(gw)
        wrong: list[str] = []
        for route in ROUTES:
            path = concrete(route.path, message_id)
            for who, signed_in in clients.items():
                client = signed_in
                if route.path == "/console/sign-out" and who != "anonymous":
                    # Signing out ends the session: use a fresh one.
                    client = ConsoleClient.open(gw.base)
                    await client.sign_in(USER_OF_ROLE[who])
                if route.method == "GET":
                    status, _, resp = await client.get(path)
                else:
                    status, _, resp = await client.post(path, dict(FORM))
                location = resp.headers.get("Location", "")
                if who == "anonymous":
                    ok = status == 303 and location.startswith("/console/sign-in?next=")
                    expected = "303 to sign-in"
                elif who in route.roles:
                    ok = status != 403 and not location.startswith("/console/sign-in?next=") and status < 500
                    expected = "allowed"
                else:
                    ok = status == 403
                    expected = "403"
                if not ok:
                    wrong.append(
                        f"{route.method} {route.path} as {who}: got {status} {location}, expected {expected}"
                    )
                if route.path == "/console/sign-out" and who != "anonymous":
                    await client.close()
        assert not wrong, "\n".join(wrong)

    def test_every_console_route_is_in_the_table(self, gw: RunningGateway) -> None:
        declared = {(r.method, r.path) for r in ROUTES} | set(PUBLIC) | {("GET", "/console")}
        mounted = {
            (route.method, route.resource.canonical)
            for route in gw.app.router.routes()
            if route.resource is not None
            and route.resource.canonical.startswith("/console")
            and route.method != "HEAD"
        }
        assert mounted == declared

    def test_content_routes_are_for_the_ig_lead_role_only(self) -> None:
        content = [r for r in ROUTES if "content" in r.path]
        assert content
        assert all(r.content and r.roles == {"ig-lead"} for r in content)


class TestOperatorsNeverGetContent:
    @pytest.mark.parametrize("role", ["operator", "admin"])
    async def test_content_urls_are_403(
        self, role: str, gw: RunningGateway, clients: dict[str, ConsoleClient]
    ) -> None:
        message_id = await send_one(gw)
        client = clients[role]
        url = f"/console/ig/messages/{message_id}/content"
        status, page, _ = await client.get(url)
        assert status == 403
        status, page, _ = await client.post(url, {"justification": "I would like to see it please"})
        assert status == 403
        assert "Northshire" not in page
        assert '"people"' not in page
        kinds = [r.kind async for r in gw.services.backend.audit_records()]
        assert "message.content_viewed" not in kinds

    async def test_operator_pages_show_no_content(
        self, gw: RunningGateway, clients: dict[str, ConsoleClient]
    ) -> None:
        message_id = await send_one(gw)
        client = clients["operator"]
        pages = [
            "/console/ops",
            "/console/ops/queues",
            f"/console/ops/messages?id={message_id}",
            f"/console/ops/messages/{message_id}",
            "/console/ops/dead-letters",
            "/console/ops/rejections",
        ]
        secrets_of_message = [valid_nhs_numbers(1)[0], *MESSAGE_VALUES]
        for path in pages:
            status, text, _ = await client.get(path)
            assert status == 200, path
            for value in secrets_of_message:
                assert not re.search(re.escape(value), text), f"{path} shows a message value"
        assert "/content" not in (await client.get(f"/console/ops/messages/{message_id}"))[1]
