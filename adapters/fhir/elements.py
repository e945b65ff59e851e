"""Readers of the FHIR datatypes the mapping uses (Extension, Meta.security, HumanName,
Address, CodeableConcept, Attachment), on shape-checked ``Node``s. Each returns canonical
values or ``None``; none puts a value in an error."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from adapters.fhir import codes
from adapters.fhir.reader import NAME, Node, reject
from adapters.inputs import load_json
from canonical import InvalidInput

MAX_PAYLOAD = 1_000_000
"""Longest base64 ``Attachment.data`` of an item carrier (an item's ``data`` object): four
times the gateway's default body limit of 256 KiB, so only the body limit ever applies."""

JSON = dict[str, Any]


def extensions(resource: Node, url: str) -> list[Node]:
    return [ext for ext in resource.objs("extension") if ext.text("url", 400) == url]


def security_labels(resource: Node) -> set[str]:
    """The canonical labels in ``meta.security`` (a code counts only in its own system;
    other codes, such as confidentiality N or purpose-of-use codes, are not carried)."""
    meta = resource.obj("meta")
    found: set[str] = set()
    for coding in meta.objs("security") if meta is not None else []:
        code = coding.text("code", 40) or ""
        if code in codes.LABEL_SYSTEMS and coding.text("system", 200) == codes.LABEL_SYSTEMS[code]:
            found.add(code)
    return found


def human_name(names: list[Node]) -> JSON:
    if not names:
        return {}
    chosen = next((n for n in names if n.text("use", 40) == "official"), names[0])
    out: JSON = {}
    given = " ".join(chosen.texts("given", 200))
    if given:
        out["given"] = given
    put(out, "family", chosen.text("family", 200))
    return out


def address(address: Node) -> JSON:
    out: JSON = {}
    use = codes.ADDRESS_USE_IN.get(address.text("use", 40) or "")
    if use is None and address.text("type", 40) == "postal" and address.value.get("use") is None:
        use = codes.CORRESPONDENCE
    put(out, "use", use)
    lines = address.texts("line", 200) + [
        text for key in ("city", "district") if (text := address.text(key, 200))
    ]
    if lines:
        out["lines"] = lines
    put(out, "postcode", address.text("postalCode", 10))
    return out


def concept_text(concepts: list[Node]) -> str | None:
    """The first CodeableConcept's text, else its first coding's display."""
    if not concepts:
        return None
    text = concepts[0].text("text", 2000)
    if text:
        return text
    codings = concepts[0].objs("coding")
    return codings[0].text("display", 2000) if codings else None


def code_in(concepts: list[Node], system: str) -> str | None:
    for concept in concepts:
        for coding in concept.objs("coding"):
            if coding.text("system", 200) == system:
                return coding.text("code", 100)
    return None


def attached_json(attachment: Node) -> JSON:
    data = attachment.text("data", MAX_PAYLOAD) or ""
    where = attachment.at("data")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise reject(where, "base64", "expected base64 (RFC 4648) data") from None
    try:
        decoded = load_json(raw, NAME)
    except InvalidInput as exc:
        # Re-locate: load_json names the root of the decoded document.
        first = exc.violations[0]
        raise reject(where, first.rule, f"the attached JSON: {first.message}") from None
    if not isinstance(decoded, dict):
        raise reject(where, "fhir-type", "the attached JSON must be an object (the item's data)")
    return decoded


def put(target: JSON, key: str, value: str | None) -> None:
    if value:
        target[key] = value
