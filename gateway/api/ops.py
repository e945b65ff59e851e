"""Operations API: queue depth and age, dead letters, replay, replay from the original and
discard. Metadata only: nothing here returns message content, and every action on a dead
letter requires a reason that is audited."""

from __future__ import annotations

from aiohttp import web

from gateway.api.bodies import read_reason
from gateway.api.state import SERVICES
from gateway.errors import NotFound

OPERATOR_ROLES = frozenset({"operator", "admin"})
MAX_REASON = 500


async def get_queues(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    svc.auth.operator(request, OPERATOR_ROLES)
    stats = {s.recipient: s for s in await svc.backend.stats()}
    out = []
    for pid, partner in sorted(svc.deployment.partners.items()):
        s = stats.get(pid)
        worker = svc.dispatcher.workers.get(pid)
        out.append(
            {
                "partner": pid,
                "mode": partner.delivery.mode,
                "ready": s.ready if s else 0,
                "in_flight": s.leased if s else 0,
                "delivered": s.delivered if s else 0,
                "dead_letters": s.dead if s else 0,
                "oldest_age_seconds": round(s.oldest_ready_age_seconds, 3) if s else 0.0,
                "circuit": worker.circuit.state.value if worker else None,
            }
        )
    return web.json_response({"queues": out})


async def get_dead_letters(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    svc.auth.operator(request, OPERATOR_ROLES)
    recipient = request.query.get("partner")
    rows = await svc.backend.dead_letters(recipient, 500)
    return web.json_response(
        {
            "dead_letters": [
                {
                    "delivery_id": d.delivery_id,
                    "message_id": d.message_id,
                    "partner": d.recipient,
                    "attempts": d.attempts,
                    "last_error": d.last_error,
                    "updated_at": d.updated_at,
                }
                for d in rows
            ]
        }
    )


async def replay_dead_letter(request: web.Request) -> web.Response:
    return await _resolve(request, replay=True)


async def discard_dead_letter(request: web.Request) -> web.Response:
    return await _resolve(request, replay=False)


async def _resolve(request: web.Request, *, replay: bool) -> web.Response:
    svc = request.app[SERVICES]
    operator = svc.auth.operator(request, OPERATOR_ROLES)
    reason = await read_reason(request)
    delivery_id = request.match_info["delivery_id"]
    action = svc.backend.replay if replay else svc.backend.discard
    if not await action(delivery_id, reason, f"operator:{operator}"):
        raise NotFound("no dead letter with this id")
    # Wake every worker: the replayed delivery's partner picks it up at once.
    for worker in svc.dispatcher.workers.values():
        worker.wake()
    return web.json_response({"delivery_id": delivery_id, "state": "ready" if replay else "discarded"})


async def replay_dead_letter_from_original(request: web.Request) -> web.Response:
    """Rebuild the dead letter's payload from the stored original under the current policy
    and consent (``Pipeline.replay_from_original``). 200 with ``queued`` true or false and the
    new decision's effect and rule; 404 when the id is not a dead letter. Never content."""
    svc = request.app[SERVICES]
    operator = svc.auth.operator(request, OPERATOR_ROLES)
    reason = await read_reason(request)
    delivery_id = request.match_info["delivery_id"]
    outcome = await svc.pipeline.replay_from_original(delivery_id, reason, f"operator:{operator}")
    if outcome is None:
        raise NotFound("no dead letter with this id")
    return web.json_response(
        {
            "delivery_id": outcome.delivery_id,
            "message_id": outcome.message_id,
            "partner": outcome.recipient,
            "queued": outcome.queued,
            "state": "ready" if outcome.queued else "dead",
            "effect": outcome.effect,
            "rule": outcome.rule,
            "error": outcome.error,
        }
    )
