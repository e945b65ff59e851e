"""What the four social-care formats share: the parse pipeline and the self-checking
render (``SocialCareJson``), the gateway block, the envelope, and small item helpers.

Contracts (every format module relies on them):

* ``parse``: bounded UTF-8 JSON (``adapters.inputs.load_json``) -> the format's schema ->
  the rules a schema cannot say (check characters of NHS numbers and UPNs, plan and period
  dates) -> a canonical document -> ``to_message``. Every violation names the JSON pointer
  of the *native* field and a rule; it MUST NOT quote the value.
* The ``gateway`` block (message id, source, received time) is written by ``render`` and
  ignored by ``parse``: the gateway assigns those fields itself.
* ``render`` raises ``NotRenderable`` for another event type, or when the format's
  ``_native`` finds no child or no defining item; the rendered document is checked against
  the format's own schema and rules before it is returned, so a recipient never gets a
  document that we would refuse. A ``NotRenderable`` reason names the event type and the
  format, never a value.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from adapters.base import NotRenderable
from adapters.inputs import check_schema, dumps, load_json, to_message
from canonical import DataDictionary, InvalidInput, Item, Message, Person, Violation
from canonical.validate import fast_check

JSON = dict[str, Any]

CHILD_REF = "child-1"


def content_type_for(name: str) -> str:
    """The content type (and media type) of a format: ``application/vnd.gateway.<name>+json``."""
    return f"application/vnd.gateway.{name}+json"


class SocialCareJson(ABC):
    """What the four formats share: the parse pipeline, the gateway block, and a render
    that refuses to emit a document its own parser would refuse."""

    name: str
    content_types: tuple[str, ...]
    media_type: str
    schema: ClassVar[str]
    event_types: ClassVar[tuple[str, ...]]

    def parse(self, body: bytes, dictionary: DataDictionary) -> Message:
        document = load_json(body, self.name)
        check_schema(self.schema, document, self.name)
        problems = self._rules(document)
        canonical = self._canonical(document, problems)
        if problems:
            raise InvalidInput(problems, adapter=self.name)
        return to_message(canonical, dictionary, self.name)

    def render(self, message: Message) -> bytes:
        event_type = message.envelope.event_type
        if event_type not in self.event_types:
            raise NotRenderable(f"{event_type} messages cannot be rendered as {self.name}")
        document = self._native(message)
        if document is None or not fast_check(self.schema)(document) or self._rules(document):
            raise NotRenderable(
                f"this {event_type} message lacks what {self.name} requires "
                "(e.g. its child or its defining item, perhaps redacted)"
            )
        gateway = _gateway_block(message)
        if gateway:
            document["gateway"] = gateway
        return dumps(document)

    def _rules(self, document: JSON) -> list[Violation]:
        """Rules the schema cannot say, on a schema-valid document (identifiers aside)."""
        return []

    @abstractmethod
    def _canonical(self, document: JSON, problems: list[Violation]) -> JSON:
        """A schema-valid native document -> a canonical document; identifier problems are
        appended to ``problems``."""

    @abstractmethod
    def _native(self, message: Message) -> JSON | None:
        """A canonical message -> the native document, or ``None`` if it has no child or no
        defining item (``render`` then raises ``NotRenderable``)."""


def child_of(message: Message) -> Person | None:
    """The message's first person with role ``child``."""
    return next((p for p in message.people if p.role == "child"), None)


def find_item(message: Message, category: str, item_type: str) -> Item | None:
    """The message's first item of that category and type."""
    return next((i for i in message.items if i.category == category and i.type == item_type), None)


def _gateway_block(message: Message) -> JSON:
    env = message.envelope
    fields = {"message_id": env.message_id, "source": env.source, "received_at": env.received_at}
    return {k: v for k, v in fields.items() if v}


def envelope(document: JSON, event_type: str, purpose: str, occurred_key: str) -> JSON:
    """The canonical envelope of a native document: its event type, purpose, reference,
    the time under ``occurred_key``, and the two flags when the document sets them."""
    out: JSON = {
        "event_type": event_type,
        "occurred_at": document[occurred_key],
        "purpose": purpose,
        "sender_reference": document["reference"],
    }
    flags = {k: True for k in ("risk_of_significant_harm", "do_not_inform_family") if document.get(k) is True}
    if flags:
        out["flags"] = flags
    return out


def copy_keys(source: Mapping[str, Any], pairs: tuple[tuple[str, str], ...]) -> JSON:
    """``{target: source[key]}`` for each ``(key, target)`` whose key is present."""
    return {target: source[key] for key, target in pairs if source.get(key) is not None}


def about_child(category: str, item_type: str, data: JSON) -> JSON:
    """An item about the child (every item these formats produce is about the child)."""
    return {"category": category, "type": item_type, "about": [CHILD_REF], "data": data}
