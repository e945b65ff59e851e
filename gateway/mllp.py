"""The HL7 v2 MLLP listener: asyncio TCP, one ACK per message, ``AA`` only after the durable
commit.

Framing (MLLP release 1): each message is ``0x0B`` + ER7 bytes + ``0x1C 0x0D``.

* Bytes before a frame's start byte are **discarded** (line noise, keep-alive bytes, the
  remains of an aborted frame): the message starts after the last ``0x0B`` before the end
  marker. A block with no ``0x0B`` at all is discarded without an answer.
* A frame longer than ``mllp_max_message_bytes`` (default 1 MiB) is answered ``AE``
  (``mllp-frame-too-large``; MSA-2 empty, the message was not read) and the connection
  closed: the rest of the frame cannot be told from the next one.
* No byte for ``mllp_idle_timeout_seconds`` -> the connection is closed.
* A frame cut by EOF (no ``0x1C 0x0D``) is not a message: nothing is stored, nothing
  answered, the connection closed. Other connections are not affected.
* Many messages per connection are handled one at a time, in order; each gets its ACK
  before the next is read.
* On shutdown idle connections close at once; one storing a message gets
  ``STOP_GRACE_SECONDS`` to finish and send its ACK.

Acknowledgement rules (original mode, HL7 v2.5 section 2.9.2, table 0008):

=====================================================  ====  ==================================
case                                                   MSA-1 ERR-3 (table 0357)
=====================================================  ====  ==================================
stored durably (``pipeline.ingest`` returned)          AA
duplicate MSH-10 from the same sender (idempotency     AA    (the earlier message id; stored
returns the earlier result)                                  once)
content error (``InvalidInput``): bad NHS number,      AE    101 / 102 / 103 / 100
missing segment, bad date...
unreadable MSH, MSH-10 empty                           AE    102 / 101
same MSH-10 again with a different body                AE    205 duplicate key identifier
frame too large                                        AE    102
unsupported type/trigger, processing id, version       AR    200 / 202 / 203
(``UnsupportedHl7Message``)
MSH-4 is no MLLP partner's ODS code                    AR    204 unknown key identifier
our fault (store down, bug)                            AR    207 application internal error;
                                                             MSA-3 says retry later
=====================================================  ====  ==================================

``AR`` for our own failure follows HL7: *reject* is for reasons unrelated to the content
("the receiving system is down"), and a sender may resend later; ``AE`` means the content is
wrong and resending the same bytes cannot succeed. A message is never acknowledged ``AA``
unless ``ingest`` returned, i.e. it is committed.

MSA-3 and ERR carry the location (ERR-2: segment, sequence, field, repetition, component),
the rule (ERR-5) and what was expected (ERR-8), never a value. Every rejection is counted and
audited through ``gateway.rejections.record_rejection`` (source ``unknown`` when the sender
is not known). Logs carry gateway message ids, partner ids and rules only.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import hl7
import structlog
from aiohttp import web
from hl7.util import escape as hl7_escape

from adapters.hl7v2 import (
    MEDIA_TYPE,
    RENDER_APPLICATION,
    RENDER_VERSION,
    Hl7Header,
    UnsupportedHl7Message,
    read_header,
)
from canonical import GatewayError, InvalidInput, Violation
from gateway.api.state import SERVICES
from gateway.config import PartnerRuntime
from gateway.errors import IdempotencyConflict
from gateway.ids import new_id
from gateway.metrics import Metrics
from gateway.pipeline import Pipeline
from gateway.rejections import record_rejection
from gateway.store.base import Store

log = structlog.get_logger("gateway.mllp")

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
MAX_ERR_SEGMENTS = 20
UNKNOWN_SOURCE = "unknown"
STOP_GRACE_SECONDS = 10.0
DRAIN_SECONDS = 5.0
"""How long an oversized frame's remainder is read and dropped before the connection closes."""

MLLP_PORT = web.AppKey("mllp_port", int)
"""The port the listener is bound to (useful with ``mllp.port: 0``); absent when it is off."""

_LOCATION = re.compile(r"([A-Z][A-Z0-9]{2})(?:\[(\d+)\])?(?:-(\d+)(?:\[(\d+)\])?(?:\.(\d+))?)?")
_ERROR_CODES = {
    "hl7-required-segment": ("100", "Segment sequence error"),
    "hl7-segment-repeated": ("100", "Segment sequence error"),
    "hl7-required-field": ("101", "Required field missing"),
    "hl7-code": ("103", "Table value not found"),
    "mllp-known-sender": ("204", "Unknown key identifier"),
    "mllp-control-id-reused": ("205", "Duplicate key identifier"),
    "internal-error": ("207", "Application internal error"),
}
_UNSUPPORTED_CODES = {
    "MSH-11": ("202", "Unsupported processing id"),
    "MSH-12": ("203", "Unsupported version id"),
}


class UnknownMllpSender(InvalidInput):
    """MSH-4 is not the ODS code of a partner configured with ``inbound.mllp: true``."""

    title = "Unknown MLLP sender"
    status = 403
    type_slug = "unknown-mllp-sender"


def mllp_senders(partners: Mapping[str, PartnerRuntime]) -> dict[str, str]:
    """ODS code (upper case) -> partner id, for partners that send over MLLP (start-up has
    already refused two MLLP partners with one ODS code)."""
    return {
        p.inbound.ods_code.strip().upper(): pid
        for pid, p in partners.items()
        if p.inbound.mllp and p.inbound.ods_code
    }


def build_ack(
    code: str,
    header: Hl7Header | None,
    *,
    now: datetime,
    control_id: str,
    text: str = "",
    violations: Sequence[Violation] = (),
    unsupported: bool = False,
) -> bytes:
    """An ACK built with the library's containers: MSH (from ``header``, or empty when the
    inbound MSH could not be read), MSA (MSA-2 = inbound MSH-10) and one ERR per violation."""
    source = hl7.parse("MSH|^~\\&")
    msh = source[0]
    if header is not None:
        values = {
            3: header.sending_application,
            4: header.sending_facility,
            5: header.receiving_application,
            6: header.receiving_facility,
            10: header.control_id,
            11: header.processing_id,
            12: header.version,
        }
        for n, value in values.items():
            msh.assign_field(hl7_escape(source, value), n)
        msh.assign_field(hl7_escape(source, header.message_type), 9, 1, 1)
        msh.assign_field(hl7_escape(source, header.trigger), 9, 1, 2)
    else:
        for n in (3, 4, 5, 6, 10):
            msh.assign_field("", n)
        msh.assign_field("", 9, 1, 1)
        msh.assign_field("", 9, 1, 2)
        msh.assign_field("P", 11)
        msh.assign_field(RENDER_VERSION, 12)
    ack = source.create_ack(ack_code=code, message_id=control_id, application=RENDER_APPLICATION)
    # create_ack stamps a naive UTC time; ours carries its offset (and comes from our clock).
    ack[0].assign_field(now.strftime("%Y%m%d%H%M%S+0000"), 7)
    if text:
        ack[1].assign_field(hl7_escape(ack, text[:80]), 3)
    for v in violations[:MAX_ERR_SEGMENTS]:
        ack.append(_err_segment(ack, v, unsupported=unsupported))
    return str(ack).encode("utf-8")


def _err_segment(ack: hl7.Message, violation: Violation, *, unsupported: bool) -> hl7.Segment:
    err = ack.create_segment([ack.create_field(["ERR"])])
    m = _LOCATION.fullmatch(violation.field)
    if m is not None:
        segment, sequence, field_num, rep, comp = m.groups()
        parts = [segment, sequence or "1", field_num or "", rep or ("1" if field_num else ""), comp or ""]
        while not parts[-1]:
            parts.pop()
        for n, part in enumerate(parts, start=1):
            err.assign_field(part, 2, 1, n)
    if unsupported:
        code, meaning = _UNSUPPORTED_CODES.get(violation.field, ("200", "Unsupported message type"))
    else:
        code, meaning = _ERROR_CODES.get(violation.rule, ("102", "Data type error"))
    err.assign_field(code, 3, 1, 1)
    err.assign_field(meaning, 3, 1, 2)
    err.assign_field("HL70357", 3, 1, 3)
    err.assign_field("E", 4)
    err.assign_field(hl7_escape(ack, violation.rule), 5, 1, 1)
    if m is None:
        # A canonical pointer (``canonical:/people/0/name``) or a whole-message rule.
        err.assign_field(hl7_escape(ack, violation.field), 7)
    err.assign_field(hl7_escape(ack, violation.message), 8)
    return err


def frame(payload: bytes) -> bytes:
    return START_BLOCK + payload + END_BLOCK


class MllpListener:
    """Connections in, ACKs out. ``answer`` is the whole per-message contract (testable
    without a socket); ``handle`` is the framing loop of one connection."""

    def __init__(
        self,
        *,
        pipeline: Pipeline,
        store: Store,
        metrics: Metrics,
        senders: Mapping[str, str],
        max_message_bytes: int,
        idle_timeout_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._pipeline = pipeline
        self._store = store
        self._metrics = metrics
        self._senders = dict(senders)
        self._max = max_message_bytes
        self._idle = idle_timeout_seconds
        self._clock = clock
        self._connections: set[asyncio.Task[None]] = set()
        self._busy: set[asyncio.Task[Any]] = set()
        """Connections storing a message right now: given time to finish on shutdown."""
        self._closing = False

    @property
    def stream_limit(self) -> int:
        """The ``StreamReader`` limit: a frame's content plus its start byte."""
        return self._max + len(START_BLOCK)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            log.info("mllp.connection_lost")
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                async with asyncio.timeout(self._idle):
                    block = await reader.readuntil(END_BLOCK)
            except TimeoutError:
                log.info("mllp.idle_timeout", seconds=self._idle)
                return
            except asyncio.IncompleteReadError as exc:
                if exc.partial.strip():
                    log.warning("mllp.truncated_frame", bytes=len(exc.partial))
                return
            except asyncio.LimitOverrunError:
                await self._refuse_oversized(reader, writer)
                return
            start = block.rfind(START_BLOCK)
            if start < 0:
                log.warning("mllp.noise_discarded", bytes=len(block))
                continue
            if start > 0:
                log.info("mllp.bytes_before_frame_discarded", bytes=start)
            body = block[start + 1 : -len(END_BLOCK)]
            if len(body) > self._max:  # the limit is approximate when noise came first
                await self._refuse_oversized(reader, writer)
                return
            task = asyncio.current_task()
            if task is not None:
                self._busy.add(task)
            try:
                ack = await self.answer(body)
            finally:
                if task is not None:
                    self._busy.discard(task)
            writer.write(frame(ack))
            await writer.drain()
            if self._closing:
                return

    async def _refuse_oversized(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        exc = InvalidInput(
            [
                Violation(
                    "message", "mllp-frame-too-large", f"an MLLP frame must be at most {self._max} bytes"
                )
            ],
            adapter="hl7v2",
        )
        log.warning("mllp.rejected", source=UNKNOWN_SOURCE, rule="mllp-frame-too-large", ack="AE")
        await self._record(UNKNOWN_SOURCE, exc)
        writer.write(frame(self._ack("AE", None, exc)))
        await writer.drain()
        # Read (and drop) what the sender is still writing before closing: closing a socket
        # with unread input sends a TCP reset, which can destroy the AE before it is read.
        if writer.can_write_eof():
            writer.write_eof()
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(min(self._idle, DRAIN_SECONDS)):
                while await reader.read(65536):
                    pass

    async def answer(self, body: bytes) -> bytes:
        """One message's ACK. ``AA`` only once ``pipeline.ingest`` has returned (committed)."""
        try:
            header = read_header(body)
        except InvalidInput as exc:
            return await self._reject(UNKNOWN_SOURCE, None, "AE", exc)
        source = self._senders.get(header.sending_facility.strip().upper())
        if source is None:
            unknown = UnknownMllpSender(
                [
                    Violation(
                        "MSH-4",
                        "mllp-known-sender",
                        "MSH-4 must be the ODS code of a partner configured with inbound.mllp",
                    )
                ],
                adapter="hl7v2",
            )
            return await self._reject(UNKNOWN_SOURCE, header, "AR", unknown)
        try:
            accepted = await self._pipeline.ingest(
                source, MEDIA_TYPE, body, idempotency_key=f"mllp:{header.control_id}"
            )
        except UnsupportedHl7Message as exc:
            return await self._reject(source, header, "AR", exc)
        except InvalidInput as exc:
            return await self._reject(source, header, "AE", exc)
        except IdempotencyConflict as exc:
            conflict = InvalidInput(
                [
                    Violation(
                        "MSH-10",
                        "mllp-control-id-reused",
                        "this MSH-10 was already used for another message; use a new control id",
                    )
                ],
                adapter="hl7v2",
            )
            await self._record(source, exc)
            log.warning("mllp.rejected", source=source, rule=exc.type_slug, ack="AE")
            return self._ack("AE", header, conflict)
        except GatewayError as exc:
            internal = exc.status >= 500
            code = "AR" if internal else "AE"
            await self._record(source, exc)
            log.warning("mllp.rejected", source=source, rule=exc.type_slug, ack=code)
            rule = "internal-error" if internal else exc.type_slug
            return self._ack(code, header, InvalidInput([Violation("message", rule, exc.title)]))
        except Exception as exc:  # noqa: BLE001 - our fault: the sender must hear AR, not a closed socket
            log.error("mllp.internal_error", source=source, error=type(exc).__name__)
            await self._record(source, GatewayError("internal error"))
            failure = InvalidInput(
                [
                    Violation(
                        "message", "internal-error", "the gateway could not store the message; retry later"
                    )
                ]
            )
            return self._ack("AR", header, failure, text="internal error: not stored, retry later")
        log.info(
            "mllp.accepted",
            source=source,
            message_id=accepted.message_id,
            duplicate=accepted.duplicate,
            queued=len(accepted.recipients),
        )
        # MSA-3 names the gateway's id (the earlier one for a duplicate): a sender can quote it.
        return build_ack(
            "AA",
            header,
            now=self._now(),
            control_id=self._control_id(),
            text=f"stored as {accepted.message_id}",
        )

    async def _reject(self, source: str, header: Hl7Header | None, code: str, exc: InvalidInput) -> bytes:
        await self._record(source, exc)
        log.warning("mllp.rejected", source=source, rule=exc.reason, ack=code)
        return self._ack(code, header, exc)

    async def _record(self, source: str, exc: GatewayError) -> None:
        try:
            await record_rejection(self._store, self._metrics, source, exc, transport="mllp")
        except Exception as failure:  # noqa: BLE001 - the ACK must still go out when the audit cannot
            log.error("mllp.rejection_not_recorded", source=source, error=type(failure).__name__)

    def _ack(self, code: str, header: Hl7Header | None, exc: InvalidInput, *, text: str = "") -> bytes:
        first = exc.violations[0] if exc.violations else None
        summary = text or (f"{first.field} {first.rule}" if first else exc.type_slug)
        return build_ack(
            code,
            header,
            now=self._now(),
            control_id=self._control_id(),
            text=summary,
            violations=exc.violations,
            unsupported=isinstance(exc, UnsupportedHl7Message),
        )

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    @staticmethod
    def _control_id() -> str:
        return new_id("ack")

    async def stop(self, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
        """Close every connection. One that is storing a message gets ``grace_seconds`` to
        finish and send its ACK; after that it is cancelled and its sender, without an ACK,
        resends — idempotency (MSH-10) keeps the message stored once."""
        self._closing = True
        every = list(self._connections)
        idle = [t for t in every if t not in self._busy]
        for task in idle:
            task.cancel()
        busy = list(self._busy)
        if busy:
            _, pending = await asyncio.wait(busy, timeout=grace_seconds)
            for task in pending:
                task.cancel()
        await asyncio.gather(*every, return_exceptions=True)


async def serve_mllp(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: the listener on ``settings.mllp_host:mllp_port`` while the app runs
    (nothing when ``mllp_port`` is ``None``); the bound port in ``app[MLLP_PORT]``."""
    svc = app[SERVICES]
    s = svc.deployment.settings
    if s.mllp_port is None:
        yield
        return
    listener = MllpListener(
        pipeline=svc.pipeline,
        store=svc.backend,
        metrics=svc.metrics,
        senders=mllp_senders(svc.deployment.partners),
        max_message_bytes=s.mllp_max_message_bytes,
        idle_timeout_seconds=s.mllp_idle_timeout_seconds,
    )
    server = await asyncio.start_server(
        listener.handle, s.mllp_host, s.mllp_port, limit=listener.stream_limit
    )
    port = int(server.sockets[0].getsockname()[1])
    app[MLLP_PORT] = port
    log.info("mllp.listening", host=s.mllp_host, port=port)
    try:
        yield
    finally:
        server.close()
        await listener.stop()
        await server.wait_closed()
        log.info("mllp.stopped")
