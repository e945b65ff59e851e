"""Operator pages: queues, messages and their timelines, dead letters, rejected inputs.

Contracts: metadata only. Nothing here opens a sealed payload or shows a value from a
message: ids, partner ids, event types, states, counts, ages, error codes and rule names.
Replay, replay from the original, discard and bulk retry require a typed reason, are
audited by the store in the same transaction, and name the console user as the actor. A
replay from the original answers with the new decision's outcome and ids only: the operator
never sees the rebuilt payload.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gateway.api.state import SERVICES, Services
from gateway.audit import AuditRecord
from gateway.console.auth import current, form, page
from gateway.console.charts import sparkline
from gateway.console.state import CONSOLE
from gateway.store.base import ConsoleReads, DeliveryState, MessageQuery, QueueStats

MAX_REASON = 500
TIMELINE_FIELDS = (
    "event_type",
    "purpose",
    "adapter",
    "candidates",
    "effect",
    "rule",
    "agreement",
    "released",
    "delivery_id",
    "attempt",
    "attempts",
    "error",
    "last_error",
    "permanent",
    "reason",
    "status",
    "rules",
)
"""Audit data fields an operator may see on a timeline: ids, rules and codes only."""
REJECTION_KINDS = ("message.rejected",)


def reads(svc: Services) -> ConsoleReads:
    if not isinstance(svc.backend, ConsoleReads):
        raise TypeError("this store backend does not provide the console's queries")
    return svc.backend


def counter_totals(svc: Services, result: str) -> dict[str, float]:
    """Per-partner totals of ``gateway_deliveries{result=...}`` since start-up (with a delivery
    process, its counts are added to this process's)."""
    reg = svc.metrics.registry
    remote = svc.dispatcher.remote_delivery_totals(result)
    out: dict[str, float] = {}
    for pid in svc.deployment.partners:
        value = reg.get_sample_value("gateway_deliveries_total", {"recipient": pid, "result": result})
        out[pid] = (value or 0.0) + remote.get(pid, 0.0)
    return out


async def take_sample(app: web.Application) -> None:
    svc = app[SERVICES]
    stats = await svc.backend.stats()
    app[CONSOLE].samples.record(
        stats,
        sorted(svc.deployment.partners),
        counter_totals(svc, "delivered"),
        {
            pid: a + b
            for (pid, a), b in zip(
                counter_totals(svc, "failed").items(), counter_totals(svc, "dead").values(), strict=True
            )
        },
    )


def _rows(app: web.Application, stats: Sequence[QueueStats]) -> list[dict[str, Any]]:
    svc = app[SERVICES]
    samples = app[CONSOLE].samples
    by = {s.recipient: s for s in stats}
    rows = []
    for pid, partner in sorted(svc.deployment.partners.items()):
        s = by.get(pid)
        worker = svc.dispatcher.workers.get(pid)
        delivered_pm, failed_pm = samples.per_minute(pid)
        series = samples.series(pid)
        rows.append(
            {
                "partner": pid,
                "mode": partner.delivery.mode,
                "ready": s.ready if s else 0,
                "in_flight": s.leased if s else 0,
                "dead": s.dead if s else 0,
                "held": s.held if s else 0,
                "oldest": s.oldest_ready_age_seconds if s else 0.0,
                "circuit": worker.circuit.state.value if worker else "pull",
                "delivered_pm": delivered_pm,
                "failed_pm": failed_pm,
                "depth_chart": sparkline(
                    [x.ready + x.in_flight for x in series], label=f"{pid} backlog, last hour"
                ),
                "age_chart": sparkline([x.oldest_age for x in series], label=f"{pid} oldest age, last hour"),
            }
        )
    return rows


async def overview(request: web.Request) -> web.StreamResponse:
    stats = await request.app[SERVICES].backend.stats()
    return page(
        request,
        "ops_overview.html",
        rows=_rows(request.app, stats),
        interval=request.app[CONSOLE].samples.interval,
    )


async def queues_fragment(request: web.Request) -> web.StreamResponse:
    """The overview's table body alone, for the page's short polling."""
    stats = await request.app[SERVICES].backend.stats()
    return page(request, "_queues.html", rows=_rows(request.app, stats))


def _epoch(text: str | None) -> float | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


async def messages(request: web.Request) -> web.StreamResponse:
    svc = request.app[SERVICES]
    q = request.query
    status = q.get("status") or None
    if status is not None and status not in {s.value for s in DeliveryState}:
        status = None
    query = MessageQuery(
        message_id=q.get("id") or None,
        source=q.get("source") or None,
        recipient=q.get("recipient") or None,
        event_type=q.get("event_type") or None,
        status=status,
        since=_epoch(q.get("since")),
        until=_epoch(q.get("until")),
        limit=100,
    )
    found = await reads(svc).search_messages(query)
    return page(
        request,
        "ops_messages.html",
        found=found,
        q={k: q.get(k, "") for k in ("id", "source", "recipient", "event_type", "status", "since", "until")},
        partners=sorted(svc.deployment.partners),
        event_types=_event_types(svc),
        states=[s.value for s in DeliveryState],
    )


def _event_types(svc: Services) -> list[str]:
    policy = svc.policy.current
    named = {e for a in policy.agreements.values() for f in a.flows for e in f.event_types}
    return sorted(named | set(policy.routes))


def timeline_entry(rec: AuditRecord) -> dict[str, Any]:
    data: Mapping[str, Any] = rec.data
    shown = {k: data[k] for k in TIMELINE_FIELDS if k in data and data[k] not in (None, [], "")}
    return {
        "seq": rec.seq,
        "at": rec.at,
        "kind": rec.kind,
        "partner": rec.partner,
        "actor": rec.actor,
        **{"data": shown},
    }


async def message(request: web.Request) -> web.StreamResponse:
    svc = request.app[SERVICES]
    message_id = request.match_info["message_id"]
    status = await svc.backend.message_status(message_id)
    if status is None:
        return page(
            request, "error.html", status=404, title="No such message", detail="No message has this id."
        )
    records = await reads(svc).audit_for_message(message_id)
    return page(
        request,
        "ops_message.html",
        status_=status,
        timeline=[timeline_entry(r) for r in records],
        content_allowed=current(request).role == "ig-lead",
    )


async def dead_letters(request: web.Request) -> web.StreamResponse:
    svc = request.app[SERVICES]
    partner = request.query.get("partner") or None
    if partner is not None and partner not in svc.deployment.partners:
        partner = None
    rows = await svc.backend.dead_letters(partner, 500)
    return page(
        request,
        "ops_dead_letters.html",
        rows=rows,
        partner=partner or "",
        partners=sorted(svc.deployment.partners),
    )


def _reason(request: web.Request) -> str | None:
    reason = form(request).get("reason", "").strip()
    return reason[:MAX_REASON] if reason else None


def _back(request: web.Request, notice: str, partner: str | None = None) -> web.Response:
    current(request).flash.append(notice)
    target = "/console/ops/dead-letters" + (f"?partner={partner}" if partner else "")
    return web.Response(status=303, headers={"Location": target})


def _wake(svc: Services) -> None:
    for worker in svc.dispatcher.workers.values():
        worker.wake()


async def _resolve(request: web.Request, *, replay: bool) -> web.StreamResponse:
    svc = request.app[SERVICES]
    reason = _reason(request)
    delivery_id = request.match_info["delivery_id"]
    partner = form(request).get("partner") or None
    if reason is None:
        return _back(
            request, f"Not done: give a reason to {'replay' if replay else 'discard'} {delivery_id}.", partner
        )
    actor = f"console:{current(request).user}"
    action = svc.backend.replay if replay else svc.backend.discard
    if not await action(delivery_id, reason, actor):
        return _back(request, f"{delivery_id} is no longer a dead letter; nothing done.", partner)
    _wake(svc)
    return _back(request, f"{delivery_id} {'replayed' if replay else 'discarded'}.", partner)


async def replay(request: web.Request) -> web.StreamResponse:
    return await _resolve(request, replay=True)


async def discard(request: web.Request) -> web.StreamResponse:
    return await _resolve(request, replay=False)


async def replay_original(request: web.Request) -> web.StreamResponse:
    """Rebuild the dead letter from the stored original under the current policy and consent
    (``Pipeline.replay_from_original``); the notice names the outcome, never content."""
    svc = request.app[SERVICES]
    reason = _reason(request)
    delivery_id = request.match_info["delivery_id"]
    partner = form(request).get("partner") or None
    if reason is None:
        return _back(request, f"Not done: give a reason to replay {delivery_id} from the original.", partner)
    outcome = await svc.pipeline.replay_from_original(delivery_id, reason, f"console:{current(request).user}")
    if outcome is None:
        return _back(request, f"{delivery_id} is no longer a dead letter; nothing done.", partner)
    if outcome.queued:
        _wake(svc)
        notice = (
            f"{delivery_id} replayed from the original:"
            f" decided again ({outcome.effect}, {outcome.rule}), queued."
        )
    elif outcome.error is not None:
        notice = (
            f"{delivery_id} not queued: rendering failed again ({outcome.error}); it stays a dead letter."
        )
    else:
        notice = (
            f"{delivery_id} not queued: the current decision is {outcome.effect} ({outcome.rule});"
            " it stays a dead letter."
        )
    return _back(request, notice, partner)


async def retry_partner(request: web.Request) -> web.StreamResponse:
    """Replay every dead letter of one partner (after its outage), each audited."""
    svc = request.app[SERVICES]
    partner = form(request).get("partner", "")
    reason = _reason(request)
    if partner not in svc.deployment.partners:
        return _back(request, "Not done: choose a partner.")
    if reason is None:
        return _back(request, f"Not done: give a reason to retry {partner}'s dead letters.", partner)
    actor = f"console:{current(request).user}"
    done = 0
    for letter in await svc.backend.dead_letters(partner, 10_000):
        done += bool(await svc.backend.replay(letter.delivery_id, reason, actor))
    _wake(svc)
    return _back(request, f"{done} dead letter(s) of {partner} replayed.", partner)


async def rejections(request: web.Request) -> web.StreamResponse:
    svc = request.app[SERVICES]
    records = await reads(svc).recent_audit(REJECTION_KINDS, 5000)
    per: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in records:
        for rule in rec.data.get("rules", []) or ["unknown"]:
            key = (rec.partner or "unknown", str(rule))
            row = per.setdefault(
                key, {"partner": key[0], "rule": key[1], "count": 0, "last": rec.at, "statuses": set()}
            )
            row["count"] += 1
            row["statuses"].add(str(rec.data.get("status", "")))
    rows = sorted(per.values(), key=lambda r: (r["partner"], -r["count"], r["rule"]))
    return page(request, "ops_rejections.html", rows=rows, scanned=len(records))
