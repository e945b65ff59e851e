"""Bad input at the HTTP edge: each case gets a precise problem+json, nothing is stored,
and the rejection is counted in metrics. Authentication and idempotency too."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import GatewayFactory, RunningGateway
from tests.support import CANONICAL, CSC, POLICE, SCHOOL, TOKENS, auth, body, sample_message


async def stored_messages(gw: RunningGateway) -> int:
    rows = await gw.services.backend._read("SELECT COUNT(*) FROM messages")  # type: ignore[attr-defined]
    count: int = rows[0][0]
    return count


async def metric(gw: RunningGateway, name: str, **labels: str) -> float:
    async with gw.http.get(gw.url("/metrics")) as r:
        text = await r.text()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def mutated(fn: Any) -> bytes:
    doc = sample_message()
    fn(doc)
    return body(doc)


class TestBadInput:
    @pytest.mark.parametrize(
        ("data", "headers", "status", "field", "rule"),
        [
            (b"{oops", {}, 422, "/", "json-syntax"),
            (body(sample_message()), {"Content-Type": "text/plain"}, 415, "/", "content-type"),
            (b"x" * 300_000, {}, 413, "/", "max-body-bytes"),
            (mutated(lambda d: d["envelope"].pop("occurred_at")), {}, 422, "/envelope", "required"),
            (
                mutated(lambda d: d["envelope"].update(event_type="police.made-up")),
                {},
                422,
                "/envelope/event_type",
                "known-event-type",
            ),
            (
                mutated(lambda d: d["envelope"].update(recipients=["ghost-partner"])),
                {},
                422,
                "/envelope/recipients/0",
                "known-partner",
            ),
            (
                mutated(lambda d: d["people"][0]["identifiers"][0].update(value="9434765871")),
                {},
                422,
                "/people/0/identifiers/0/value",
                "nhs-number-check-digit",
            ),
        ],
    )
    async def test_rejected_precisely_nothing_stored_and_counted(
        self,
        gateway: RunningGateway,
        data: bytes,
        headers: dict[str, str],
        status: int,
        field: str,
        rule: str,
    ) -> None:
        before = await metric(gateway, "gateway_messages_rejected_total", source=POLICE, rule=rule)
        async with gateway.http.post(
            gateway.url("/v1/messages"), data=data, headers={**auth(POLICE), **headers}
        ) as r:
            assert r.status == status
            assert r.content_type == "application/problem+json"
            problem = await r.json()
        assert problem["status"] == status
        assert {"field": field, "rule": rule} in [
            {"field": e["field"], "rule": e["rule"]} for e in problem["errors"]
        ]
        assert await stored_messages(gateway) == 0
        assert (
            await metric(gateway, "gateway_messages_rejected_total", source=POLICE, rule=rule) == before + 1
        )

    async def test_an_error_never_echoes_the_value(self, gateway: RunningGateway) -> None:
        canary = "CANARY-9f1e-refuge-lane"
        data = mutated(lambda d: d["people"][0].update(birth_date=canary, sex=canary))
        async with gateway.http.post(gateway.url("/v1/messages"), data=data, headers=auth(POLICE)) as r:
            assert r.status == 422
            assert canary not in await r.text()

    async def test_source_must_be_the_authenticated_partner(self, gateway: RunningGateway) -> None:
        data = mutated(lambda d: d["envelope"].update(source=CSC))
        async with gateway.http.post(gateway.url("/v1/messages"), data=data, headers=auth(POLICE)) as r:
            assert r.status == 403
        assert await stored_messages(gateway) == 0


class TestAuthentication:
    async def test_unknown_or_missing_token_is_401(self, gateway: RunningGateway) -> None:
        for headers in (
            {"Content-Type": CANONICAL},
            {"Authorization": "Bearer nope", "Content-Type": CANONICAL},
            {"Authorization": "Basic abc"},
        ):
            async with gateway.http.post(
                gateway.url("/v1/messages"), data=body(sample_message()), headers=headers
            ) as r:
                assert r.status == 401
                assert r.content_type == "application/problem+json"
        assert await stored_messages(gateway) == 0

    async def test_another_partners_message_status_is_403(self, gateway: RunningGateway) -> None:
        async with gateway.http.post(
            gateway.url("/v1/messages"), data=body(sample_message()), headers=auth(POLICE)
        ) as r:
            status_url = (await r.json())["status_url"]
        async with gateway.http.get(gateway.url(status_url), headers=auth(SCHOOL)) as r:
            assert r.status == 403
        async with gateway.http.get(gateway.url("/v1/messages/msg_unknown"), headers=auth(POLICE)) as r:
            assert r.status == 404

    async def test_partners_cannot_use_the_ops_api(self, gateway: RunningGateway) -> None:
        async with gateway.http.get(
            gateway.url("/v1/ops/queues"), headers={"Authorization": f"Bearer {TOKENS[CSC]}"}
        ) as r:
            assert r.status == 403
        async with gateway.http.get(
            gateway.url("/v1/ops/queues"), headers={"Authorization": "Bearer test-ig-lead-token"}
        ) as r:
            assert r.status == 403


class TestIdempotency:
    async def test_same_key_same_body_same_result_different_body_409(self, gateway: RunningGateway) -> None:
        headers = {**auth(POLICE), "Idempotency-Key": "incident-000123-v1"}
        async with gateway.http.post(
            gateway.url("/v1/messages"), data=body(sample_message()), headers=headers
        ) as r:
            assert r.status == 202
            first = await r.json()
        async with gateway.http.post(
            gateway.url("/v1/messages"), data=body(sample_message()), headers=headers
        ) as r:
            assert r.status == 202
            second = await r.json()
        assert second["message_id"] == first["message_id"]
        assert (first["duplicate"], second["duplicate"]) == (False, True)
        other = mutated(lambda d: d["envelope"].update(sender_reference="NS-DEMO-OTHER"))
        async with gateway.http.post(gateway.url("/v1/messages"), data=other, headers=headers) as r:
            assert r.status == 409
            assert first["message_id"] in (await r.json())["detail"]
        assert await stored_messages(gateway) == 1

    async def test_idempotency_keys_are_per_partner(self, gateway: RunningGateway) -> None:
        doc = sample_message()
        doc["envelope"]["event_type"] = "social-care.referral-outcome"
        doc["envelope"]["purpose"] = "referral-feedback"
        doc["envelope"].pop("recipients")
        for partner in (POLICE, CSC):
            async with gateway.http.post(
                gateway.url("/v1/messages"),
                data=body(doc),
                headers={**auth(partner), "Idempotency-Key": "same"},
            ) as r:
                assert r.status == 202
                assert (await r.json())["duplicate"] is False
        assert await stored_messages(gateway) == 2


class TestWarnings:
    async def test_a_upn_from_an_unlisted_authority_is_accepted_with_a_warning(
        self, start_gateway: GatewayFactory
    ) -> None:
        gw: RunningGateway = await start_gateway(settings_extra={"identifiers": {"known_la_codes": ["999"]}})
        doc = sample_message()
        doc["people"][0]["identifiers"].append({"system": "upn", "value": "B801200005001"})
        async with gw.http.post(gw.url("/v1/messages"), data=body(doc), headers=auth(POLICE)) as r:
            assert r.status == 202
            accepted = await r.json()
        assert [(w["field"], w["rule"]) for w in accepted["warnings"]] == [
            ("/people/0/identifiers/1/value", "upn-la-code-known")
        ]
        assert "B801200005001" not in json.dumps(accepted)
        assert await stored_messages(gw) == 1

    async def test_no_warnings_key_when_there_is_nothing_to_say(self, gateway: RunningGateway) -> None:
        async with gateway.http.post(
            gateway.url("/v1/messages"), data=body(sample_message()), headers=auth(POLICE)
        ) as r:
            assert r.status == 202
            assert "warnings" not in await r.json()
