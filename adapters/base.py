"""The adapter interface: one module per format, bytes in -> canonical out, and back.

Adapters are pure: no I/O, no policy, no clock. ``parse`` raises ``InvalidInput`` naming
the field (in the *native* format's own terms: ``PID-3``, ``/CTfile/Header/DateTime``,
``Bundle.entry[2].resource.birthDate``) and the rule, never the value; ``render`` must cope
with any category being absent, because redaction runs before it, and raises
``NotRenderable`` for a message its format cannot carry (the delivery is dead-lettered
with that reason; nothing else is affected).

Two optional capabilities, found with ``isinstance`` on the protocols below:

* ``BatchAdapter.parse_batch`` — a format whose one file carries several messages (a CTF
  with thirty pupils, a CIN census return). ``parse`` on such an adapter accepts a batch of
  exactly one message.
* ``ConfigurableAdapter.configure`` — per-partner options from ``partners.yaml``
  (``inbound.adapter_options``), e.g. a police force's field-mapping file. Called once at
  start-up; a bad option raises ``AdapterOptionsError`` and start-up stops.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from canonical import DataDictionary, GatewayError, Message


class NotRenderable(GatewayError):
    """This format cannot carry this message (e.g. a police event as HL7 v2 ADT).

    Permanent: the delivery is dead-lettered at once with ``render-failed:NotRenderable``.
    The detail names the event type and the format, never content.
    """

    title = "Message cannot be rendered in the recipient's format"
    status = 500
    type_slug = "not-renderable"


class AdapterOptionsError(GatewayError):
    """A partner's ``inbound.adapter_options`` for a format are wrong; start-up stops."""

    title = "Invalid adapter options"
    type_slug = "adapter-options"


@runtime_checkable
class Adapter(Protocol):
    """A format: its name (used in partner configuration), the content types it accepts
    and the one it renders."""

    name: str
    content_types: tuple[str, ...]
    media_type: str

    def parse(self, body: bytes, dictionary: DataDictionary) -> Message:
        """Bytes from a partner -> a validated canonical message. Raises ``InvalidInput``."""
        ...

    def render(self, message: Message) -> bytes:
        """A (redacted) canonical message -> bytes for the recipient. Raises ``NotRenderable``."""
        ...


@runtime_checkable
class BatchAdapter(Adapter, Protocol):
    def parse_batch(self, body: bytes, dictionary: DataDictionary) -> tuple[Message, ...]:
        """One file -> every message it carries, in file order; all valid or ``InvalidInput``
        (whose fields name the record, e.g. ``/CTfile/CTFpupilData/Pupil[3]/UPN``)."""
        ...


@runtime_checkable
class ConfigurableAdapter(Adapter, Protocol):
    def configure(self, options: Mapping[str, Any]) -> Adapter:
        """A copy of this adapter for one partner. Raises ``AdapterOptionsError``."""
        ...
