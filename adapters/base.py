"""The adapter interface: one module per format, bytes in -> canonical out, and back.

Adapters are pure: no I/O, no policy, no clock. ``parse`` raises ``InvalidInput`` naming
the field and the rule (never the value); ``render`` must cope with any category being
absent, because redaction runs before it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from canonical import DataDictionary, Message


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
        """A (redacted) canonical message -> bytes for the recipient."""
        ...
