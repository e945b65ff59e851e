"""Every console route with the roles that may use it, and ``setup_console`` which mounts
them on the gateway's app.

The table is the authorisation policy: the guard enforces it on the server, and
``tests/console/test_authorisation.py`` checks every route against every role. A route
added here without roles cannot exist.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from gateway.config import ConsoleSettings
from gateway.console import auth, pages_ig, pages_ops
from gateway.console.auth import ANY_ROLE, CONTENT, IG, OPS, Handler, guard
from gateway.console.ratelimit import FailureLimiter
from gateway.console.render import load_static, load_templates
from gateway.console.samples import QueueSamples, sample_every
from gateway.console.sessions import SessionStore
from gateway.console.state import CONSOLE, ConsoleState


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    roles: frozenset[str]
    content: bool = False
    """The route shows message content: only ever for ``CONTENT`` roles."""


ROUTES: tuple[Route, ...] = (
    Route("GET", "/console/", auth.home, ANY_ROLE),
    Route("POST", "/console/sign-out", auth.sign_out, ANY_ROLE),
    Route("GET", "/console/ops", pages_ops.overview, OPS),
    Route("GET", "/console/ops/queues", pages_ops.queues_fragment, OPS),
    Route("GET", "/console/ops/messages", pages_ops.messages, OPS),
    Route("GET", "/console/ops/messages/{message_id}", pages_ops.message, OPS | IG),
    Route("GET", "/console/ops/dead-letters", pages_ops.dead_letters, OPS),
    Route("POST", "/console/ops/dead-letters/retry-partner", pages_ops.retry_partner, OPS),
    Route("POST", "/console/ops/dead-letters/{delivery_id}/replay", pages_ops.replay, OPS),
    Route("POST", "/console/ops/dead-letters/{delivery_id}/replay-original", pages_ops.replay_original, OPS),
    Route("POST", "/console/ops/dead-letters/{delivery_id}/discard", pages_ops.discard, OPS),
    Route("GET", "/console/ops/rejections", pages_ops.rejections, OPS),
    Route("GET", "/console/ig/agreements", pages_ig.agreements, IG),
    Route("GET", "/console/ig/reviews", pages_ig.reviews, IG),
    Route("POST", "/console/ig/reviews/{delivery_id}/approve", pages_ig.approve, IG),
    Route("POST", "/console/ig/reviews/{delivery_id}/reject", pages_ig.reject, IG),
    Route("GET", "/console/ig/simulator", pages_ig.simulator_form, IG),
    Route("POST", "/console/ig/simulator", pages_ig.simulator, IG),
    Route("GET", "/console/ig/disclosures", pages_ig.disclosures_form, IG),
    Route("POST", "/console/ig/disclosures", pages_ig.disclosures, IG),
    Route("GET", "/console/ig/messages/{message_id}/content", pages_ig.content_form, CONTENT, content=True),
    Route("POST", "/console/ig/messages/{message_id}/content", pages_ig.content, CONTENT, content=True),
)
PUBLIC: tuple[tuple[str, str], ...] = (
    ("GET", "/console/sign-in"),
    ("POST", "/console/sign-in"),
    ("GET", "/console/static/{name}"),
)


def _check_table() -> None:
    for r in ROUTES:
        if not r.roles:
            raise ValueError(f"console route {r.method} {r.path} has no roles")
        if r.content and r.roles - CONTENT:
            raise ValueError(
                f"console route {r.method} {r.path} shows content to {sorted(r.roles - CONTENT)}"
            )


def setup_console(app: web.Application, settings: ConsoleSettings) -> None:
    """Mount the console on ``app``: state, routes and the queue sampler (start-up only;
    reads the templates and static files now, never per request)."""
    _check_table()
    window = settings.lockout_minutes * 60
    app[CONSOLE] = ConsoleState(
        settings=settings,
        users={u.id: u for u in settings.users},
        sessions=SessionStore(
            idle=settings.session_idle_minutes * 60, lifetime=settings.session_max_hours * 3600
        ),
        user_failures=FailureLimiter(max_failures=settings.max_failed_sign_ins, window=window),
        address_failures=FailureLimiter(max_failures=settings.max_failed_sign_ins_per_address, window=window),
        templates=load_templates(),
        static=load_static(),
        samples=QueueSamples(settings.sample_seconds),
    )
    app.router.add_get("/console/sign-in", auth.sign_in_form)
    app.router.add_post("/console/sign-in", auth.sign_in)
    app.router.add_get("/console/static/{name}", auth.static)
    app.router.add_get("/console", auth.home_redirect)
    for r in ROUTES:
        app.router.add_route(r.method, r.path, guard(r.handler, r.roles))
    app.cleanup_ctx.append(_sampler)


async def _sampler(app: web.Application) -> AsyncIterator[None]:

    task = asyncio.create_task(sample_every(app[CONSOLE].samples, lambda: pages_ops.take_sample(app)))
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
