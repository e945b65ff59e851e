"""XML parsing that a hostile partner cannot turn against us.

``defusedxml`` refuses any DTD (so no external entities and no entity expansion: "billion
laughs" and XXE both end in ``xml-dtd-forbidden``), the body is size-checked before parsing,
and the parsed tree is checked for depth, element count and text length. Every failure is an
``InvalidInput`` with a declared rule; nothing here can hang or crash the caller.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from canonical import InvalidInput, Violation


@dataclass(frozen=True, slots=True)
class XmlLimits:
    max_bytes: int = 8 * 1024 * 1024
    max_depth: int = 24
    max_elements: int = 200_000
    max_text: int = 16 * 1024
    """Characters in one element's text: far above any field of our formats."""


DEFAULT_LIMITS = XmlLimits()


def parse_xml(body: bytes, adapter: str, limits: XmlLimits = DEFAULT_LIMITS) -> ET.Element:
    """Bytes -> the root element, or ``InvalidInput`` naming the rule broken."""

    def refuse(rule: str, message: str) -> InvalidInput:
        return InvalidInput([Violation("/", rule, message)], adapter=adapter)

    if len(body) > limits.max_bytes:
        raise refuse("max-bytes", f"larger than {limits.max_bytes} bytes")
    try:
        root: ET.Element = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise refuse("xml-dtd-forbidden", "DTDs and entity declarations are not accepted") from None
    except ET.ParseError as exc:
        line, column = exc.position
        raise refuse("xml-syntax", f"not well-formed XML (line {line}, column {column})") from None
    except (UnicodeError, LookupError):
        raise refuse("xml-encoding", "the declared or detected encoding cannot be decoded") from None
    count = 0
    stack = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        count += 1
        if depth > limits.max_depth:
            raise refuse("max-depth", f"elements nested deeper than {limits.max_depth} levels")
        if count > limits.max_elements:
            raise refuse("max-elements", f"more than {limits.max_elements} elements")
        if element.text is not None and len(element.text) > limits.max_text:
            raise refuse("max-text", f"an element's text is longer than {limits.max_text} characters")
        stack.extend((child, depth + 1) for child in element)
    return root


def local(tag: str) -> str:
    """An element's name without its namespace."""
    return tag.rsplit("}", 1)[-1]
