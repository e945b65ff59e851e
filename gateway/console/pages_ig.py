"""IG lead pages: the agreements register, the review queue, the simulator, the per-child
disclosure report and the audited content view.

Contracts:

* A child is looked up by identifier only through a POSTed form (never a URL: URLs reach
  access logs); the identifier becomes its keyed pseudonym at once and is never stored,
  logged or audited — the report lookup is audited with the pseudonym.
* Viewing a stored message's content needs the ig-lead role (the route says so) **and** a
  typed justification; the view is audited (``message.content_viewed``) before the content
  is opened, so a view that is shown is always on record.
* Review approvals and rejections need a reason and are audited by the store.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiohttp import web

from canonical import GatewayError, InvalidInput, Message
from canonical.identifiers import LOCAL_CHILD_ID, NHS_NUMBER, UPN, normalise
from consent.checks import EXPIRY_WARNING_DAYS
from gateway.api.state import SERVICES, Services
from gateway.audit import AuditEvent, AuditRecord
from gateway.console.auth import UPLOADS_KEY, current, form, page
from gateway.console.pages_ops import reads
from gateway.simulate import Outcome, simulate

MAX_REASON = 500
MIN_JUSTIFICATION = 10
MAX_SIMULATOR_BYTES = 1024 * 1024
PSEUDONYM = re.compile(r"[0-9a-f]{32}")
SYSTEMS = {NHS_NUMBER: "NHS number", UPN: "UPN", LOCAL_CHILD_ID: "Local child id"}


# -- agreements --------------------------------------------------------------------------


def agreement_status(valid_from: date, valid_until: date, today: date) -> str:
    if valid_until < today:
        return "expired"
    if valid_from > today:
        return "not-yet-in-force"
    if valid_until < today + timedelta(days=EXPIRY_WARNING_DAYS):
        return "expiring"
    return "in-force"


async def agreements(request: web.Request) -> web.StreamResponse:
    policy = request.app[SERVICES].policy.current
    today = datetime.now(UTC).date()
    rows = []
    for a in sorted(policy.agreements.values(), key=lambda a: (a.valid_until, a.id)):
        rows.append(
            {
                "id": a.id,
                "title": a.title,
                "owner": a.owner,
                "parties": sorted({p for f in a.flows for p in (*f.sources, *f.recipients)}),
                "purposes": sorted({p for f in a.flows for p in f.purposes}),
                "basis": a.lawful_basis.describe(),
                "consent_required": a.consent_required,
                "valid_from": a.valid_from.isoformat(),
                "valid_until": a.valid_until.isoformat(),
                "review_date": a.review_date.isoformat() if a.review_date else None,
                "review_overdue": bool(a.review_date and a.review_date < today),
                "status": agreement_status(a.valid_from, a.valid_until, today),
            }
        )
    return page(
        request,
        "ig_agreements.html",
        rows=rows,
        today=today.isoformat(),
        warn_days=EXPIRY_WARNING_DAYS,
        policy_version=policy.version,
    )


# -- reviews -----------------------------------------------------------------------------


async def reviews(request: web.Request) -> web.StreamResponse:
    held = await request.app[SERVICES].backend.held()
    now = datetime.now(UTC).timestamp()
    return page(request, "ig_reviews.html", rows=sorted(held, key=lambda h: h.review_deadline), now=now)


async def _resolve_review(request: web.Request, *, approve: bool) -> web.StreamResponse:
    svc = request.app[SERVICES]
    delivery_id = request.match_info["delivery_id"]
    reason = form(request).get("reason", "").strip()[:MAX_REASON]
    session = current(request)
    if not reason:
        session.flash.append(
            f"Not done: give a reason to {'approve' if approve else 'reject'} {delivery_id}."
        )
    elif await svc.backend.resolve_review(delivery_id, approve, reason, f"console:{session.user}"):
        for worker in svc.dispatcher.workers.values():
            worker.wake()
        session.flash.append(f"{delivery_id} {'approved and queued' if approve else 'rejected'}.")
    else:
        session.flash.append(f"{delivery_id} is no longer held; nothing done.")
    return web.Response(status=303, headers={"Location": "/console/ig/reviews"})


async def approve(request: web.Request) -> web.StreamResponse:
    return await _resolve_review(request, approve=True)


async def reject(request: web.Request) -> web.StreamResponse:
    return await _resolve_review(request, approve=False)


# -- simulator ---------------------------------------------------------------------------


def _formats(svc: Services) -> dict[str, str]:
    return {pid: p.delivery.format for pid, p in svc.deployment.partners.items()}


async def simulator_form(request: web.Request) -> web.StreamResponse:
    svc = request.app[SERVICES]
    return page(
        request,
        "ig_simulator.html",
        formats=sorted(svc.adapters.by_name),
        partners=sorted(svc.deployment.partners),
        chosen="canonical-json",
        source="",
        text="",
        outcomes=None,
        problems=[],
        error=None,
    )


def _run_simulation(
    svc: Services, fmt: str, body: bytes, source: str | None
) -> tuple[Message, list[Outcome]]:
    policy = svc.policy.current
    adapter = svc.adapters.by_name[fmt]
    message = adapter.parse(body, policy.dictionary)
    sender = source or message.envelope.source
    if sender not in policy.partners:
        raise LookupError("sender")
    message = message.with_envelope(source=sender)
    outcomes = simulate(
        message, policy=policy, formats=_formats(svc), adapters=svc.adapters, at=datetime.now(UTC)
    )
    return message, outcomes


async def simulator(request: web.Request) -> web.StreamResponse:
    svc = request.app[SERVICES]
    fields = form(request)
    fmt = fields.get("format", "canonical-json")
    source = fields.get("source") or None
    text = fields.get("message", "")
    upload = request[UPLOADS_KEY].get("file")
    body = text.encode()
    if upload is not None and getattr(upload, "file", None) is not None:
        uploaded: bytes = await asyncio.to_thread(upload.file.read, MAX_SIMULATOR_BYTES + 1)
        if uploaded:
            body = uploaded
    context: dict[str, Any] = {
        "formats": sorted(svc.adapters.by_name),
        "partners": sorted(svc.deployment.partners),
        "chosen": fmt,
        "source": source or "",
        "text": text,
        "outcomes": None,
        "problems": [],
        "error": None,
    }
    if fmt not in svc.adapters.by_name:
        context["error"] = "Choose one of the listed formats."
    elif not body.strip():
        context["error"] = "Paste a message or choose a file."
    elif len(body) > MAX_SIMULATOR_BYTES:
        context["error"] = f"The message is larger than {MAX_SIMULATOR_BYTES} bytes."
    else:
        try:
            message, outcomes = await asyncio.to_thread(_run_simulation, svc, fmt, body, source)
        except InvalidInput as exc:
            context["problems"] = [v.as_dict() for v in exc.violations]
            context["error"] = "The message is not valid in this format."
        except GatewayError as exc:
            context["error"] = f"The message could not be read: {exc.title}."
        except LookupError:
            context["error"] = "Say who sends it: the message names no known sender (envelope.source)."
        else:
            context["outcomes"] = [_outcome_view(o) for o in outcomes]
            context["event_type"] = message.envelope.event_type
            context["sender"] = message.envelope.source
    return page(request, "ig_simulator.html", status=200 if context["error"] is None else 422, **context)


def _outcome_view(o: Outcome) -> dict[str, Any]:
    d = o.decision.as_dict()
    payload = None
    if o.payload is not None:
        text = o.payload.decode("utf-8", "replace")
        try:
            payload = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except ValueError:
            payload = text
    return {"recipient": o.recipient, "decision": d, "payload": payload, "media_type": o.media_type}


# -- disclosure report -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Disclosure:
    message_id: str
    received_at: str
    source: str
    event_type: str
    purpose: str
    recipient: str
    effect: str
    rule: str
    agreement: str
    lawful_basis: str
    released: str
    consent: str
    delivery: str
    delivered_at: str
    decided_at: str = ""
    replay_of: str = ""
    """The dead letter a replay from the original decided again for ("" at ingest)."""

    FIELDS = (
        "message_id",
        "received_at",
        "source",
        "event_type",
        "purpose",
        "recipient",
        "effect",
        "rule",
        "agreement",
        "lawful_basis",
        "released",
        "consent",
        "delivery",
        "delivered_at",
        "decided_at",
        "replay_of",
    )

    def as_dict(self) -> dict[str, str]:
        return {f: getattr(self, f) for f in self.FIELDS}


DELIVERY_KINDS = {
    "delivery.succeeded": "delivered",
    "delivery.dead_lettered": "dead-letter",
    "delivery.replayed": "replayed",
    "delivery.replayed_from_original": "replayed from the original",
    "delivery.discarded": "discarded",
    "delivery.withdrawn": "withdrawn",
    "review.approved": "approved",
    "review.rejected": "rejected",
}


def disclosures_of(records: list[AuditRecord]) -> list[Disclosure]:
    """One row per recipient decision of one message, from its audit records: the decision
    at ingest and each one a replay from the original made (``replay_of`` names its dead
    letter), each with its time. ``delivery`` is the recipient's latest delivery state."""
    received = next((r for r in records if r.kind == "message.received"), None)
    if received is None:
        return []
    last: dict[str, tuple[str, str]] = {}
    for r in records:
        if r.kind in DELIVERY_KINDS and r.partner:
            last[r.partner] = (DELIVERY_KINDS[r.kind], r.at if r.kind == "delivery.succeeded" else "")
    delivered_at = {r.partner: r.at for r in records if r.kind == "delivery.succeeded" and r.partner}
    rows = []
    for r in records:
        if r.kind != "decision.made":
            continue
        d = r.data
        recipient = str(d.get("recipient") or r.partner or "")
        state = last.get(recipient, ("queued" if d.get("effect") == "permit" else "—", ""))[0]
        if d.get("effect") == "review" and recipient not in last:
            state = "held for review"
        rows.append(
            Disclosure(
                message_id=r.message_id or "",
                received_at=received.at,
                source=received.partner or "",
                event_type=str(received.data.get("event_type", "")),
                purpose=str(received.data.get("purpose", "")),
                recipient=recipient,
                effect=str(d.get("effect", "")),
                rule=str(d.get("rule", "")),
                agreement=str(d.get("agreement") or ""),
                lawful_basis=str(d.get("lawful_basis") or ""),
                released=" ".join(str(c) for c in d.get("released", []) or []),
                consent=str(d.get("consent", "")),
                delivery=state,
                delivered_at=delivered_at.get(recipient, ""),
                decided_at=r.at,
                replay_of=str(d.get("replay_of") or ""),
            )
        )
    return rows


async def disclosures_form(request: web.Request) -> web.StreamResponse:
    return page(
        request, "ig_disclosures.html", systems=SYSTEMS, system=NHS_NUMBER, rows=None, error=None, subject=""
    )


async def disclosures(request: web.Request) -> web.StreamResponse:
    svc = request.app[SERVICES]
    fields = form(request)
    system = fields.get("system", "")
    value = fields.get("value", "").strip()
    export = fields.get("export", "html")
    # The results page's export buttons send the pseudonym, so the identifier is not echoed.
    given = fields.get("subject", "")
    if system in SYSTEMS and not value and PSEUDONYM.fullmatch(given):
        subject = given
    elif system not in SYSTEMS or not value:
        return page(
            request,
            "ig_disclosures.html",
            status=422,
            systems=SYSTEMS,
            system=system if system in SYSTEMS else NHS_NUMBER,
            rows=None,
            subject="",
            error="Choose the identifier's kind and type the identifier.",
        )
    else:
        typed = normalise(system, value) if system in (NHS_NUMBER, UPN) else value
        subject = svc.keyring.pseudonym(f"{system}:{typed}")
    store = reads(svc)
    rows: list[Disclosure] = []
    for message_id in await store.messages_about(subject, 1000):
        rows.extend(disclosures_of(await store.audit_for_message(message_id)))
    await svc.backend.append_audit(
        [
            AuditEvent(
                "console.disclosure_report",
                {"subject": subject, "system": system, "rows": len(rows), "export": export},
                actor=f"console:{current(request).user}",
            )
        ]
    )
    if export == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=Disclosure.FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow(row.as_dict())
        return _download(out.getvalue().encode(), "text/csv", "disclosures.csv")
    if export == "json":
        doc = {"subject_pseudonym": subject, "system": system, "disclosures": [r.as_dict() for r in rows]}
        return _download(json.dumps(doc, indent=2).encode(), "application/json", "disclosures.json")
    return page(
        request, "ig_disclosures.html", systems=SYSTEMS, system=system, rows=rows, error=None, subject=subject
    )


def _download(body: bytes, content_type: str, name: str) -> web.Response:
    response = web.Response(body=body, content_type=content_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


# -- content view ------------------------------------------------------------------------


async def content_form(request: web.Request) -> web.StreamResponse:
    message_id = request.match_info["message_id"]
    return page(request, "ig_content.html", message_id=message_id, content=None, error=None)


async def content(request: web.Request) -> web.StreamResponse:
    svc = request.app[SERVICES]
    message_id = request.match_info["message_id"]
    justification = form(request).get("justification", "").strip()[:MAX_REASON]
    if len(justification) < MIN_JUSTIFICATION:
        return page(
            request,
            "ig_content.html",
            status=422,
            message_id=message_id,
            content=None,
            error=f"Say why you need to read this message (at least {MIN_JUSTIFICATION} characters).",
        )
    sealed = await reads(svc).load_canonical(message_id)
    if sealed is None:
        return page(
            request, "error.html", status=404, title="No such message", detail="No message has this id."
        )
    user = current(request).user
    # Audited first: a content view that reaches the screen is always on record.
    await svc.backend.append_audit(
        [
            AuditEvent(
                "message.content_viewed",
                {"justification": justification, "role": current(request).role},
                message_id=message_id,
                actor=f"console:{user}",
            )
        ]
    )
    plain = await asyncio.to_thread(svc.keyring.open, sealed, message_id)
    text = json.dumps(json.loads(plain), indent=2, ensure_ascii=False)
    return page(request, "ig_content.html", message_id=message_id, content=text, error=None)
