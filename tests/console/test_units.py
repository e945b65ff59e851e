"""The console's pure parts: password hashes, sessions, the failure limiter, samples and
charts."""

from __future__ import annotations

import pytest

from gateway.audit import AuditRecord
from gateway.console.charts import sparkline
from gateway.console.pages_ig import disclosures_of
from gateway.console.passwords import hash_password, verify
from gateway.console.ratelimit import FailureLimiter
from gateway.console.samples import QueueSamples
from gateway.console.sessions import SessionStore
from gateway.store.base import QueueStats


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestPasswords:
    def test_a_hash_verifies_its_password_only(self) -> None:
        h = hash_password("correct horse battery staple")
        assert h.startswith("$argon2id$")
        assert "correct" not in h
        assert verify(h, "correct horse battery staple")
        assert not verify(h, "correct horse battery stapl")

    def test_unknown_user_and_garbage_hash_never_verify(self) -> None:
        assert not verify(None, "not-a-password-only-equalises-timing")
        assert not verify("$argon2id$garbage", "x")

    @pytest.mark.parametrize("bad", ["", "x" * 1025])
    def test_empty_or_huge_passwords_are_refused(self, bad: str) -> None:
        with pytest.raises(ValueError, match="1 to 1024 bytes"):
            hash_password(bad)


class TestSessions:
    def test_idle_and_lifetime_expiry(self) -> None:
        clock = Clock()
        store = SessionStore(idle=60, lifetime=300, clock=clock)
        s = store.sign_in(None, "u1", "operator")
        clock.now += 59
        assert store.get(s.sid) is s
        clock.now += 61
        assert store.get(s.sid) is None
        s2 = store.sign_in(None, "u1", "operator")
        for _ in range(6):
            clock.now += 55
            store.get(s2.sid)
        assert store.get(s2.sid) is None, "past the absolute lifetime even while active"

    def test_sign_in_rotates_the_id_and_csrf_token(self) -> None:
        store = SessionStore(idle=60, lifetime=300)
        anon = store.new()
        signed = store.sign_in(anon, "u1", "ig-lead")
        assert signed.sid != anon.sid
        assert signed.csrf != anon.csrf
        assert store.get(anon.sid) is None
        store.end(signed)
        assert store.get(signed.sid) is None

    def test_capacity_drops_anonymous_sessions_first(self) -> None:
        store = SessionStore(idle=60, lifetime=300, capacity=3)
        user = store.sign_in(None, "u1", "admin")
        for _ in range(5):
            store.new()
        assert len(store) == 3
        assert store.get(user.sid) is user


class TestFailureLimiter:
    def test_blocks_at_the_limit_until_the_window_passes(self) -> None:
        clock = Clock()
        limiter = FailureLimiter(max_failures=3, window=60, clock=clock)
        for _ in range(2):
            limiter.failed("u")
        assert not limiter.blocked("u")
        limiter.failed("u")
        assert limiter.blocked("u")
        assert 0 < limiter.retry_after("u") <= 60
        assert not limiter.blocked("other")
        clock.now += 61
        assert not limiter.blocked("u")
        assert limiter.retry_after("u") == 0

    def test_clear_forgets_a_key(self) -> None:
        limiter = FailureLimiter(max_failures=1, window=60)
        limiter.failed("u")
        limiter.clear("u")
        assert not limiter.blocked("u")


class TestSamples:
    def test_rates_per_minute_from_counter_deltas(self) -> None:
        clock = Clock()
        samples = QueueSamples(10, horizon=3600, clock=clock)
        for i in range(7):
            samples.record([QueueStats("p", i, 0, 0, 0, 1.0)], ["p", "q"], {"p": 10.0 * i}, {"p": 2.0 * i})
            clock.now += 10
        delivered, failed = samples.per_minute("p")
        assert delivered == pytest.approx(60.0)
        assert failed == pytest.approx(12.0)
        assert [s.ready for s in samples.series("p")] == list(range(7))
        assert samples.per_minute("q") == (0.0, 0.0)
        assert samples.per_minute("nobody") == (0.0, 0.0)

    def test_keeps_one_hour(self) -> None:
        samples = QueueSamples(600, horizon=3600)
        for _ in range(20):
            samples.record([], ["p"], {}, {})
        assert len(samples.series("p")) == 7


class TestSparkline:
    def test_escapes_its_label_and_draws_numbers(self) -> None:
        svg = str(sparkline([0, 2, 1], label="<b>p</b>"))
        assert "<b>" not in svg
        assert "&lt;b&gt;" in svg
        assert svg.startswith("<svg")
        assert "polyline" in svg
        assert "max 2" in svg

    def test_no_data_is_a_flat_line(self) -> None:
        assert "polyline" in str(sparkline([], label="empty"))


class TestDisclosureRows:
    @staticmethod
    def record(seq: int, at: str, kind: str, partner: str | None, data: dict[str, object]) -> AuditRecord:
        return AuditRecord(seq, at, kind, "msg_0001", partner, "gateway", data, "p", "h")

    def test_a_replay_from_the_original_is_its_own_row_with_its_time_and_dead_letter(self) -> None:
        # Given a message decided at ingest, dead-lettered, then decided again on a replay
        r = self.record
        rows = disclosures_of(
            [
                r(
                    1,
                    "2026-12-01T10:00:00+00:00",
                    "message.received",
                    "police",
                    {"event_type": "e", "purpose": "p"},
                ),
                r(
                    2,
                    "2026-12-01T10:00:00+00:00",
                    "decision.made",
                    "csc",
                    {"recipient": "csc", "effect": "permit"},
                ),
                r(3, "2026-12-01T10:05:00+00:00", "delivery.dead_lettered", "csc", {}),
                r(
                    4,
                    "2026-12-01T11:00:00+00:00",
                    "decision.made",
                    "csc",
                    {
                        "recipient": "csc",
                        "effect": "deny",
                        "rule": "agreement-not-in-force",
                        "replay_of": "dlv_1",
                    },
                ),
            ]
        )
        # Then each decision is a row with its own time; only the replay's names the dead letter
        assert [(x.effect, x.decided_at, x.replay_of) for x in rows] == [
            ("permit", "2026-12-01T10:00:00+00:00", ""),
            ("deny", "2026-12-01T11:00:00+00:00", "dlv_1"),
        ]
        assert [x.delivery for x in rows] == ["dead-letter", "dead-letter"]  # the latest state
        assert rows[1].as_dict()["replay_of"] == "dlv_1"
