"""What the three police formats share: the parse pipeline, per-force configuration and the
envelope fields.

Parse: ``load_json`` (UTF-8, syntax, depth) -> the force's field mapping, if configured ->
our JSON Schema -> the format's own rules and the canonical document -> ``to_message``.
Every violation names a JSON pointer into the document *the force sent*: when a mapping is
configured, pointers into the mapped document are run back through the mapping's renames
(``FieldMapping.native_pointer``) and the message adds our field name. Violations of the
canonical model (prefixed ``canonical:``) are left in canonical terms.

Render: canonical -> our JSON. A section whose category redaction removed is omitted, even
where the schema requires it of a sender; nothing is invented. ``message_id``, ``source``
and ``received_at`` travel in the ``gateway`` object, which a parser ignores (the gateway
assigns them); the sender's named recipients are never rendered (a recipient must not learn
whom else the sender named), the same rule as ``canonical-json``.

MUST NOT: quote a value in any error, do I/O, read a clock.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from adapters.base import AdapterOptionsError, NotRenderable
from adapters.field_mapping import FieldMapping
from adapters.inputs import check_schema, dumps, load_json, to_message
from canonical import DataDictionary, InvalidInput, Message, Violation

OPTIONS = frozenset({"field_mapping"})
PROFESSIONAL = "professional"


class PoliceJsonAdapter(ABC):
    """One police JSON format; immutable, one instance per configured force."""

    name: str
    content_types: tuple[str, ...]
    media_type: str
    schema: ClassVar[str]
    """The file in ``schemas/`` a (mapped) document must satisfy."""
    event_type: ClassVar[str]
    purpose: ClassVar[str]

    def __init__(self, mapping: FieldMapping | None = None) -> None:
        self._mapping = mapping

    @property
    def mapping(self) -> FieldMapping | None:
        return self._mapping

    def configure(self, options: Mapping[str, Any]) -> PoliceJsonAdapter:
        """A copy for one force. ``options["field_mapping"]``: the loaded mapping document.

        Raises ``AdapterOptionsError`` for an unknown option or a bad mapping (naming the
        pointer inside the mapping and the rule)."""
        unknown = sorted(str(k) for k in options if k not in OPTIONS)
        if unknown:
            raise AdapterOptionsError(
                f"{self.name}: unknown option(s) {', '.join(unknown)}; known: field_mapping_file"
            )
        raw = options.get("field_mapping")
        if raw is None:
            return type(self)()
        try:
            mapping = FieldMapping.compile(raw)
        except AdapterOptionsError as exc:
            raise AdapterOptionsError(f"{self.name}: {exc.detail}") from None
        if mapping.format is not None and mapping.format != self.name:
            raise AdapterOptionsError(
                f"{self.name}: field_mapping /format (format-matches): the mapping is written for "
                f"another format ({mapping.format})"
            )
        return type(self)(mapping)

    def parse(self, body: bytes, dictionary: DataDictionary) -> Message:
        document = load_json(body, self.name)
        if self._mapping is not None:
            # Its own errors already point into the force's document.
            document = self._mapping.apply(document, self.name)
        try:
            check_schema(self.schema, document, self.name)
            problems: list[Violation] = []
            canonical = self.to_canonical(document, problems)
            if problems:
                raise InvalidInput(problems, adapter=self.name)
        except InvalidInput as exc:
            if self._mapping is None:
                raise
            raise InvalidInput(self._mapping.native_violations(exc.violations), adapter=self.name) from None
        return to_message(canonical, dictionary, self.name)

    def render(self, message: Message) -> bytes:
        if message.envelope.event_type != self.event_type:
            raise NotRenderable(
                f"{self.name} carries only {self.event_type} events, not {message.envelope.event_type}"
            )
        return dumps(self.to_native(message))

    @abstractmethod
    def to_canonical(self, document: dict[str, Any], problems: list[Violation]) -> dict[str, Any]:
        """A schema-valid document -> a canonical document; rule breaks go to ``problems``."""

    @abstractmethod
    def to_native(self, message: Message) -> dict[str, Any]:
        """A (redacted) canonical message -> our document; ``NotRenderable`` if it cannot."""


def envelope(
    adapter: type[PoliceJsonAdapter] | PoliceJsonAdapter,
    document: Mapping[str, Any],
    *,
    occurred_at: str,
    sender_reference: str,
    risk_of_significant_harm: bool = False,
    recipients: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The canonical envelope; flags appear only when set (as ``Flags.as_dict`` writes them)."""
    out: dict[str, Any] = {
        "event_type": adapter.event_type,
        "occurred_at": occurred_at,
        "purpose": adapter.purpose,
        "sender_reference": sender_reference,
    }
    flags = {
        "risk_of_significant_harm": risk_of_significant_harm
        or bool(document.get("risk_of_significant_harm")),
        "do_not_inform_family": bool(document.get("do_not_inform_family")),
    }
    if any(flags.values()):
        out["flags"] = {k: True for k, v in flags.items() if v}
    if recipients:
        out["recipients"] = list(recipients)
    return out


def envelope_to_native(message: Message) -> dict[str, Any]:
    """Flags and the gateway's own fields, in our documents' top-level names."""
    env = message.envelope
    out: dict[str, Any] = {}
    if env.flags.risk_of_significant_harm:
        out["risk_of_significant_harm"] = True
    if env.flags.do_not_inform_family:
        out["do_not_inform_family"] = True
    gateway = {"message_id": env.message_id, "source": env.source, "received_at": env.received_at}
    gateway = {k: v for k, v in gateway.items() if v}
    if gateway:
        out["gateway"] = gateway
    return out


def item(category: str, type_: str, about: list[str], data: dict[str, Any]) -> dict[str, Any]:
    """A canonical item; ``about`` is omitted when empty (as ``Item.as_dict`` writes it)."""
    out: dict[str, Any] = {"category": category, "type": type_}
    if about:
        out["about"] = about
    out["data"] = data
    return out


def single(message: Message, category: str, adapter: str) -> dict[str, Any] | None:
    """The data of the one item of ``category`` (``None`` if redaction removed it).

    Each of our formats has one place per category; a second item would have to be dropped
    or merged, so it is refused instead (``NotRenderable``), naming only the category."""
    found = [i for i in message.items if i.category == category]
    if len(found) > 1:
        raise NotRenderable(f"{adapter} carries one {category} item; this message has {len(found)}")
    return dict(found[0].data) if found else None


def text(data: Mapping[str, Any] | None, key: str) -> str | None:
    """``data[key]`` if it is a non-empty string (a foreign canonical message may hold anything)."""
    value = data.get(key) if data is not None else None
    return value if isinstance(value, str) and value else None


def duplicate_ids(ids: list[tuple[str, str]]) -> list[Violation]:
    """``(pointer, id)`` pairs -> a violation for each id already used earlier."""
    seen: set[str] = set()
    out = []
    for at, ident in ids:
        if ident in seen:
            out.append(Violation(at, "unique-id", "another person in this document already uses this id"))
        seen.add(ident)
    return out


def offender_history_items(entries: Any, known: set[str], problems: list[Violation]) -> list[dict[str, Any]]:
    """Our ``offender_history`` entries -> ``police.offender-history`` items; ``person``
    must be the id of a person in the document (``known-person-id``)."""
    out = []
    for i, entry in enumerate(entries):
        person = entry.get("person")
        if person is not None and person not in known:
            problems.append(
                Violation(
                    f"/offender_history/{i}/person",
                    "known-person-id",
                    "no person in this document has this id",
                )
            )
        about = [person] if person is not None else []
        out.append(item("police.offender-history", "offending-history", about, {"text": entry["text"]}))
    return out


def offender_history_to_native(message: Message) -> list[dict[str, Any]]:
    """Each ``police.offender-history`` item with text; ``person`` is its first subject still
    present (redaction may have removed the subject and kept the item)."""
    present = {p.ref for p in message.people if p.role != PROFESSIONAL}
    out = []
    for entry in message.items:
        if entry.category != "police.offender-history":
            continue
        history = text(entry.data, "text")
        if history is None:
            continue
        native: dict[str, Any] = {}
        subjects = [r for r in entry.about if r in present]
        if subjects:
            native["person"] = subjects[0]
        native["text"] = history
        out.append(native)
    return out
