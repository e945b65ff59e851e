"""Small JSON request bodies of the operator and IG APIs: size-limited, and a required,
audited reason for every action that changes what happens to a message."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from canonical import InvalidInput, Violation
from gateway.errors import PayloadTooLarge

MAX_BODY = 16 * 1024
MAX_REASON = 500


async def json_body(request: web.Request) -> Any:
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise PayloadTooLarge(
            [Violation("/", "max-body-bytes", f"the body must be at most {MAX_BODY} bytes")]
        )
    try:
        return json.loads(raw or b"{}")
    except ValueError:
        raise InvalidInput([Violation("/", "json-syntax", "the body must be a JSON object")]) from None


def reason_of(body: Any) -> str:
    reason = body.get("reason") if isinstance(body, dict) else None
    if isinstance(reason, str):
        reason = reason.strip()
    if not isinstance(reason, str) or not reason or len(reason) > MAX_REASON:
        raise InvalidInput(
            [
                Violation(
                    "/reason", "required", f"a reason of 1 to {MAX_REASON} characters is required and audited"
                )
            ]
        )
    return reason


async def read_reason(request: web.Request) -> str:
    return reason_of(await json_body(request))
