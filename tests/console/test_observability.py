"""Observability behind the console: Prometheus metrics cover queues per partner, decisions
by outcome, deliveries by result and the latency histograms; readiness means the store
answers; metrics still answer while it does not."""

from __future__ import annotations

import re

from gateway.testing import RecordingReceiver
from tests.conftest import RunningGateway
from tests.support import POLICE, SCHOOL, auth, body, eventually, message_for_child, valid_nhs_numbers


async def scrape(gw: RunningGateway) -> str:
    async with gw.http.get(gw.url("/metrics")) as r:
        assert r.status == 200
        return await r.text()


class TestMetrics:
    async def test_metrics_cover_queues_decisions_deliveries_and_latency(
        self, gateway: RunningGateway, receiver: RecordingReceiver
    ) -> None:
        doc = message_for_child(valid_nhs_numbers(1)[0], recipients=[SCHOOL])
        async with gateway.http.post(gateway.url("/v1/messages"), data=body(doc), headers=auth(POLICE)) as r:
            assert r.status == 202

        async def delivered() -> bool:
            return 'gateway_deliveries_total{recipient="school-riverside-primary",result="delivered"}' in (
                await scrape(gateway)
            )

        await eventually(delivered, timeout=10)
        text = await scrape(gateway)
        for pattern in (
            r'gateway_queue_ready\{recipient="school-riverside-primary"\} ',
            r'gateway_queue_oldest_age_seconds\{recipient="[a-z-]+"\} ',
            r'gateway_decisions_total\{effect="permit",rule="[a-z-]+"\} ',
            r"gateway_ingest_seconds_bucket\{",
            r"gateway_decision_seconds_bucket\{",
            r'gateway_delivery_attempt_seconds_bucket\{le="[0-9.+Inf]+",recipient="school-riverside-primary"\}',
            r"gateway_end_to_end_seconds_count ",
            r"gateway_store_up 1.0",
        ):
            assert re.search(pattern, text), pattern

    async def test_store_down_readyz_fails_and_metrics_still_answer(self, gateway: RunningGateway) -> None:
        async with gateway.http.get(gateway.url("/readyz")) as r:
            assert r.status == 200
        await gateway.services.backend.close()
        try:
            async with gateway.http.get(gateway.url("/readyz")) as r:
                assert r.status == 503
                assert (await r.json())["status"] == "unavailable"
            assert "gateway_store_up 0.0" in await scrape(gateway)
        finally:
            await gateway.services.backend.open()
