"""The canonical JSON format (``application/vnd.gateway.message+json``): the first format,
for partners that already speak the gateway's model."""

from __future__ import annotations

from adapters.inputs import dumps, load_json
from canonical import DataDictionary, InvalidInput, Message
from canonical.validate import canonical_violations

NAME = "canonical-json"
MEDIA_TYPE = "application/vnd.gateway.message+json"


class CanonicalJsonAdapter:
    name: str = NAME
    content_types: tuple[str, ...] = (MEDIA_TYPE, "application/json")
    media_type: str = MEDIA_TYPE

    def parse(self, body: bytes, dictionary: DataDictionary) -> Message:
        document = load_json(body, NAME)
        violations = canonical_violations(document, dictionary)
        if violations:
            raise InvalidInput(violations, adapter=NAME)
        return Message.from_dict(document)

    def render(self, message: Message) -> bytes:
        # Recipients never learn whom else the sender named.
        return dumps(message.as_dict(include_recipients=False))
