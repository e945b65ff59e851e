"""``WebhookSigner``: one per partner secret, headers byte-identical to signing each
delivery afresh with the Standard Webhooks library, and verifiable by it."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gateway.delivery.webhook import USER_AGENT, WebhookSigner, signed_headers

SECRET = "whsec_ZmljdGlvbmFsLXRlc3Qtc2lnbmluZy1zZWNyZXQ="
PAYLOAD = '{"child":"Zed Example","postcode":"ZZ99 1ZZ","note":"caf\u00e9"}'.encode()


class TestWebhookSigner:
    def test_headers_match_a_fresh_library_signature_for_every_delivery(self) -> None:
        signer = WebhookSigner(SECRET)
        for n, ts in enumerate((1_700_000_000.0, 1_700_000_000.999, 1_800_000_123.5)):
            when = datetime.fromtimestamp(ts, UTC)
            webhook_id = f"msg_{n:04d}"
            headers = signer.headers(webhook_id, PAYLOAD, "application/json", when)
            assert headers == {
                "content-type": "application/json",
                "user-agent": USER_AGENT,
                "webhook-id": webhook_id,
                "webhook-timestamp": str(int(ts)),
                "webhook-signature": Webhook(SECRET).sign(webhook_id, when, PAYLOAD.decode()),
            }
            assert headers == signed_headers(SECRET, webhook_id, PAYLOAD, "application/json", when)

    def test_the_library_verifies_what_it_signs(self) -> None:
        headers = WebhookSigner(SECRET).headers("msg_0001", PAYLOAD, "application/json")
        Webhook(SECRET).verify(PAYLOAD, headers, json_parse=False)  # raises if it does not verify
        with pytest.raises(WebhookVerificationError):
            Webhook(SECRET).verify(PAYLOAD + b" ", headers, json_parse=False)

    def test_repr_hides_the_secret(self) -> None:
        assert "ZmljdGlv" not in repr(WebhookSigner(SECRET))

    def test_without_now_the_timestamp_is_the_current_second(self) -> None:
        before = int(time.time())
        headers = WebhookSigner(SECRET).headers("msg_0001", PAYLOAD, "application/json")
        assert before <= int(headers["webhook-timestamp"]) <= int(time.time())
        Webhook(SECRET).verify(PAYLOAD, headers, json_parse=False)

    @pytest.mark.parametrize(
        "make_now",
        [
            lambda: datetime.now(UTC).replace(tzinfo=None),  # naive: taken as UTC, as the library does
            lambda: datetime.now(timezone(timedelta(hours=-5))),  # aware, not UTC: the same instant
        ],
        ids=["naive", "aware-not-utc"],
    )
    def test_the_timestamp_header_is_the_second_the_signature_covers(
        self, make_now: Callable[[], datetime]
    ) -> None:
        # Made when the test runs (not at collection): the library refuses a stale timestamp.
        headers = WebhookSigner(SECRET).headers("msg_0001", PAYLOAD, "application/json", make_now())
        assert abs(int(headers["webhook-timestamp"]) - time.time()) < 5
        Webhook(SECRET).verify(PAYLOAD, headers, json_parse=False)  # raises if it does not verify
