"""The one error hierarchy of the product.

::

    GatewayError                      base; never carries a partner's values
    ├── InvalidInput                  permanent: the sender must fix the message (HTTP 4xx, HL7 AE)
    │   └── (gateway) UnsupportedMediaType, PayloadTooLarge, UnknownRecipient ...
    ├── (gateway) AuthError           401 / 403
    ├── (gateway) ConflictError       409: idempotency key reused with another body
    ├── (gateway) ConfigError         start-up refused: file, path inside it, rule broken
    ├── (gateway) DeliveryError       a delivery attempt failed
    │   ├── RetryableDeliveryError    timeouts, 5xx, 408/429, connection refused: retry later
    │   └── PermanentDeliveryError    4xx, render failure: dead-letter now
    └── (gateway) NotFound            404

The root lives here, in the pure core, so adapters and the consent engine raise the same
errors the gateway answers with. An error names the message id, the adapter, the field path
and the rule, and MUST NOT include the offending value: a value may be a child's address.
"""

from __future__ import annotations

from dataclasses import dataclass


class GatewayError(Exception):
    """Base of every error the product raises on purpose."""

    title = "Gateway error"
    status = 500
    type_slug = "gateway-error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule: where (a JSON pointer into the message) and which rule.

    ``message`` is written by us from the schema side only; it MUST NOT quote the value.
    """

    field: str
    rule: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "rule": self.rule, "message": self.message}


class InvalidInput(GatewayError):
    """The input breaks a schema or a semantic rule; retrying the same bytes cannot succeed."""

    title = "Invalid message"
    status = 422
    type_slug = "invalid-message"

    def __init__(self, violations: list[Violation], *, adapter: str = "", detail: str = "") -> None:
        self.violations = violations
        self.adapter = adapter
        if not detail:
            first = violations[0] if violations else None
            detail = (
                f"{len(violations)} rule(s) broken; first: {first.field or '/'} ({first.rule})"
                if first
                else "the message is invalid"
            )
        super().__init__(detail)

    @property
    def reason(self) -> str:
        """A short metric label: the first rule broken (bounded cardinality)."""
        return self.violations[0].rule if self.violations else "invalid"
