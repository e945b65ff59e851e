"""The store/queue contracts of ``gateway.store.base``, run on every backend: the embedded
SQLite file, a real PostgreSQL server, and PostgreSQL + a real RabbitMQ node
(``tests.servers``).

Concurrency tests open several backend objects on the same store: on PostgreSQL each has
its own connection pool (and, with RabbitMQ, its own broker connection and consumers on the
same queues), as separate gateway instances would; on SQLite each has its own
writer thread and connection, as the gateway and a CLI process would.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from gateway.audit import AuditEvent, verify_chain
from gateway.crypto import Keyring, rotate_keyring
from gateway.store.base import (
    Backend,
    DecisionRecord,
    DeliveryRecord,
    IdempotencyMismatch,
    InboundRecord,
    Lease,
    MessageStatus,
    ReleasesPartnerLeases,
    StoredConsent,
)
from gateway.store.postgres import PostgresBackend
from gateway.store.rabbitmq import RabbitQueueBackend
from gateway.store.sqlite import SqliteBackend
from tests.servers import PostgresServer, RabbitServer, postgres_server, rabbitmq_server
from tests.support import eventually

OpenBackend = Callable[[], Awaitable[Backend]]


@pytest.fixture(params=["sqlite", "postgresql", "rabbitmq-postgresql"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def pg(request: pytest.FixtureRequest, kind: str) -> PostgresServer | None:
    """The session's PostgreSQL, only for the PostgreSQL parameters (skips if not installed)."""
    return postgres_server(request) if kind != "sqlite" else None


@pytest.fixture
def rabbit(request: pytest.FixtureRequest, kind: str) -> RabbitServer | None:
    """The session's RabbitMQ node, only for the RabbitMQ parameter (skips if not installed)."""
    return rabbitmq_server(request) if kind == "rabbitmq-postgresql" else None


@pytest.fixture
async def open_backend(
    tmp_path: Path, pg: PostgresServer | None, rabbit: RabbitServer | None
) -> AsyncIterator[OpenBackend]:
    """Opens backends on one fresh store (a new SQLite file, or a new migrated PostgreSQL
    database, with queues under a fresh RabbitMQ name prefix); every one is closed at the end
    of the test."""
    opened: list[Backend] = []
    prefix = rabbit.prefix() if rabbit is not None else ""
    async with _store_location(tmp_path, pg) as where:

        async def open_one() -> Backend:
            b: Backend
            if pg is None:
                b = SqliteBackend(Path(where))
            elif rabbit is None:
                b = PostgresBackend(where, pool_size=4)
            else:
                b = RabbitQueueBackend(where, rabbit.url(), pool_size=4, prefix=prefix, lease_wait=0.3)
            await b.open()
            opened.append(b)
            return b

        try:
            yield open_one
        finally:
            for b in opened:
                await b.close()


def _store_location(tmp_path: Path, pg: PostgresServer | None) -> contextlib.AbstractAsyncContextManager[str]:
    if pg is not None:
        return pg.database()
    return _sqlite_path(tmp_path)


@contextlib.asynccontextmanager
async def _sqlite_path(tmp_path: Path) -> AsyncIterator[str]:
    yield str(tmp_path / "gw.db")


@pytest.fixture
async def backend(open_backend: OpenBackend) -> Backend:
    return await open_backend()


@pytest.fixture
def duplicate_key_error(kind: str) -> type[Exception]:
    return sqlite3.IntegrityError if kind == "sqlite" else asyncpg.UniqueViolationError


def records(
    ring: Keyring,
    n: int,
    *,
    child: str = "c1",
    key: str | None = None,
    body: str = "b",
    recipient: str = "csc",
    consent_records: tuple[str, ...] = (),
    review_role: str | None = None,
    review_deadline: float | None = None,
) -> tuple[InboundRecord, list[DecisionRecord], list[DeliveryRecord], list[AuditEvent]]:
    mid = f"msg_{n:04d}"
    inbound = InboundRecord(
        mid,
        "police",
        "police.domestic-abuse-incident",
        "safeguarding",
        1.0,
        body,
        ring.seal(b"{}", mid),
        ("s1",),
        key,
    )
    dec = DecisionRecord(
        f"dec_{n:04d}", mid, recipient, "permit", "permit", "agr", ("identity.core",), "v1", {"rule": "r1"}
    )
    dlv = DeliveryRecord(
        f"dlv_{n:04d}",
        mid,
        dec.decision_id,
        recipient,
        f"{recipient}:{child}",
        "application/json",
        ring.seal(b"CANARY-PLAINTEXT-42", f"dlv_{n:04d}"),
        3,
        consent_records=consent_records,
        review_role=review_role,
        review_deadline=review_deadline,
    )
    return inbound, [dec], [dlv], [AuditEvent("message.received", {"n": n}, mid, "police")]


async def audit_kinds(backend: Backend) -> list[str]:
    return [r.kind async for r in backend.audit_records()]


def redecided(
    decision_id: str,
    effect: str = "permit",
    rule: str = "permit",
    *,
    message_id: str = "msg_0001",
    recipient: str = "csc",
) -> DecisionRecord:
    """A decision as a replay from the original makes it (new id, same message and recipient)."""
    return DecisionRecord(
        decision_id, message_id, recipient, effect, rule, "agr-2", (), "v2", {"replay_of": "dlv_0001"}
    )


async def decision_of(backend: Backend, delivery_id: str) -> str | None:
    """The decision id a delivery points at, read from the store itself (no interface has it)."""
    if isinstance(backend, PostgresBackend):
        found = await backend.pool.fetchval("SELECT decision_id FROM deliveries WHERE id=$1", delivery_id)
        return str(found) if found is not None else None
    assert isinstance(backend, SqliteBackend)
    path = backend.path

    def read() -> str | None:
        with contextlib.closing(sqlite3.connect(path)) as db:
            row = db.execute("SELECT decision_id FROM deliveries WHERE id=?", (delivery_id,)).fetchone()
        return str(row[0]) if row is not None else None

    return await asyncio.to_thread(read)


async def dead_lettered(backend: Backend, keyring: Keyring, n: int = 1) -> None:
    """Accept message ``n`` for csc and dead-letter its delivery (a failure without retry)."""
    await backend.accept(*records(keyring, n))
    (lease,) = await backend.lease("csc", 1, 30)
    assert lease.delivery_id == f"dlv_{n:04d}"
    await backend.fail(lease, "render-failed:RuntimeError", None, AuditEvent("delivery.attempt_failed"))
    assert await backend.dead_letter(f"dlv_{n:04d}") is not None


def shown(status: MessageStatus | None) -> list[tuple[str, str, str, str | None, str | None]]:
    assert status is not None
    return [(r.recipient, r.effect, r.rule, r.delivery_id, r.state) for r in status.recipients]


class TestAccept:
    async def test_idempotency_same_body_returns_first_different_body_conflicts(
        self, backend: Backend, keyring: Keyring
    ) -> None:
        first = await backend.accept(*records(keyring, 1, key="k1"))
        again = await backend.accept(*records(keyring, 2, key="k1"))
        assert (first.duplicate, again.duplicate, again.message_id) == (False, True, "msg_0001")
        with pytest.raises(IdempotencyMismatch) as info:
            await backend.accept(*records(keyring, 3, key="k1", body="other"))
        assert info.value.message_id == "msg_0001"
        assert [s.ready for s in await backend.stats()] == [1]
        assert await backend.message_status("msg_0002") is None

    async def test_concurrent_duplicates_are_resolved_by_the_database(
        self, open_backend: OpenBackend, keyring: Keyring
    ) -> None:
        # Given four instances, and twenty accepts of one idempotency key racing on them
        instances = [await open_backend() for _ in range(4)]
        outcomes = await asyncio.gather(
            *(
                instances[i % 4].accept(
                    *records(keyring, i, key="same-key", body="other" if i == 19 else "b")
                )
                for i in range(20)
            ),
            return_exceptions=True,
        )
        # Then exactly one stored a message, the others name it, and a different body conflicts
        accepted = [o for o in outcomes if not isinstance(o, BaseException)]
        winners = [o for o in accepted if not o.duplicate]
        assert len(winners) == 1, outcomes
        assert {o.message_id for o in accepted} == {winners[0].message_id}
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        assert all(isinstance(e, IdempotencyMismatch) for e in errors), errors
        assert all(
            e.message_id == winners[0].message_id for e in errors if isinstance(e, IdempotencyMismatch)
        )
        assert len(accepted) + len(errors) == 20
        assert [s.ready for s in await instances[0].stats()] == [1]
        assert await audit_kinds(instances[0]) == ["message.received"]

    async def test_a_failing_operation_fails_alone(
        self, backend: Backend, keyring: Keyring, duplicate_key_error: type[Exception]
    ) -> None:
        ok1, dup, ok2 = await asyncio.gather(
            backend.accept(*records(keyring, 1)),
            backend.accept(*records(keyring, 1)),  # same message id: primary key violation
            backend.accept(*records(keyring, 2)),
            return_exceptions=True,
        )
        assert isinstance(dup, duplicate_key_error)
        assert not isinstance(ok1, BaseException)
        assert not isinstance(ok2, BaseException)
        assert sum(s.ready for s in await backend.stats()) == 2
        assert verify_chain([r async for r in backend.audit_records()]).records == 2

    async def test_status_shows_each_decision_and_delivery(self, backend: Backend, keyring: Keyring) -> None:
        inbound, decisions, deliveries, audit = records(keyring, 1)
        deny = DecisionRecord(
            "dec_deny", inbound.message_id, "school", "deny", "no-agreement", None, (), "v1"
        )
        await backend.accept(inbound, [*decisions, deny], deliveries, audit)
        status = await backend.message_status("msg_0001")
        assert status is not None
        assert (status.source, status.event_type) == ("police", "police.domestic-abuse-incident")
        assert [(r.recipient, r.effect, r.delivery_id, r.state) for r in status.recipients] == [
            ("csc", "permit", "dlv_0001", "ready"),
            ("school", "deny", None, None),
        ]


class TestLeaseOrder:
    async def test_only_the_head_of_each_child_is_leased(self, backend: Backend, keyring: Keyring) -> None:
        for i, child in enumerate(["a", "a", "b", "a"]):
            await backend.accept(*records(keyring, i, child=child))
        first = await backend.lease("csc", 10, 30)
        assert [x.delivery_id for x in first] == ["dlv_0000", "dlv_0002"]
        assert await backend.lease("csc", 10, 30) == []
        assert await backend.complete(first[0], AuditEvent("delivery.succeeded"))
        assert [x.delivery_id for x in await backend.lease("csc", 10, 30)] == ["dlv_0001"]

    async def test_retry_waits_and_blocks_the_same_child(self, backend: Backend, keyring: Keyring) -> None:
        await backend.accept(*records(keyring, 1, child="a"))
        await backend.accept(*records(keyring, 2, child="a"))
        (lease,) = await backend.lease("csc", 10, 30)
        assert await backend.fail(lease, "http-503", 2e9, AuditEvent("delivery.attempt_failed")) == "ready"
        assert await backend.lease("csc", 10, 30) == []  # not due, and the next one must wait

    async def test_budget_exhausted_dead_letters_and_unblocks(
        self, backend: Backend, keyring: Keyring
    ) -> None:
        await backend.accept(*records(keyring, 1, child="a"))
        await backend.accept(*records(keyring, 2, child="a"))
        for attempt in (1, 2, 3):
            (lease,) = await backend.lease("csc", 1, 30)
            assert lease.attempt == attempt
            state = await backend.fail(lease, "http-500", 0.0, AuditEvent("delivery.attempt_failed"))
        assert state == "dead"
        (dead,) = await backend.dead_letters("csc", 10)
        assert (dead.delivery_id, dead.attempts, dead.last_error) == ("dlv_0001", 3, "http-500")
        assert await backend.dead_letters("school", 10) == []
        assert [x.delivery_id for x in await backend.lease("csc", 10, 30)] == ["dlv_0002"]

    async def test_replay_keeps_ids_and_is_audited(self, backend: Backend, keyring: Keyring) -> None:
        await backend.accept(*records(keyring, 1))
        (lease,) = await backend.lease("csc", 1, 30)
        await backend.fail(lease, "http-400", None, AuditEvent("delivery.attempt_failed"))
        assert not await backend.replay("dlv_nope", "typo", "op")
        assert await backend.replay("dlv_0001", "partner fixed their endpoint", "operator:alice-test")
        (again,) = await backend.lease("csc", 1, 30)
        assert (again.delivery_id, again.message_id, again.attempt) == ("dlv_0001", "msg_0001", 1)
        kinds = [(r.kind, r.data.get("reason")) async for r in backend.audit_records()]
        assert ("delivery.replayed", "partner fixed their endpoint") in kinds
        assert ("delivery.dead_lettered", None) in kinds

    async def test_requeue_with_payload_replaces_a_dead_letter_s_payload_in_one_step(
        self, backend: Backend, keyring: Keyring
    ) -> None:
        # Given a delivery that is not dead yet, then dead-lettered
        await backend.accept(*records(keyring, 1))
        rebuilt = keyring.seal(b"REBUILT", "dlv_0001")
        event = AuditEvent(
            "delivery.replayed_from_original", {"reason": "renderer fixed"}, "msg_0001", "csc", "op"
        )
        new = redecided("dec_0001r")
        assert await backend.dead_letter("dlv_0001") is None
        assert not await backend.requeue_with_payload("dlv_0001", new, rebuilt, "application/x-new", [event])
        (lease,) = await backend.lease("csc", 1, 30)
        await backend.fail(lease, "render-failed:RuntimeError", None, AuditEvent("delivery.attempt_failed"))
        letter = await backend.dead_letter("dlv_0001")
        assert letter is not None
        assert (letter.message_id, letter.recipient, letter.attempts) == ("msg_0001", "csc", 1)
        assert not await backend.requeue_with_payload("dlv_nope", new, rebuilt, "application/x-new", [event])
        # When it is requeued with a new payload
        assert await backend.requeue_with_payload(
            "dlv_0001", new, rebuilt, "application/x-new", [event], consent_records=("con_9",)
        )
        # Then it is ready again with the same ids, the new payload, attempts reset, audited once
        assert await backend.dead_letter("dlv_0001") is None
        assert await backend.dead_letters(None, 10) == []
        again_new = redecided("dec_0001s")
        assert not await backend.requeue_with_payload(
            "dlv_0001", again_new, rebuilt, "application/x-new", [event]
        )
        assert await decision_of(backend, "dlv_0001") == "dec_0001r"

        again: list[Lease] = []

        async def got_it() -> bool:
            nonlocal again
            again = await backend.lease("csc", 1, 30)
            return bool(again)

        await eventually(got_it, 10)
        (only,) = again
        assert (only.delivery_id, only.message_id, only.attempt) == ("dlv_0001", "msg_0001", 1)
        assert only.media_type == "application/x-new"
        assert keyring.open(only.payload, "dlv_0001") == b"REBUILT"
        kinds = await audit_kinds(backend)
        assert kinds.count("delivery.replayed_from_original") == 1
        # And the consent records it now relies on are the new ones: withdrawing one cancels it
        assert await backend.record_consent(TestConsentAndReview.consent("con_9", "withdrawn"), ["csc"]) == [
            "dlv_0001"
        ]

    async def test_discard_needs_a_dead_letter_and_is_audited(
        self, backend: Backend, keyring: Keyring
    ) -> None:
        await backend.accept(*records(keyring, 1))
        assert not await backend.discard("dlv_0001", "not dead yet", "op")
        (lease,) = await backend.lease("csc", 1, 30)
        await backend.fail(lease, "http-400", None, AuditEvent("delivery.attempt_failed"))
        assert await backend.discard("dlv_0001", "duplicate sent by hand", "operator:alice-test")
        assert await backend.dead_letters(None, 10) == []
        assert not await backend.replay("dlv_0001", "too late", "op")
        assert await backend.lease("csc", 1, 30) == []
        assert (await audit_kinds(backend))[-1] == "delivery.discarded"

    async def test_a_lost_lease_cannot_complete_or_fail(self, backend: Backend, keyring: Keyring) -> None:
        await backend.accept(*records(keyring, 1))
        (lease,) = await backend.lease("csc", 1, 30)
        forged = dataclasses.replace(lease, lease_token="not-mine")
        assert not await backend.complete(forged, AuditEvent("delivery.succeeded"))
        assert (
            await backend.fail(forged, "http-500", 0.0, AuditEvent("delivery.attempt_failed")) == "lease-lost"
        )
        assert await backend.complete(lease, AuditEvent("delivery.succeeded"))
        assert not await backend.complete(lease, AuditEvent("delivery.succeeded"))
        assert await audit_kinds(backend) == ["message.received", "delivery.succeeded"]

    async def test_leases_expire_and_the_old_holder_loses_them(
        self, backend: Backend, keyring: Keyring
    ) -> None:
        await backend.accept(*records(keyring, 1))
        (old,) = await backend.lease("csc", 1, 0.3)
        assert await backend.lease("csc", 1, 30) == []  # still held
        relet: list[Lease] = []

        async def leased_again() -> bool:
            relet.extend(await backend.lease("csc", 1, 30))
            return bool(relet)

        await eventually(leased_again, 10)
        assert (relet[0].delivery_id, relet[0].attempt) == ("dlv_0001", 2)
        assert not await backend.complete(old, AuditEvent("delivery.succeeded"))
        assert await backend.complete(relet[0], AuditEvent("delivery.succeeded"))

    async def test_pull_ack_only_by_the_recipient_of_a_fetched_delivery(
        self, backend: Backend, keyring: Keyring
    ) -> None:
        await backend.accept(*records(keyring, 1))
        assert not await backend.ack("csc", "dlv_0001", AuditEvent("delivery.acknowledged"))  # not fetched
        await backend.lease("csc", 1, 30)
        assert not await backend.ack("school", "dlv_0001", AuditEvent("delivery.acknowledged"))
        assert await backend.ack("csc", "dlv_0001", AuditEvent("delivery.acknowledged", partner="csc"))
        (rec,) = [r async for r in backend.audit_records() if r.kind == "delivery.acknowledged"]
        assert rec.message_id == "msg_0001"
        status = await backend.message_status("msg_0001")
        assert status is not None
        assert status.recipients[0].state == "delivered"

    async def test_stats_and_ready_recipients(self, backend: Backend, keyring: Keyring) -> None:
        await backend.accept(*records(keyring, 1, recipient="csc"))
        await backend.accept(*records(keyring, 2, recipient="csc", child="c2"))
        await backend.accept(*records(keyring, 3, recipient="school"))
        await backend.lease("csc", 1, 30)
        assert sorted(await backend.ready_recipients()) == ["csc", "school"]
        by = {s.recipient: s for s in await backend.stats()}
        assert (by["csc"].ready, by["csc"].leased, by["school"].ready) == (1, 1, 1)
        assert by["csc"].oldest_ready_age_seconds >= 0

    async def test_concurrent_leasers_never_share_a_delivery_or_a_child(
        self, open_backend: OpenBackend, keyring: Keyring
    ) -> None:
        # Given 60 deliveries about 6 children, and four instances leasing at the same time
        instances = [await open_backend() for _ in range(4)]
        for i in range(60):
            await instances[0].accept(*records(keyring, i, child=f"c{i % 6}"))
        delivered: list[Lease] = []
        for _round in range(40):
            batches = await asyncio.gather(*(b.lease("csc", 3, 30) for b in instances for _ in range(2)))
            held = [lease for batch in batches for lease in batch]
            # Then no delivery is out twice, and at most one per child is out at once
            assert len({x.delivery_id for x in held}) == len(held)
            children = [_child(x) for x in held]
            assert len(set(children)) == len(children), children
            done = await asyncio.gather(
                *(instances[i % 4].complete(x, AuditEvent("delivery.succeeded")) for i, x in enumerate(held))
            )
            assert all(done)
            delivered += held
            if len(delivered) == 60:
                break
        # And every delivery went out exactly once, in order per child
        assert sorted(x.delivery_id for x in delivered) == [f"dlv_{i:04d}" for i in range(60)]
        for c in range(6):
            seq = [x.delivery_id for x in delivered if _child(x) == f"c{c}"]
            assert seq == sorted(seq)
        assert verify_chain([r async for r in instances[0].audit_records()]).ok

    async def test_concurrent_accepts_about_one_child_never_put_two_of_its_messages_out(
        self, open_backend: OpenBackend, keyring: Keyring
    ) -> None:
        # Given four instances accepting messages about one child while each also leases
        instances = [await open_backend() for _ in range(4)]
        leased: list[Lease] = []
        accepting = True

        async def worker(b: Backend) -> None:
            while accepting:
                leased.extend(await b.lease("csc", 10, 60))

        workers = [asyncio.create_task(worker(b)) for b in instances]
        try:
            await asyncio.gather(
                *(instances[i % 4].accept(*records(keyring, i, child="a")) for i in range(100))
            )
        finally:
            accepting = False
            await asyncio.gather(*workers)
        leased.extend(await instances[0].lease("csc", 10, 60))
        # Then only one of the child's deliveries was ever handed out: the others wait behind it
        # (the race this samples, a later message committing before an earlier one, is forced
        # deterministically on PostgreSQL in test_postgres_store.TestOrderAcrossInstances)
        assert len(leased) == 1, [x.delivery_id for x in leased]


class TestCompleteMany:
    @staticmethod
    def succeeded(lease: Lease) -> AuditEvent:
        return AuditEvent("delivery.succeeded", {"delivery_id": lease.delivery_id}, lease.message_id, "csc")

    async def test_only_leases_still_held_complete_and_only_they_are_audited(
        self, backend: Backend, keyring: Keyring
    ) -> None:
        # Given five deliveries about five children, leased in one batch
        for i in range(5):
            await backend.accept(*records(keyring, i, child=f"c{i}"))
        leases = await backend.lease("csc", 10, 30)
        assert [x.delivery_id for x in leases] == [f"dlv_{i:04d}" for i in range(5)]
        # and one already completed, one presented with another holder's token
        assert await backend.complete(leases[1], self.succeeded(leases[1]))
        forged = dataclasses.replace(leases[3], lease_token="not-mine")
        # When the batch is completed together
        items = [(x, self.succeeded(x)) for x in (leases[0], leases[1], leases[2], forged, leases[4])]
        done = await backend.complete_many(items)
        # Then exactly the leases still held completed, each audited once, in the batch's order
        assert done == [True, False, True, False, True]
        chain = [r async for r in backend.audit_records()]
        assert [r.data["delivery_id"] for r in chain if r.kind == "delivery.succeeded"] == [
            "dlv_0001",
            "dlv_0000",
            "dlv_0002",
            "dlv_0004",
        ]
        assert [r.message_id for r in chain if r.kind == "delivery.succeeded"][1:] == [
            "msg_0000",
            "msg_0002",
            "msg_0004",
        ]
        result = verify_chain(chain)
        assert (result.ok, result.records) == (True, 9)
        # and the forged one's real holder still holds it, and can complete it
        by = {s.recipient: s for s in await backend.stats()}
        assert (by["csc"].delivered, by["csc"].leased, by["csc"].ready) == (4, 1, 0)
        assert await backend.complete_many([(leases[3], self.succeeded(leases[3]))]) == [True]
        assert await backend.complete_many([]) == []
        assert verify_chain([r async for r in backend.audit_records()]).records == 10

    async def test_an_expired_and_relet_lease_in_a_batch_is_lost_and_not_audited(
        self, backend: Backend, keyring: Keyring
    ) -> None:
        await backend.accept(*records(keyring, 1, child="a"))
        await backend.accept(*records(keyring, 2, child="b"))
        old = await backend.lease("csc", 10, 0.3)
        relet: list[Lease] = []

        async def leased_again() -> bool:
            relet.extend(await backend.lease("csc", 10, 30))
            return len(relet) == 2

        await eventually(leased_again, 10)
        assert await backend.complete_many([(x, self.succeeded(x)) for x in old]) == [False, False]
        assert await audit_kinds(backend) == ["message.received", "message.received"]
        assert await backend.complete_many([(x, self.succeeded(x)) for x in relet]) == [True, True]
        assert (await audit_kinds(backend)).count("delivery.succeeded") == 2

    async def test_completing_heads_together_releases_each_child_s_next(
        self, backend: Backend, keyring: Keyring
    ) -> None:
        # Given two children with two messages each: only the heads are out
        for i, child in enumerate(["a", "a", "b", "b"]):
            await backend.accept(*records(keyring, i, child=child))
        heads = await backend.lease("csc", 10, 30)
        assert [x.delivery_id for x in heads] == ["dlv_0000", "dlv_0002"]
        # When both heads complete in one batch
        assert await backend.complete_many([(x, self.succeeded(x)) for x in heads]) == [True, True]
        # Then each child's next message is leased, in order
        nxt: list[Lease] = []

        async def next_ones() -> bool:
            nxt.extend(await backend.lease("csc", 10, 30))
            return len(nxt) >= 2

        await eventually(next_ones, 10)
        assert sorted(x.delivery_id for x in nxt) == ["dlv_0001", "dlv_0003"]

    async def test_concurrent_batches_on_several_instances_keep_one_chain(
        self, open_backend: OpenBackend, keyring: Keyring
    ) -> None:
        # Given 40 deliveries leased by four instances, each completing its batch at once
        instances = [await open_backend() for _ in range(4)]
        for i in range(40):
            await instances[0].accept(*records(keyring, i, child=f"c{i}"))
        delivered: set[str] = set()
        for _round in range(40):
            batches = await asyncio.gather(*(b.lease("csc", 5, 30) for b in instances))
            results = await asyncio.gather(
                *(
                    b.complete_many([(x, self.succeeded(x)) for x in batch])
                    for b, batch in zip(instances, batches, strict=True)
                )
            )
            assert all(all(r) for r in results)
            delivered |= {x.delivery_id for batch in batches for x in batch}
            if len(delivered) == 40:
                break
        # Then every delivery completed once and the chain is one unbroken line
        assert len(delivered) == 40
        chain = [r async for r in instances[0].audit_records()]
        assert [r.kind for r in chain].count("delivery.succeeded") == 40
        assert verify_chain(chain).problems == ()


class TestReleaseOwnLeases:
    # Only where several instances share the store: on SQLite one process leases per
    # partner, and tests/gateway/test_partner_lease_release.py covers it.
    @pytest.mark.parametrize("kind", ["postgresql", "rabbitmq-postgresql"], indirect=True)
    async def test_a_restarted_holder_takes_back_only_its_own_leases(
        self, open_backend: OpenBackend, keyring: Keyring, kind: str
    ) -> None:
        # Given two instances' delivery processes holding leases of one partner (both
        # consuming before anything is published, so the broker shares the messages out)
        killed, other = await open_backend(), await open_backend()
        for b in (killed, other):
            assert await b.lease("csc", 3, 3600) == []
        for i in range(6):
            await killed.accept(*records(keyring, i, child=f"c{i}"))
        mine: list[Lease] = []
        theirs: list[Lease] = []

        async def both_hold() -> bool:
            mine.extend(await killed.lease("csc", 3, 3600))
            theirs.extend(await other.lease("csc", 3, 3600))
            return len(mine) + len(theirs) == 6

        await eventually(both_hold, 10)
        assert mine
        assert theirs
        assert isinstance(killed, ReleasesPartnerLeases)
        # When the first is killed (its connections close) and its successor, with the same
        # holder, starts and releases its partners' leases
        await killed.close()
        successor = await open_backend()
        assert isinstance(successor, ReleasesPartnerLeases)
        successor.lease_holder = killed.lease_holder
        assert await successor.release_leases_of(["csc", "school"]) == len(mine)
        assert await successor.release_leases_of(["csc"]) == 0
        # Then exactly the killed holder's deliveries are leased again at once (by any
        # instance: on RabbitMQ the broker shares the republished messages out)
        again: list[Lease] = []

        async def relet() -> bool:
            for b in (successor, other):
                again.extend(await b.lease("csc", 10, 30))
            return len(again) >= len(mine)

        await eventually(relet, 10)
        assert sorted(x.delivery_id for x in again) == sorted(x.delivery_id for x in mine)
        assert all(x.attempt == 2 for x in again)

        # and the killed holder's tokens are lost, while the other instance's leases were
        # never touched: it completes them
        def succeeded(leases: list[Lease]) -> list[tuple[Lease, AuditEvent]]:
            return [(x, AuditEvent("delivery.succeeded")) for x in leases]

        assert await successor.complete_many(succeeded(mine)) == [False] * len(mine)
        assert await other.complete_many(succeeded(theirs)) == [True] * len(theirs)
        assert await successor.complete_many(succeeded(again)) == [True] * len(mine)


def _child(lease: Lease) -> str:
    """records() puts child i % 6 in message n (see the test): recover it from the id."""
    return f"c{int(lease.delivery_id.removeprefix('dlv_')) % 6}"


class TestConsentAndReview:
    @staticmethod
    def consent(record_id: str, state: str, scope: str = "csc") -> StoredConsent:
        return StoredConsent(
            record_id, "s1", "safeguarding", scope, state, "parent", 1.0, None, None, "ig:test"
        )

    async def test_withdrawal_cancels_queued_deliveries_that_relied_on_it(
        self, backend: Backend, keyring: Keyring
    ) -> None:
        # Given consent given, and deliveries relying on it (one leased, one queued), one not
        assert await backend.record_consent(self.consent("con_1", "given"), ["csc"]) == []
        await backend.accept(*records(keyring, 1, child="a", consent_records=("con_1",)))
        await backend.accept(*records(keyring, 2, child="b", consent_records=("con_1",)))
        await backend.accept(*records(keyring, 3, child="c"))
        await backend.accept(*records(keyring, 4, child="d", recipient="school", consent_records=("con_1",)))
        leased = {x.delivery_id: x for x in await backend.lease("csc", 10, 30)}["dlv_0001"]
        # When the consent is withdrawn for csc
        cancelled = await backend.record_consent(self.consent("con_2", "withdrawn"), ["csc"])
        # Then exactly those in scope that relied on it are cancelled, at once and audited
        assert cancelled == ["dlv_0001", "dlv_0002"]
        assert not await backend.complete(leased, AuditEvent("delivery.succeeded"))
        assert [x.delivery_id for x in await backend.lease("school", 10, 30)] == ["dlv_0004"]
        kinds = await audit_kinds(backend)
        assert kinds.count("delivery.withdrawn") == 2
        assert kinds.count("consent.recorded") == 2
        assert [c.record_id for c in await backend.consents_for("s1")] == ["con_1", "con_2"]
        assert (await backend.consent("con_2")) == self.consent("con_2", "withdrawn")
        assert await backend.consent("con_nope") is None
        assert len(await backend.all_consents()) == 2

    async def test_held_deliveries_wait_for_review(self, backend: Backend, keyring: Keyring) -> None:
        await backend.accept(*records(keyring, 1, child="a", review_role="ig-lead", review_deadline=1.0))
        await backend.accept(*records(keyring, 2, child="a", review_role="ig-lead", review_deadline=4e9))
        await backend.accept(*records(keyring, 3, child="a"))
        # A held delivery is never leased and does not block the child's later messages
        assert [x.delivery_id for x in await backend.lease("csc", 10, 30)] == ["dlv_0003"]
        held = await backend.held()
        assert [(h.delivery_id, h.review_role, h.escalated) for h in held] == [
            ("dlv_0001", "ig-lead", False),
            ("dlv_0002", "ig-lead", False),
        ]
        assert held[0].decision == {"rule": "r1"}
        # Past its deadline it is escalated once, and stays held
        assert [h.delivery_id for h in await backend.escalate_overdue()] == ["dlv_0001"]
        assert await backend.escalate_overdue() == []
        assert [h.escalated for h in await backend.held()] == [True, False]
        # Approve queues it as decided; reject closes it; neither twice
        assert await backend.resolve_review("dlv_0001", True, "parent agreed by phone", "ig:test")
        assert not await backend.resolve_review("dlv_0001", False, "again", "ig:test")
        assert await backend.resolve_review("dlv_0002", False, "not proportionate", "ig:test")
        assert await backend.held() == []
        assert [x.delivery_id for x in await backend.lease("csc", 10, 30)] == ["dlv_0001"]
        kinds = await audit_kinds(backend)
        assert [k for k in kinds if k.startswith("review.")] == [
            "review.escalated",
            "review.approved",
            "review.rejected",
        ]


class TestRewrap:
    async def test_rewrap_reseals_old_payloads_under_the_active_key(
        self, backend: Backend, keyring: Keyring, tmp_path: Path
    ) -> None:
        await backend.accept(*records(keyring, 1))
        await asyncio.to_thread(rotate_keyring, tmp_path / "keyring.json")
        rotated = await asyncio.to_thread(Keyring.load, tmp_path / "keyring.json")
        assert rotated.active != keyring.active
        assert await backend.rewrap(rotated) == 2  # the message and its delivery
        assert await backend.rewrap(rotated) == 0
        (lease,) = await backend.lease("csc", 1, 30)
        assert lease.payload.key_id == rotated.active
        assert rotated.open(lease.payload, lease.delivery_id) == b"CANARY-PLAINTEXT-42"


class TestAuditChain:
    async def test_chain_verifies_and_an_anchor_catches_truncation(
        self, backend: Backend, keyring: Keyring
    ) -> None:
        for i in range(5):
            await backend.accept(*records(keyring, i))
        good = verify_chain([r async for r in backend.audit_records()])
        assert (good.ok, good.records) == (True, 5)
        assert verify_chain([r async for r in backend.audit_records()], good.head).ok
        assert not verify_chain([], good.head).ok

    async def test_the_chain_stays_linear_with_concurrent_writers(
        self, open_backend: OpenBackend, keyring: Keyring
    ) -> None:
        # Given four instances appending at once: accepts, lone events and multi-event appends
        instances = [await open_backend() for _ in range(4)]
        writes: list[Awaitable[object]] = []
        for i in range(40):
            b = instances[i % 4]
            writes.append(b.accept(*records(keyring, i, child=f"c{i}")))
            writes.append(b.append_audit([AuditEvent("test.event", {"i": i}), AuditEvent("test.event2")]))
        await asyncio.gather(*writes)
        # Then one unbroken chain holds every record
        result = verify_chain([r async for r in instances[0].audit_records()])
        assert result.problems == ()
        assert result.records == 40 * 3


class TestReplayFromOriginalDecisions:
    """A replay from the original decides again: the new decision is a row in ``decisions``
    (re-pointing the delivery when it queues), and the status shows it."""

    async def test_requeue_inserts_the_decision_and_points_the_delivery_at_it(
        self, backend: Backend, keyring: Keyring
    ) -> None:
        # Given a dead letter queued under its ingest decision
        await dead_lettered(backend, keyring)
        assert await decision_of(backend, "dlv_0001") == "dec_0001"
        rebuilt = keyring.seal(b"REBUILT", "dlv_0001")
        event = AuditEvent("delivery.replayed_from_original", {"reason": "r"}, "msg_0001", "csc", "op")
        # When it is requeued with a new decision
        assert await backend.requeue_with_payload(
            "dlv_0001", redecided("dec_0001r", rule="permit-v2"), rebuilt, "application/x-new", [event]
        )
        # Then the delivery points at the new decision, and the status shows it, once
        assert await decision_of(backend, "dlv_0001") == "dec_0001r"
        assert shown(await backend.message_status("msg_0001")) == [
            ("csc", "permit", "permit-v2", "dlv_0001", "ready")
        ]
        assert (await audit_kinds(backend))[-1] == "delivery.replayed_from_original"

    async def test_requeue_writes_nothing_for_a_delivery_that_is_not_that_dead_letter(
        self, backend: Backend, keyring: Keyring
    ) -> None:
        # Given a live delivery (msg 2) and a dead letter (msg 1)
        await dead_lettered(backend, keyring)
        await backend.accept(*records(keyring, 2, child="c2"))
        before = await audit_kinds(backend)
        rebuilt = keyring.seal(b"REBUILT", "dlv_0002")
        event = AuditEvent("delivery.replayed_from_original", {"reason": "r"}, "msg_0002", "csc", "op")
        # When a requeue names the live one, an unknown id, or the dead letter with a decision
        # of another message or recipient
        attempts = [
            ("dlv_0002", redecided("dec_x1", message_id="msg_0002")),
            ("dlv_nope", redecided("dec_x2")),
            ("dlv_0001", redecided("dec_x3", message_id="msg_0002")),
            ("dlv_0001", redecided("dec_x4", recipient="school")),
        ]
        for delivery_id, decision in attempts:
            assert not await backend.requeue_with_payload(delivery_id, decision, rebuilt, "x/y", [event])
        # Then nothing at all was written: no decision, no re-pointing, no audit event
        assert await audit_kinds(backend) == before
        assert await decision_of(backend, "dlv_0002") == "dec_0002"
        assert await decision_of(backend, "dlv_0001") == "dec_0001"
        assert shown(await backend.message_status("msg_0002")) == [
            ("csc", "permit", "permit", "dlv_0002", "ready")
        ]
        assert shown(await backend.message_status("msg_0001")) == [
            ("csc", "permit", "permit", "dlv_0001", "dead")
        ]
        # (the dead letter can still be requeued: the refusals left no decision row behind)
        assert await backend.requeue_with_payload("dlv_0001", redecided("dec_x3"), rebuilt, "x/y", [event])

    async def test_a_failing_requeue_leaves_the_dead_letter_and_its_decision_alone(
        self, backend: Backend, keyring: Keyring, duplicate_key_error: type[Exception]
    ) -> None:
        # Given a dead letter, and a second message whose decision id the requeue reuses
        await dead_lettered(backend, keyring)
        await backend.accept(*records(keyring, 2, child="c2"))
        before = await audit_kinds(backend)
        event = AuditEvent("delivery.replayed_from_original", {"reason": "r"}, "msg_0001", "csc", "op")
        # When the decision cannot be inserted
        with pytest.raises(duplicate_key_error):
            await backend.requeue_with_payload(
                "dlv_0001", redecided("dec_0002"), keyring.seal(b"R", "dlv_0001"), "x/y", [event]
            )
        # Then the delivery was not requeued either (one transaction), nor anything audited
        assert await backend.dead_letter("dlv_0001") is not None
        assert await decision_of(backend, "dlv_0001") == "dec_0001"
        assert await audit_kinds(backend) == before

    async def test_a_refused_replay_records_its_decision_with_its_audit_events(
        self, backend: Backend, keyring: Keyring, duplicate_key_error: type[Exception]
    ) -> None:
        # Given a dead letter
        await dead_lettered(backend, keyring)
        # When a replay from the original is refused (the agreement expired)
        deny = redecided("dec_0001d", "deny", "agreement-expired")
        made = AuditEvent(
            "decision.made", {"decision_id": "dec_0001d", "effect": "deny"}, "msg_0001", "csc", "op"
        )
        await backend.record_decision(deny, [made])
        # Then the status shows the new deny beside the delivery, which stays dead under its
        # old decision, and the decision's event is in the audit
        assert shown(await backend.message_status("msg_0001")) == [
            ("csc", "deny", "agreement-expired", "dlv_0001", "dead")
        ]
        assert await backend.dead_letter("dlv_0001") is not None
        assert await decision_of(backend, "dlv_0001") == "dec_0001"
        records_ = [r async for r in backend.audit_records()]
        assert (records_[-1].kind, records_[-1].data["decision_id"]) == ("decision.made", "dec_0001d")
        # And a decision that cannot be stored leaves no audit event behind (one transaction)
        with pytest.raises(duplicate_key_error):
            await backend.record_decision(deny, [AuditEvent("decision.made", {"decision_id": "again"})])
        assert len([r async for r in backend.audit_records()]) == len(records_)
        assert verify_chain([r async for r in backend.audit_records()]).records == len(records_)

    async def test_status_lists_each_recipient_once_with_its_newest_decision(
        self, backend: Backend, keyring: Keyring
    ) -> None:
        # Given a message decided for csc (permit, queued) and school (deny)
        inbound, decisions, deliveries, audit = records(keyring, 1)
        school = DecisionRecord("dec_0001s", "msg_0001", "school", "deny", "no-agreement", None, (), "v1")
        await backend.accept(inbound, [*decisions, school], deliveries, audit)
        # When later decisions are recorded, with ids that sort before the first ones (newest
        # is by insertion, not by id), twice for csc and once for school
        await backend.record_decision(redecided("dec_0000a", "review", "consent-unknown"), [])
        await backend.record_decision(redecided("dec_0000b", "deny", "agreement-expired"), [])
        await backend.record_decision(
            redecided("dec_0000c", "deny", "nothing-to-share", recipient="school"), []
        )
        # Then each recipient is listed once, in first-decision order, with its newest decision
        assert shown(await backend.message_status("msg_0001")) == [
            ("csc", "deny", "agreement-expired", "dlv_0001", "ready"),
            ("school", "deny", "nothing-to-share", None, None),
        ]
