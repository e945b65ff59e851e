"""Helpers for the console tests: the demo users, a signed-in HTTP client with its own
cookie jar, and the gateway settings the console tests run with."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.conftest import GatewayFactory, RunningGateway
from tests.support import EXAMPLE

PASSWORDS = {
    "demo-operator": "demo-operator-password",
    "demo-ig-lead": "demo-ig-lead-password",
    "demo-admin": "demo-admin-password",
}
USER_OF_ROLE = {"operator": "demo-operator", "ig-lead": "demo-ig-lead", "admin": "demo-admin"}
ROLES = ("operator", "ig-lead", "admin")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def console_settings(**overrides: Any) -> dict[str, Any]:
    """The example deployment's ``console:`` section with test overrides."""
    doc = yaml.safe_load((EXAMPLE / "gateway.yaml").read_text())
    console: dict[str, Any] = doc["console"]
    console.update({"sample_seconds": 0.2, **overrides})
    return console


async def start_console_gateway(start_gateway: GatewayFactory, **console: Any) -> RunningGateway:
    gw: RunningGateway = await start_gateway(settings_extra={"console": console_settings(**console)})
    return gw


@dataclass
class ConsoleClient:
    """A browser-like client: its own cookies, and the CSRF token of the last page."""

    base: str
    http: aiohttp.ClientSession
    csrf: str = ""
    last_text: str = field(default="", repr=False)

    @classmethod
    def open(cls, base: str) -> ConsoleClient:
        # unsafe=True: keep cookies from an IP-address host (the gateway runs on 127.0.0.1).
        return cls(base, aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)))

    async def close(self) -> None:
        await self.http.close()

    async def get(self, path: str, **kw: Any) -> tuple[int, str, aiohttp.ClientResponse]:
        async with self.http.get(self.base + path, allow_redirects=False, **kw) as r:
            text = await r.text()
        self._remember(text)
        return r.status, text, r

    async def post(
        self,
        path: str,
        data: dict[str, str] | aiohttp.FormData | None = None,
        *,
        csrf: bool = True,
        **kw: Any,
    ) -> tuple[int, str, aiohttp.ClientResponse]:
        if isinstance(data, aiohttp.FormData):
            form = data
            if csrf:
                form.add_field("csrf_token", self.csrf)
        else:
            form = aiohttp.FormData({**(data or {}), **({"csrf_token": self.csrf} if csrf else {})})
        async with self.http.post(self.base + path, data=form, allow_redirects=False, **kw) as r:
            body = await r.read()
        text = body.decode("utf-8", "replace")
        self._remember(text)
        return r.status, text, r

    def _remember(self, text: str) -> None:
        self.last_text = text
        found = CSRF.search(text)
        if found:
            self.csrf = found.group(1)

    async def sign_in(self, user: str, password: str | None = None) -> int:
        await self.get("/console/sign-in")
        status, _, _ = await self.post(
            "/console/sign-in", {"user": user, "password": password or PASSWORDS[user], "next": "/console/"}
        )
        if status == 303:
            await self.get("/console/")  # a page of the new session: its CSRF token
            landing = await self.get(
                "/console/ops" if "operator" in user or "admin" in user else "/console/ig/agreements"
            )
            assert landing[0] == 200, landing[1][:300]
        return status


def artifacts() -> Path:
    out = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
    out.mkdir(parents=True, exist_ok=True)
    return out
