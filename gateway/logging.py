"""structlog configured for JSON lines. Log events carry ids, partner ids, event types, rule
names and error classes, never a value from a message: the canary test enforces it."""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable
from typing import TextIO

import structlog
from aiohttp import web

from gateway.entropy import random_bytes


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    logging.basicConfig(
        format="%(message)s",
        stream=stream or sys.stderr,
        level=getattr(logging, level.upper(), logging.INFO),
        force=True,
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )


REQUEST_ID_HEADER = "X-Request-Id"
_MAX_REQUEST_ID = 64


def _request_id(request: web.Request) -> str:
    """The caller's ``X-Request-Id`` when it is a short token of safe characters, else a new
    one (128 random bits from ``gateway.entropy``: a ``secrets.token_hex`` system call per
    request cost about 4 % of the ingest path): a request id is copied into logs, so it MUST
    NOT carry arbitrary text."""
    given = request.headers.get(REQUEST_ID_HEADER, "")
    if 0 < len(given) <= _MAX_REQUEST_ID and all(c.isalnum() or c in "-_.:" for c in given):
        return given
    return random_bytes(16).hex()


@web.middleware
async def request_id_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Bind ``request_id`` into structlog's contextvars for the request's task, so every log
    line of the request — the pipeline's receive, decide and accept lines for a message
    included — carries it; echo it in the response header."""
    request_id = _request_id(request)
    # bind/reset rather than ``bound_contextvars``: the same effect without a generator-based
    # context manager on every request.
    tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers[REQUEST_ID_HEADER] = request_id
        raise
    finally:
        structlog.contextvars.reset_contextvars(**tokens)
    response.headers[REQUEST_ID_HEADER] = request_id
    return response
