"""The canonical message: the one model every adapter translates to and from.

Pure: no I/O, no clock, no imports from ``gateway``, ``adapters`` or ``consent``.
"""

from canonical.dictionary import DataDictionary, default_dictionary
from canonical.errors import GatewayError, InvalidInput, Violation
from canonical.model import (
    Address,
    Contact,
    Envelope,
    Flags,
    Identifier,
    Item,
    Message,
    Name,
    Person,
)

__all__ = [
    "Address",
    "Contact",
    "DataDictionary",
    "Envelope",
    "Flags",
    "GatewayError",
    "Identifier",
    "InvalidInput",
    "Item",
    "Message",
    "Name",
    "Person",
    "Violation",
    "default_dictionary",
]
