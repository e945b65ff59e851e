"""The console's pages over real HTTP on loopback: what operators and IG leads see and do,
each action audited, empty lists and a store that is down shown sensibly."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterator, Mapping, MutableMapping
from typing import Any

import pytest
import structlog

from gateway.audit import AuditRecord
from gateway.testing import RecordingReceiver
from tests.conftest import GatewayFactory, RunningGateway
from tests.console.support import ConsoleClient, start_console_gateway
from tests.support import (
    CSC,
    EXAMPLE,
    POLICE,
    SCHOOL,
    auth,
    body,
    eventually,
    message_for_child,
    valid_nhs_numbers,
)


async def send(gw: RunningGateway, child: str, seq: int = 0) -> str:
    doc = message_for_child(child, seq, recipients=[SCHOOL])
    async with gw.http.post(gw.url("/v1/messages"), data=body(doc), headers=auth(POLICE)) as r:
        assert r.status == 202, await r.text()
        return str((await r.json())["message_id"])


async def audit(gw: RunningGateway, kind: str) -> list[AuditRecord]:
    return [r async for r in gw.services.backend.audit_records() if r.kind == kind]


async def dead_count(gw: RunningGateway, partner: str) -> int:
    return len(await gw.services.backend.dead_letters(partner, 100))


@pytest.fixture
async def gw(start_gateway: GatewayFactory) -> RunningGateway:
    return await start_console_gateway(start_gateway)


@pytest.fixture
async def operator(gw: RunningGateway) -> AsyncIterator[ConsoleClient]:
    c = ConsoleClient.open(gw.base)
    assert await c.sign_in("demo-operator") == 303
    yield c
    await c.close()


@pytest.fixture
async def ig_lead(gw: RunningGateway) -> AsyncIterator[ConsoleClient]:
    c = ConsoleClient.open(gw.base)
    assert await c.sign_in("demo-ig-lead") == 303
    yield c
    await c.close()


def row_of(page: str, partner: str) -> str:
    found = re.search(rf'<tr data-partner="{re.escape(partner)}">(.*?)</tr>', page, re.S)
    assert found, partner
    return found.group(1)


def field(row: str, name: str) -> str:
    found = re.search(rf'data-field="{name}">(.*?)</td>', row, re.S)
    assert found, name
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


class TestOperatorQueues:
    async def test_backlog_grows_while_a_partner_is_down_then_a_dead_letter_is_replayed(
        self, gw: RunningGateway, operator: ConsoleClient, receiver: RecordingReceiver
    ) -> None:
        # Given social care's endpoint is down
        receiver.set_behaviour(CSC, status=503)
        children = valid_nhs_numbers(3)
        ids = [await send(gw, child) for child in children]

        # Then the overview and its polled fragment show the dead letters growing
        async def all_dead() -> bool:
            return await dead_count(gw, CSC) == len(ids)

        await eventually(all_dead, timeout=20)
        status, page, _ = await operator.get("/console/ops/queues")
        assert status == 200
        assert field(row_of(page, CSC), "dead") == "3"
        status, page, _ = await operator.get("/console/ops")
        assert status == 200
        assert 'data-poll="/console/ops/queues"' in page
        assert "<svg" in page

        # And the dead letters page lists them with the last error
        status, page, _ = await operator.get(f"/console/ops/dead-letters?partner={CSC}")
        assert page.count('<tr data-delivery="') == 3
        assert "http-503" in page
        first = (await gw.services.backend.dead_letters(CSC, 10))[0]

        # When the operator replays one without a reason, nothing happens
        await operator.post(f"/console/ops/dead-letters/{first.delivery_id}/replay", {"reason": " "})
        assert await dead_count(gw, CSC) == 3
        status, page, _ = await operator.get("/console/ops/dead-letters")
        assert "give a reason" in page

        # After recovery, a replay with a reason is audited with the console user and delivered
        receiver.set_behaviour(CSC, status=200)
        status, _, _resp = await operator.post(
            f"/console/ops/dead-letters/{first.delivery_id}/replay", {"reason": "endpoint fixed (INC-1)"}
        )
        assert status == 303
        await receiver.wait_for(lambda: first.message_id in receiver.unique(CSC), timeout=10)
        [replayed] = await audit(gw, "delivery.replayed")
        assert (replayed.actor, replayed.data["reason"]) == (
            "console:demo-operator",
            "endpoint fixed (INC-1)",
        )

        # And a bulk retry replays the rest of that partner's dead letters
        await operator.get("/console/ops/dead-letters")
        await operator.post(
            "/console/ops/dead-letters/retry-partner", {"partner": CSC, "reason": "after outage"}
        )
        await receiver.wait_for(lambda: set(ids) <= set(receiver.unique(CSC)), timeout=10)
        assert len(await audit(gw, "delivery.replayed")) == 3
        assert await dead_count(gw, CSC) == 0

    async def test_discard_needs_a_reason_and_is_audited(
        self, gw: RunningGateway, operator: ConsoleClient, receiver: RecordingReceiver
    ) -> None:
        receiver.set_behaviour(CSC, status=400)  # permanent: dead at once
        await send(gw, valid_nhs_numbers(1)[0])

        async def dead() -> bool:
            return await dead_count(gw, CSC) == 1

        await eventually(dead, timeout=10)
        [letter] = await gw.services.backend.dead_letters(CSC, 10)
        await operator.get("/console/ops/dead-letters")
        await operator.post(
            f"/console/ops/dead-letters/{letter.delivery_id}/discard", {"reason": "duplicate"}
        )
        [discarded] = await audit(gw, "delivery.discarded")
        assert discarded.actor == "console:demo-operator"
        assert discarded.data["reason"] == "duplicate"

    async def test_replay_from_the_original_needs_a_reason_and_shows_only_the_outcome(
        self, gw: RunningGateway, operator: ConsoleClient, receiver: RecordingReceiver
    ) -> None:
        receiver.set_behaviour(CSC, status=400)  # permanent: dead at once
        await send(gw, valid_nhs_numbers(1)[0])

        async def dead() -> bool:
            return await dead_count(gw, CSC) == 1

        await eventually(dead, timeout=10)
        [letter] = await gw.services.backend.dead_letters(CSC, 10)
        status, page, _ = await operator.get("/console/ops/dead-letters")
        assert status == 200
        assert f'formaction="/console/ops/dead-letters/{letter.delivery_id}/replay-original"' in page
        assert "Replay from the original" in page
        # Without a reason nothing happens
        path = f"/console/ops/dead-letters/{letter.delivery_id}/replay-original"
        await operator.post(path, {"reason": " "})
        assert await dead_count(gw, CSC) == 1
        _, page, _ = await operator.get("/console/ops/dead-letters")
        assert "Not done: give a reason to replay" in page
        # With one (and the partner recovered) it is decided again, queued and delivered
        receiver.set_behaviour(CSC, status=200)
        await operator.post(path, {"reason": "format changed (CHG-7)"})
        await receiver.wait_for(lambda: len(receiver.for_partner(CSC)) == 1, timeout=10)
        [replayed] = await audit(gw, "delivery.replayed_from_original")
        assert (replayed.actor, replayed.data["reason"]) == (
            "console:demo-operator",
            "format changed (CHG-7)",
        )
        _, page, _ = await operator.get("/console/ops/dead-letters")
        notice = re.search(r'<p class="notice" role="status">(.*?)</p>', page, re.S)
        assert notice is not None
        assert notice.group(1).startswith(
            f"{letter.delivery_id} replayed from the original: decided again (permit"
        )

    async def test_replay_from_the_original_says_why_nothing_was_queued(
        self, gw: RunningGateway, operator: ConsoleClient, receiver: RecordingReceiver
    ) -> None:
        receiver.set_behaviour(CSC, status=400)  # permanent: dead at once
        await send(gw, valid_nhs_numbers(1)[0])

        async def dead() -> bool:
            return await dead_count(gw, CSC) == 1

        await eventually(dead, timeout=10)
        [letter] = await gw.services.backend.dead_letters(CSC, 10)
        # Every agreement has expired since (the policy reloaded by the IG lead's API)
        agreements = gw.config_dir / "agreements.yaml"
        agreements.write_text(
            re.sub(r'valid_until: "[0-9-]+"', 'valid_until: "2026-01-01"', agreements.read_text())
            .replace('valid_from: "2025-11-07"', 'valid_from: "2025-01-01"')
            .replace('valid_from: "2025-09-01"', 'valid_from: "2025-01-01"')
        )
        reload_headers = {"Authorization": "Bearer test-ig-lead-token"}
        async with gw.http.post(gw.url("/v1/admin/policy/reload"), headers=reload_headers) as r:
            assert r.status == 200, await r.text()
        await operator.get("/console/ops/dead-letters")
        await operator.post(
            f"/console/ops/dead-letters/{letter.delivery_id}/replay-original", {"reason": "format changed"}
        )
        _, page, _ = await operator.get("/console/ops/dead-letters")
        assert f"{letter.delivery_id} not queued: the current decision is deny (" in page
        assert await dead_count(gw, CSC) == 1
        assert await audit(gw, "delivery.replayed_from_original") == []

    async def test_empty_lists_say_so(self, gw: RunningGateway, operator: ConsoleClient) -> None:
        for path, text in (
            ("/console/ops/dead-letters", "No dead letters"),
            ("/console/ops/rejections", "No rejected inputs on record"),
            ("/console/ops/messages?source=police-northshire", "No messages match"),
        ):
            status, page, _ = await operator.get(path)
            assert status == 200, path
            assert text in page, path


class TestOperatorMessages:
    async def test_search_and_timeline(
        self, gw: RunningGateway, operator: ConsoleClient, receiver: RecordingReceiver
    ) -> None:
        message_id = await send(gw, valid_nhs_numbers(1)[0])
        await receiver.wait_for(lambda: message_id in receiver.unique(SCHOOL), timeout=10)

        async def delivered() -> bool:
            return len(await audit(gw, "delivery.succeeded")) >= 2

        await eventually(delivered, timeout=10)
        for query in (
            f"id={message_id}",
            f"source={POLICE}",
            f"recipient={SCHOOL}&status=delivered",
            "event_type=police.domestic-abuse-incident",
        ):
            status, page, _ = await operator.get(f"/console/ops/messages?{query}")
            assert status == 200, query
            assert message_id in page, query
        status, page, _ = await operator.get(f"/console/ops/messages?source={SCHOOL}")
        assert message_id not in page
        status, page, _ = await operator.get(f"/console/ops/messages/{message_id}")
        assert status == 200
        order = [k for k in ("message.received", "decision.made", "delivery.succeeded") if k in page]
        assert order == ["message.received", "decision.made", "delivery.succeeded"]
        assert page.index("message.received") < page.index("decision.made") < page.index("delivery.succeeded")
        status, _, _ = await operator.get("/console/ops/messages/msg_NOSUCHMESSAGE")
        assert status == 404

    async def test_rejections_are_counted_by_partner_and_rule_without_content(
        self, gw: RunningGateway, operator: ConsoleClient
    ) -> None:
        doc = message_for_child("9990000019")  # a wrong NHS number check digit
        doc["people"][0]["name"]["family"] = "Rejected-Canary"
        for _ in range(2):
            async with gw.http.post(gw.url("/v1/messages"), data=body(doc), headers=auth(POLICE)) as r:
                assert r.status == 422
        status, page, _ = await operator.get("/console/ops/rejections")
        assert status == 200
        assert "nhs-number-check-digit" in page
        assert POLICE in page
        assert re.search(r'<td class="num">2</td>', page)
        assert "Rejected-Canary" not in page
        assert "9990000019" not in page


class TestStoreDown:
    async def test_pages_say_the_store_is_not_answering_and_readyz_fails(
        self, gw: RunningGateway, operator: ConsoleClient
    ) -> None:
        await gw.services.backend.close()
        status, page, _ = await operator.get("/console/ops")
        assert status == 503
        assert "store is not answering" in page
        status, page, _ = await operator.get("/console/ops/dead-letters")
        assert status == 503
        async with gw.http.get(gw.url("/readyz")) as r:
            assert r.status == 503
        await gw.services.backend.open()  # so the fixture's shutdown closes it cleanly


class TestIgPages:
    async def test_agreements_register_highlights_validity(
        self, gw: RunningGateway, ig_lead: ConsoleClient
    ) -> None:
        status, page, _ = await ig_lead.get("/console/ig/agreements")
        assert status == 200
        ids = re.findall(r'data-agreement="([^"]+)"', page)
        assert "northshire-operation-encompass" in ids
        assert all(
            s in {"in-force", "expiring", "expired", "not-yet-in-force"}
            for s in re.findall(r"badge-([a-z-]+)", page)
        )

    async def test_review_queue_approve_with_a_reason(
        self, gw: RunningGateway, ig_lead: ConsoleClient, receiver: RecordingReceiver
    ) -> None:
        _, page, _ = await ig_lead.get("/console/ig/reviews")
        assert "Nothing is waiting for review" in page
        referral = (EXAMPLE / "messages" / "early-help-referral.json").read_bytes()
        async with gw.http.post(gw.url("/v1/messages"), data=referral, headers=auth(SCHOOL)) as r:
            assert r.status == 202
        _status, page, _ = await ig_lead.get("/console/ig/reviews")
        [delivery_id] = re.findall(r'<tr class="[^"]*" data-delivery="([^"]+)"', page)
        assert "consent-unknown" in page
        assert "Riley" not in page
        await ig_lead.post(
            f"/console/ig/reviews/{delivery_id}/approve", {"reason": "verbal consent confirmed"}
        )
        await receiver.wait_for(lambda: len(receiver.for_partner(CSC)) == 1, 10)
        [approved] = await audit(gw, "review.approved")
        assert approved.actor == "console:demo-ig-lead"

    async def test_simulator_shows_each_recipient_and_the_school_gets_no_narrative(
        self, gw: RunningGateway, ig_lead: ConsoleClient
    ) -> None:
        message = (EXAMPLE / "messages" / "domestic-abuse-incident.json").read_text()
        await ig_lead.get("/console/ig/simulator")
        status, page, _ = await ig_lead.post(
            "/console/ig/simulator", {"format": "canonical-json", "source": POLICE, "message": message}
        )
        assert status == 200, page[:2000]
        sections = dict(
            re.findall(r'<section class="outcome[^"]*" data-recipient="([^"]+)"(.*?)</section>', page, re.S)
        )
        assert {SCHOOL, CSC} <= set(sections)
        released = re.search(r'class="released">(.*?)</dd>', sections[SCHOOL], re.S)
        assert released
        assert "event.summary" in released.group(1)
        assert "event.narrative" not in released.group(1)
        assert "event.narrative" in sections[SCHOOL]  # named among the withheld, with its reason
        assert not await audit(gw, "message.received"), "the simulator stores nothing"

    async def test_simulator_explains_invalid_input(self, gw: RunningGateway, ig_lead: ConsoleClient) -> None:
        await ig_lead.get("/console/ig/simulator")
        status, page, _ = await ig_lead.post(
            "/console/ig/simulator",
            {"format": "canonical-json", "source": POLICE, "message": '{"envelope": {}}'},
        )
        assert status == 422
        assert "not valid" in page

    async def test_disclosure_report_lists_a_delivery_and_exports(
        self, gw: RunningGateway, ig_lead: ConsoleClient, receiver: RecordingReceiver
    ) -> None:
        child, other = valid_nhs_numbers(2)
        message_id = await send(gw, child)
        await send(gw, other)
        await receiver.wait_for(lambda: message_id in receiver.unique(SCHOOL), timeout=10)

        async def delivered() -> bool:
            return any(
                r.message_id == message_id and r.partner == SCHOOL
                for r in await audit(gw, "delivery.succeeded")
            )

        await eventually(delivered, timeout=10)
        await ig_lead.get("/console/ig/disclosures")
        status, page, _ = await ig_lead.post(
            "/console/ig/disclosures", {"system": "nhs-number", "value": child}
        )
        assert status == 200
        assert message_id in page
        assert "delivered" in page
        assert child not in page, "the report does not echo the identifier"
        status, text, resp = await ig_lead.post(
            "/console/ig/disclosures", {"system": "nhs-number", "value": child, "export": "csv"}
        )
        assert resp.headers["Content-Type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(text)))
        school = [r for r in rows if r["recipient"] == SCHOOL]
        assert school
        assert school[0]["delivery"] == "delivered"
        assert school[0]["agreement"]
        assert {r["message_id"] for r in rows} == {message_id}
        status, text, _ = await ig_lead.post(
            "/console/ig/disclosures", {"system": "nhs-number", "value": child, "export": "json"}
        )
        doc = json.loads(text)
        assert {d["message_id"] for d in doc["disclosures"]} == {message_id}
        reports = await audit(gw, "console.disclosure_report")
        assert len(reports) == 3
        assert all(child not in json.dumps(r.data) for r in reports)
        status, page, _ = await ig_lead.post(
            "/console/ig/disclosures", {"system": "upn", "value": "A999000000000"}
        )
        assert "Nothing on record about this child" in page

    async def test_content_view_needs_a_justification_and_is_audited(
        self, gw: RunningGateway, ig_lead: ConsoleClient
    ) -> None:
        message_id = await send(gw, valid_nhs_numbers(1)[0])
        url = f"/console/ig/messages/{message_id}/content"
        status, page, _ = await ig_lead.get(url)
        assert status == 200
        assert 'name="justification"' in page
        status, page, _ = await ig_lead.post(url, {"justification": "short"})
        assert status == 422
        assert "Example Street" not in page
        assert not await audit(gw, "message.content_viewed")
        status, page, _ = await ig_lead.post(url, {"justification": "Section 47 enquiry strategy meeting"})
        assert status == 200
        assert "Example Street" in page
        [viewed] = await audit(gw, "message.content_viewed")
        assert (viewed.message_id, viewed.actor) == (message_id, "console:demo-ig-lead")
        assert viewed.data["justification"] == "Section 47 enquiry strategy meeting"


class TestRequestId:
    async def test_request_id_is_echoed_or_generated_and_bound_into_pipeline_logs(
        self, gw: RunningGateway
    ) -> None:
        captured: list[dict[str, object]] = []

        def capture(_: object, __: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
            captured.append(dict(event))
            raise structlog.DropEvent

        structlog.configure(processors=[structlog.contextvars.merge_contextvars, capture])
        doc = message_for_child(valid_nhs_numbers(1)[0])
        headers = {**auth(POLICE), "X-Request-Id": "req-test-0001"}
        async with gw.http.post(gw.url("/v1/messages"), data=body(doc), headers=headers) as r:
            assert r.status == 202
            assert r.headers["X-Request-Id"] == "req-test-0001"
            message_id = (await r.json())["message_id"]
        async with gw.http.get(gw.url("/healthz"), headers={"X-Request-Id": "bad id with spaces"}) as r:
            generated = r.headers["X-Request-Id"]
        assert re.fullmatch(r"[0-9a-f]{32}", generated)
        mine = [e for e in captured if e.get("request_id") == "req-test-0001"]
        assert any(e.get("message_id") == message_id for e in mine), captured
