"""Console sign-in, sign-out, roles and CSRF: the server-side guard every console route
passes through.

Roles: ``operator`` (queues, metadata only), ``ig-lead`` (agreements, reviews, simulator,
disclosures, audited content views) and ``admin`` (both page sets, but **not** content:
reading a child's record needs the ig-lead role and a typed justification).

Contracts:

* Every console route is declared with the roles that may use it (``routes.ROUTES``); the
  guard refuses the rest on the server — an anonymous request is sent to sign-in (303), a
  signed-in user without the role gets 403. Hiding a link is never the control.
* Every POST carries the session's CSRF token in the form field ``csrf_token``; a POST
  without the right token gets 403 and does nothing.
* Failed sign-ins are limited per user id and per client address
  (``ratelimit.FailureLimiter``) and audited (``console.sign_in_failed`` /
  ``console.sign_in_refused``). A password MUST NOT appear in an audit record, a log line or
  a response; a typed user id that is not configured is recorded as unknown, never as typed.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import structlog
from aiohttp import web

from gateway.api.state import SERVICES
from gateway.audit import AuditEvent
from gateway.console.passwords import verify_async
from gateway.console.ratelimit import UNKNOWN_USER
from gateway.console.render import html, secure
from gateway.console.sessions import Session
from gateway.console.state import CONSOLE

log = structlog.get_logger("gateway.console")

OPS = frozenset({"operator", "admin"})
IG = frozenset({"ig-lead", "admin"})
CONTENT = frozenset({"ig-lead"})
ANY_ROLE = frozenset({"operator", "ig-lead", "admin"})

SIGN_IN = "/console/sign-in"
SESSION_KEY = web.RequestKey("console_session", Session)
FORM_KEY = web.RequestKey("console_form", dict[str, str])
UPLOADS_KEY = web.RequestKey("console_uploads", dict[str, Any])

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def session_of(request: web.Request) -> Session | None:
    state = request.app[CONSOLE]
    return state.sessions.get(request.cookies.get(state.cookie_name))


def current(request: web.Request) -> Session:
    """The signed-in session (set by the guard)."""
    return request[SESSION_KEY]


def form(request: web.Request) -> dict[str, str]:
    """The POSTed form (read and CSRF-checked by the guard); text fields only."""
    return request[FORM_KEY]


def set_cookie(request: web.Request, response: web.StreamResponse, session: Session) -> None:
    state = request.app[CONSOLE]
    response.set_cookie(
        state.cookie_name,
        session.sid,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=state.settings.secure_cookies,
    )


def page(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    """Render a console page with the signed-in user's navigation, CSRF token and notices."""
    state = request.app[CONSOLE]
    session: Session | None = request.get(SESSION_KEY) or session_of(request)
    notices: list[str] = []
    if session is not None:
        notices, session.flash = session.flash, []
    base = {
        "user": session.user if session else None,
        "role": session.role if session else None,
        "csrf": session.csrf if session else "",
        "notices": notices,
        "path": request.path,
        "ops": bool(session and session.role in OPS),
        "ig": bool(session and session.role in IG),
    }
    return html(state.templates, template, {**base, **context}, status)


def refuse(request: web.Request, status: int, title: str, detail: str) -> web.Response:
    return page(request, "error.html", status=status, title=title, detail=detail)


def _redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def _safe_next(target: str | None) -> str:
    # Only our own console paths: an open redirect would let a phishing link bounce through us.
    if target and target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/console/"


async def _read_form(request: web.Request) -> dict[str, str] | None:
    """The form's text fields, or None when it carries no valid CSRF token."""
    session = request[SESSION_KEY]
    data = await request.post()
    fields = {k: v for k, v in data.items() if isinstance(v, str)}
    token = fields.get("csrf_token", "")
    if not hmac.compare_digest(token.encode(), session.csrf.encode()):
        return None
    request[FORM_KEY] = fields
    uploads = {k: v for k, v in data.items() if not isinstance(v, str)}
    request[UPLOADS_KEY] = uploads
    return fields


def guard(handler: Handler, roles: frozenset[str]) -> Handler:
    """Wrap a console handler: session, role and (for POST) CSRF checks, security headers,
    and a sensible page when the store does not answer."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        session = session_of(request)
        if session is None or session.user is None:
            target = request.path_qs if request.method == "GET" else request.path
            return secure(_redirect(f"{SIGN_IN}?next={quote(target, safe='/')}"))
        request[SESSION_KEY] = session
        if session.role not in roles:
            log.info("console.forbidden", user=session.user, role=session.role, route=_route(request))
            return secure(
                refuse(request, 403, "Not allowed", f"The {session.role} role cannot open this page.")
            )
        if request.method == "POST" and await _read_form(request) is None:
            return secure(refuse(request, 403, "Form expired", "Reload the page and submit the form again."))
        try:
            return secure(await handler(request))
        except web.HTTPException:
            raise
        except Exception as exc:  # noqa: BLE001 - a failure gets a page, not a stack trace
            log.error("console.page_failed", route=_route(request), error=type(exc).__name__)
            if await _store_answers(request):
                return secure(
                    refuse(
                        request,
                        500,
                        "The console failed",
                        "Nothing was changed. The error is in the gateway's log.",
                    )
                )
            return secure(
                refuse(
                    request,
                    503,
                    "The gateway's store is not answering",
                    "Nothing was changed. Try again in a minute; if it persists, check /readyz "
                    "and the gateway's log.",
                )
            )

    return guarded


async def _store_answers(request: web.Request) -> bool:
    try:
        await request.app[SERVICES].backend.ping()
    except Exception:  # noqa: BLE001 - any failure means it does not answer
        return False
    return True


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else request.path


# -- sign-in and sign-out ------------------------------------------------------------------


async def sign_in_form(request: web.Request) -> web.StreamResponse:
    state = request.app[CONSOLE]
    session = session_of(request) or state.sessions.new()
    request[SESSION_KEY] = session
    if session.user is not None and "next" not in request.query:
        return secure(_redirect("/console/"))
    response = page(request, "sign_in.html", next=_safe_next(request.query.get("next")), error=None)
    set_cookie(request, response, session)
    return secure(response)


async def sign_in(request: web.Request) -> web.StreamResponse:
    state = request.app[CONSOLE]
    svc = request.app[SERVICES]
    session = session_of(request)
    if session is None:
        return secure(_redirect(SIGN_IN))
    request[SESSION_KEY] = session
    fields = await _read_form(request)
    if fields is None:
        return secure(refuse(request, 403, "Form expired", "Reload the sign-in page and try again."))
    typed = fields.get("user", "").strip()
    password = fields.get("password", "")
    target = _safe_next(fields.get("next"))
    user = state.users.get(typed)
    user_key = user.id if user else UNKNOWN_USER
    address = request.remote or "unknown"
    who = user.id if user else None
    if state.user_failures.blocked(user_key) or state.address_failures.blocked(address):
        wait = max(state.user_failures.retry_after(user_key), state.address_failures.retry_after(address))
        await svc.backend.append_audit(
            [AuditEvent("console.sign_in_refused", {"user": who, "address": address, "rule": "rate-limited"})]
        )
        log.warning("console.sign_in_refused", user=who, rule="rate-limited")
        response = page(
            request,
            "sign_in.html",
            status=429,
            next=target,
            error="Too many failed sign-ins. Wait a few minutes, then try again.",
        )
        response.headers["Retry-After"] = str(int(wait) + 1)
        return secure(response)
    if not await verify_async(user.password_hash if user else None, password):
        failures = state.user_failures.failed(user_key)
        state.address_failures.failed(address)
        await svc.backend.append_audit(
            [
                AuditEvent(
                    "console.sign_in_failed",
                    {"user": who, "address": address, "rule": "bad-credentials", "failures": failures},
                )
            ]
        )
        log.warning("console.sign_in_failed", user=who, rule="bad-credentials")
        response = page(
            request, "sign_in.html", status=401, next=target, error="That user id and password do not match."
        )
        return secure(response)
    assert user is not None
    state.user_failures.clear(user.id)
    fresh = state.sessions.sign_in(session, user.id, user.role)
    await svc.backend.append_audit(
        [AuditEvent("console.signed_in", {"role": user.role, "address": address}, actor=f"console:{user.id}")]
    )
    log.info("console.signed_in", user=user.id, role=user.role)
    response = _redirect(target)
    set_cookie(request, response, fresh)
    return secure(response)


async def sign_out(request: web.Request) -> web.StreamResponse:
    state = request.app[CONSOLE]
    session = current(request)
    state.sessions.end(session)
    await request.app[SERVICES].backend.append_audit(
        [AuditEvent("console.signed_out", {}, actor=f"console:{session.user}")]
    )
    response = _redirect(SIGN_IN)
    response.del_cookie(state.cookie_name, path="/")
    return response


async def home(request: web.Request) -> web.StreamResponse:
    role = current(request).role
    return _redirect("/console/ops" if role in OPS else "/console/ig/agreements")


async def static(request: web.Request) -> web.StreamResponse:
    found = request.app[CONSOLE].static.get(request.match_info["name"])
    if found is None:
        return secure(web.Response(status=404, text="not found"))
    body, content_type = found
    response = web.Response(body=body, content_type=content_type)
    response.headers["Cache-Control"] = "max-age=300"
    return secure(response)


async def home_redirect(request: web.Request) -> web.StreamResponse:
    return secure(_redirect("/console/"))
