"""Webhook delivery: POST the rendered payload, signed with the Standard Webhooks scheme.

Headers: ``webhook-id`` (the gateway message id: stable across retries and replays, so
recipients de-duplicate on it), ``webhook-timestamp``, ``webhook-signature`` (``v1,<base64
HMAC-SHA256>``). A partner's inbound credentials are never passed on.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from datetime import UTC, datetime

import aiohttp
from standardwebhooks.webhooks import Webhook
from yarl import URL

from gateway.errors import PermanentDeliveryError, RetryableDeliveryError

USER_AGENT = "mash-gateway/0.1"
RETRYABLE_STATUS = frozenset({408, 425, 429})


class WebhookSigner:
    """Signs deliveries for one partner secret with the ``standardwebhooks`` library. Build
    it once per partner (the library's ``Webhook`` decodes the secret when built), then
    ``headers`` per delivery. It holds the secret: it MUST NOT be logged (its ``repr`` hides
    the secret)."""

    __slots__ = ("_webhook",)

    def __init__(self, secret: str) -> None:
        self._webhook = Webhook(secret)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(secret='**********')"

    def headers(
        self, webhook_id: str, payload: bytes, media_type: str, now: datetime | None = None
    ) -> dict[str, str]:
        """The request headers for one delivery: the Standard Webhooks three, the content
        type and the user agent. Nothing else: a partner's inbound credentials are never
        passed on. ``now`` defaults to the wall clock; a naive ``now`` is taken as UTC, as
        the library does, and an aware one is turned into UTC first (the library would read
        its wall time as UTC), so ``webhook-timestamp`` is the second the signature covers."""
        when = (
            datetime.now(UTC)
            if now is None
            else now.astimezone(UTC)
            if now.tzinfo
            else now.replace(tzinfo=UTC)
        )
        return {
            "content-type": media_type,
            "user-agent": USER_AGENT,
            "webhook-id": webhook_id,
            "webhook-timestamp": str(math.floor(when.timestamp())),
            "webhook-signature": self._webhook.sign(webhook_id, when, payload.decode()),
        }


def signed_headers(
    secret: str, webhook_id: str, payload: bytes, media_type: str, now: datetime | None = None
) -> dict[str, str]:
    """One-off signing (tools, tests); workers keep a ``WebhookSigner`` per partner."""
    return WebhookSigner(secret).headers(webhook_id, payload, media_type, now)


async def post_webhook(
    session: aiohttp.ClientSession,
    url: str | URL,
    headers: Mapping[str, str],
    payload: bytes,
    timeout: aiohttp.ClientTimeout,
) -> None:
    """One attempt. Returns on 2xx; raises Retryable or Permanent delivery errors with a
    content-free code (the response body is never read into logs or errors). ``timeout``
    is built once per worker, not per call, and so is ``url`` (a parsed ``yarl.URL``: no
    parsing per delivery)."""
    try:
        async with session.post(
            url,
            data=payload,
            headers=headers,
            timeout=timeout,
            allow_redirects=False,
        ) as resp:
            status = resp.status
            await resp.release()
    except TimeoutError:
        raise RetryableDeliveryError("the partner did not answer in time", code="timeout") from None
    except aiohttp.ClientConnectionError as exc:
        raise RetryableDeliveryError(
            "could not connect to the partner", code=f"connection:{type(exc).__name__}"
        ) from None
    except aiohttp.ClientError as exc:
        raise RetryableDeliveryError("HTTP client error", code=f"client:{type(exc).__name__}") from None
    except asyncio.CancelledError:
        raise
    if 200 <= status < 300:
        return
    if status >= 500 or status in RETRYABLE_STATUS:
        raise RetryableDeliveryError(f"partner answered {status}", code=f"http-{status}")
    raise PermanentDeliveryError(f"partner refused the delivery with {status}", code=f"http-{status}")
