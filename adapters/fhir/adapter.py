"""``FhirR4Adapter``: the format object the registry holds."""

from __future__ import annotations

from adapters.fhir.library import check_frame, validate_with_library
from adapters.fhir.parse import to_canonical
from adapters.fhir.reader import NAME
from adapters.fhir.render import to_bundle
from adapters.inputs import dumps, load_json, to_message
from canonical import DataDictionary, Message

MEDIA_TYPE = "application/fhir+json; fhirVersion=4.0"


class FhirR4Adapter:
    """Health FHIR R4 (UK Core) messages: a Bundle of type ``message``.

    ``validate=True`` (the default, and what inbound partner traffic MUST use) validates the
    whole Bundle with ``fhir.resources`` before mapping it; ``validate=False`` is the light
    path: the frame and every mapped element are still shape-checked, but elements the
    adapter does not map are not validated. ``render`` never uses the library (see
    ``adapters.fhir.render``).
    """

    name: str = NAME
    content_types: tuple[str, ...] = ("application/fhir+json",)
    media_type: str = MEDIA_TYPE

    def __init__(self, *, validate: bool = True) -> None:
        self.validate = validate

    def __repr__(self) -> str:
        return f"FhirR4Adapter(validate={self.validate})"

    def parse(self, body: bytes, dictionary: DataDictionary) -> Message:
        document = load_json(body, NAME)
        bundle, resources = check_frame(document)
        if self.validate:
            validate_with_library(document)
        return to_message(to_canonical(bundle, resources, dictionary), dictionary, NAME)

    def render(self, message: Message) -> bytes:
        return dumps(to_bundle(message))
