"""RFC 9457 problem details (``application/problem+json``) for every error, and the
middleware that turns errors into them.

Bad input is a 4xx naming the field and the rule; only our own faults are 5xx, and those
say nothing about the request's content.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from canonical import GatewayError, InvalidInput

PROBLEM_TYPE_BASE = "https://schemas.mash-gateway.example/problems/"
PROBLEM_JSON = "application/problem+json"

log = structlog.get_logger("gateway.api")


def problem(status: int, title: str, detail: str, slug: str, **extra: Any) -> web.Response:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return web.Response(status=status, text=json.dumps(body), content_type=PROBLEM_JSON)


def problem_for(error: GatewayError) -> web.Response:
    extra: dict[str, Any] = {}
    if isinstance(error, InvalidInput):
        extra["errors"] = [v.as_dict() for v in error.violations]
        extra["adapter"] = error.adapter or None
    response = problem(error.status, error.title, error.detail, error.type_slug, **extra)
    retry_after = getattr(error, "retry_after_seconds", None)
    if retry_after is not None:  # e.g. BrokerUnavailable (503): retry with the same Idempotency-Key
        response.headers["Retry-After"] = str(int(retry_after))
    return response


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GatewayError as exc:
        return problem_for(exc)
    except web.HTTPRequestEntityTooLarge:
        return problem(
            413,
            "Payload too large",
            "the request body exceeds the size limit",
            "payload-too-large",
            errors=[
                {
                    "field": "/",
                    "rule": "max-body-bytes",
                    "message": "the body is larger than the gateway accepts",
                }
            ],
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem(exc.status, exc.reason, exc.reason, f"http-{exc.status}")
    except Exception as exc:  # noqa: BLE001 - our fault: answer 500, log the class only
        log.error("request.unhandled", path=request.path, error=type(exc).__name__)
        return problem(
            500, "Internal error", "the gateway failed; the request was not accepted", "internal-error"
        )
