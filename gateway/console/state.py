"""The console's typed application state, built once in ``setup_console``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import jinja2
from aiohttp import web

from gateway.config import ConsoleSettings, ConsoleUser
from gateway.console.ratelimit import FailureLimiter
from gateway.console.samples import QueueSamples
from gateway.console.sessions import SessionStore


@dataclass
class ConsoleState:
    settings: ConsoleSettings
    users: Mapping[str, ConsoleUser]
    sessions: SessionStore
    user_failures: FailureLimiter
    address_failures: FailureLimiter
    templates: jinja2.Environment
    static: Mapping[str, tuple[bytes, str]]
    samples: QueueSamples

    @property
    def cookie_name(self) -> str:
        # The __Host- prefix makes the browser refuse the cookie unless Secure, Path=/ and no
        # Domain: another site on a sibling domain cannot plant or overwrite it.
        return "__Host-gateway-console" if self.settings.secure_cookies else "gateway-console"


CONSOLE = web.AppKey("console", ConsoleState)
