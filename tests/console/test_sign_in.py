"""Sign-in, sessions, CSRF and failed sign-in limits, on a real gateway over loopback."""

from __future__ import annotations

from typing import Any

from gateway.audit import AuditRecord
from tests.conftest import GatewayFactory, RunningGateway
from tests.console.support import PASSWORDS, ConsoleClient, start_console_gateway


async def audit_of(gw: RunningGateway, prefix: str) -> list[AuditRecord]:
    return [r async for r in gw.services.backend.audit_records() if r.kind.startswith(prefix)]


def cookie_header(resp: Any) -> str:
    return "; ".join(resp.headers.getall("Set-Cookie", []))


class TestSignIn:
    async def test_each_user_signs_in_and_out(self, start_gateway: GatewayFactory) -> None:
        gw = await start_console_gateway(start_gateway)
        for user in PASSWORDS:
            c = ConsoleClient.open(gw.base)
            try:
                assert await c.sign_in(user) == 303
                status, _, resp = await c.post("/console/sign-out", {})
                assert status == 303
                assert resp.headers["Location"] == "/console/sign-in"
                status, _, resp = await c.get("/console/")
                assert status == 303
                assert resp.headers["Location"].startswith("/console/sign-in?next=")
            finally:
                await c.close()
        kinds = [(r.kind, r.actor) for r in await audit_of(gw, "console.sign")]
        for user in PASSWORDS:
            assert ("console.signed_in", f"console:{user}") in kinds
            assert ("console.signed_out", f"console:{user}") in kinds

    async def test_cookie_is_httponly_strict_and_rotated_at_sign_in(
        self, start_gateway: GatewayFactory
    ) -> None:
        gw = await start_console_gateway(start_gateway)
        c = ConsoleClient.open(gw.base)
        try:
            _, _, first = await c.get("/console/sign-in")
            before = cookie_header(first)
            assert "HttpOnly" in before
            assert "SameSite=Strict" in before
            assert "Path=/" in before
            assert "Secure" not in before  # secure_cookies: false in the test deployment
            status, _, resp = await c.post(
                "/console/sign-in", {"user": "demo-operator", "password": PASSWORDS["demo-operator"]}
            )
            assert status == 303
            after = cookie_header(resp)
            assert after.split(";")[0] != before.split(";")[0], "session id must change at sign-in"
        finally:
            await c.close()

    async def test_secure_cookies_use_the_host_prefix(self, start_gateway: GatewayFactory) -> None:
        gw = await start_console_gateway(start_gateway, secure_cookies=True)
        async with gw.http.get(gw.url("/console/sign-in")) as r:
            header = "; ".join(r.headers.getall("Set-Cookie", []))
        assert header.startswith("__Host-gateway-console=")
        assert "Secure" in header

    async def test_wrong_password_is_refused_and_audited_without_the_password(
        self, start_gateway: GatewayFactory
    ) -> None:
        gw = await start_console_gateway(start_gateway)
        c = ConsoleClient.open(gw.base)
        try:
            assert await c.sign_in("demo-operator", "Wrong-Password-Canary") == 401
            assert "do not match" in c.last_text
            assert "Wrong-Password-Canary" not in c.last_text
            assert await c.sign_in("Typed-Canary-Id", "Other-Canary") == 401
        finally:
            await c.close()
        failed = await audit_of(gw, "console.sign_in_failed")
        assert [r.data["user"] for r in failed] == ["demo-operator", None]
        everything = [str(r.as_dict()) async for r in gw.services.backend.audit_records()]
        assert not any("Canary" in line for line in everything)

    async def test_only_console_paths_are_followed_after_sign_in(self, start_gateway: GatewayFactory) -> None:
        gw = await start_console_gateway(start_gateway)
        for target, expected in (
            ("//evil.example/x", "/console/"),
            ("https://evil.example/", "/console/"),
            ("/console/ig/agreements", "/console/ig/agreements"),
        ):
            c = ConsoleClient.open(gw.base)
            try:
                await c.get("/console/sign-in")
                status, _, resp = await c.post(
                    "/console/sign-in",
                    {"user": "demo-admin", "password": PASSWORDS["demo-admin"], "next": target},
                )
                assert status == 303
                assert resp.headers["Location"] == expected
            finally:
                await c.close()


class TestCsrf:
    async def test_post_without_or_with_a_wrong_token_is_403_and_does_nothing(
        self, start_gateway: GatewayFactory
    ) -> None:
        gw = await start_console_gateway(start_gateway)
        c = ConsoleClient.open(gw.base)
        try:
            await c.get("/console/sign-in")
            status, _, _ = await c.post(
                "/console/sign-in", {"user": "demo-operator", "password": "x"}, csrf=False
            )
            assert status == 403
            assert await c.sign_in("demo-operator") == 303
            for data, csrf in (({}, False), ({"csrf_token": "forged"}, False)):
                status, text, _ = await c.post("/console/sign-out", data, csrf=csrf)
                assert status == 403
                assert "Form expired" in text
            status, _, _ = await c.get("/console/ops")
            assert status == 200, "the refused sign-out did not end the session"
            status, _, _ = await c.post(
                "/console/ops/dead-letters/retry-partner",
                {"partner": "csc-northshire", "reason": "csrf test"},
                csrf=False,
            )
            assert status == 403
        finally:
            await c.close()
        assert not await audit_of(gw, "delivery.replayed")
        assert not await audit_of(gw, "console.signed_out")

    async def test_a_token_from_another_session_is_refused(self, start_gateway: GatewayFactory) -> None:
        gw = await start_console_gateway(start_gateway)
        a, b = ConsoleClient.open(gw.base), ConsoleClient.open(gw.base)
        try:
            assert await a.sign_in("demo-operator") == 303
            assert await b.sign_in("demo-admin") == 303
            status, _, _ = await a.post("/console/sign-out", {"csrf_token": b.csrf}, csrf=False)
            assert status == 403
        finally:
            await a.close()
            await b.close()


class TestRateLimits:
    async def test_a_user_is_locked_after_repeated_failures_even_with_the_right_password(
        self, start_gateway: GatewayFactory
    ) -> None:
        gw = await start_console_gateway(start_gateway, max_failed_sign_ins=3)
        c = ConsoleClient.open(gw.base)
        try:
            for _ in range(3):
                assert await c.sign_in("demo-operator", "wrong") == 401
            assert await c.sign_in("demo-operator") == 429
            assert "Too many failed sign-ins" in c.last_text
            assert await c.sign_in("demo-ig-lead") == 303, (
                "another user from the same address is not locked yet"
            )
        finally:
            await c.close()
        refused = await audit_of(gw, "console.sign_in_refused")
        assert [(r.data["user"], r.data["rule"]) for r in refused] == [("demo-operator", "rate-limited")]

    async def test_an_address_is_locked_after_failures_across_users(
        self, start_gateway: GatewayFactory
    ) -> None:
        gw = await start_console_gateway(
            start_gateway, max_failed_sign_ins=10, max_failed_sign_ins_per_address=4
        )
        c = ConsoleClient.open(gw.base)
        try:
            for user in ("demo-operator", "demo-ig-lead", "demo-admin", "nobody-here"):
                assert await c.sign_in(user, "wrong") == 401
            status = await c.sign_in("demo-admin")
            assert status == 429
        finally:
            await c.close()
