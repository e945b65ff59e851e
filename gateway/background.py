"""Background duties of a running gateway: escalate overdue reviews, and reload the policy
when its files change. Each loop survives errors (logged by class only) and stops on cancel."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from canonical import InvalidInput
from consent.policy import POLICY_FILES
from gateway.api.ig import reload
from gateway.api.state import Services

log = structlog.get_logger("gateway.background")


async def every(seconds: float, job: Callable[[], Awaitable[None]], name: str) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - keep the loop alive; the next round retries
            log.error("background.error", job=name, error=type(exc).__name__)


def escalation_job(svc: Services) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        for held in await svc.backend.escalate_overdue():
            svc.metrics.reviews_escalated.labels(held.recipient, held.review_role).inc()
            log.warning(
                "review.escalated",
                delivery_id=held.delivery_id,
                recipient=held.recipient,
                review_role=held.review_role,
            )

    return run


def consent_sync_job(svc: Services) -> Callable[[], Awaitable[None]]:
    """Take in consent records other gateway instances made (``GatewayConsents.sync``)."""

    async def run() -> None:
        added = await svc.consents.sync(svc.backend)
        if added:
            log.info("consents.synced", added=added, audit_seq=svc.consents.audit_seq)

    return run


async def policy_watch_job(svc: Services) -> Callable[[], Awaitable[None]]:
    """A job that reloads the policy when a policy file's modification time changes."""
    config_dir = svc.deployment.settings.config_dir

    def mtimes() -> tuple[int, ...]:
        return tuple((config_dir / f).stat().st_mtime_ns for f in POLICY_FILES)

    seen = [await asyncio.to_thread(mtimes)]

    async def run() -> None:
        current = await asyncio.to_thread(mtimes)
        if current == seen[0]:
            return
        seen[0] = current
        try:
            version = await reload(svc, "policy-watch")
        except InvalidInput as exc:
            log.error("policy.reload_refused", rules=sorted({v.rule for v in exc.violations}))
            return
        log.info("policy.reloaded", policy_version=version)

    return run


async def stop(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
