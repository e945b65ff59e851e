"""The canonical JSON format (``application/vnd.gateway.message+json``): the first format,
for partners that already speak the gateway's model."""

from __future__ import annotations

import json
from typing import Any

from canonical import DataDictionary, InvalidInput, Message, Violation
from canonical.validate import canonical_violations

NAME = "canonical-json"
MEDIA_TYPE = "application/vnd.gateway.message+json"


class CanonicalJsonAdapter:
    name: str = NAME
    content_types: tuple[str, ...] = (MEDIA_TYPE, "application/json")
    media_type: str = MEDIA_TYPE

    def parse(self, body: bytes, dictionary: DataDictionary) -> Message:
        try:
            document: Any = json.loads(body)
        except UnicodeDecodeError:
            raise InvalidInput(
                [Violation("/", "utf-8", "the body must be UTF-8 encoded JSON")], adapter=NAME
            ) from None
        except json.JSONDecodeError as exc:
            # Position only: the exception's own text can quote the sender's bytes.
            raise InvalidInput(
                [Violation("/", "json-syntax", f"not valid JSON (line {exc.lineno}, column {exc.colno})")],
                adapter=NAME,
            ) from None
        violations = canonical_violations(document, dictionary)
        if violations:
            raise InvalidInput(violations, adapter=NAME)
        return Message.from_dict(document)

    def render(self, message: Message) -> bytes:
        # Recipients never learn whom else the sender named.
        return json.dumps(
            message.as_dict(include_recipients=False), separators=(",", ":"), ensure_ascii=False
        ).encode()
