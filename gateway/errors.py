"""Gateway-side errors, extending the one hierarchy rooted in ``canonical.errors``.

::

    GatewayError
    ├── InvalidInput (canonical)          422 problem+json / HL7 AE
    │   ├── UnsupportedMediaType          415
    │   ├── PayloadTooLarge               413
    │   └── UnknownRecipient              422
    ├── AuthError                         401 (unknown or missing token)
    │   └── Forbidden                     403 (known partner, not theirs)
    ├── NotFound                          404
    ├── IdempotencyConflict               409
    ├── ConfigError                       start-up refused
    └── DeliveryError
        ├── RetryableDeliveryError        retry with backoff
        └── PermanentDeliveryError        dead-letter now
"""

from __future__ import annotations

from canonical.errors import GatewayError, InvalidInput, Violation

__all__ = [
    "AuthError",
    "ConfigError",
    "DeliveryError",
    "Forbidden",
    "GatewayError",
    "IdempotencyConflict",
    "InvalidInput",
    "NotFound",
    "PayloadTooLarge",
    "PermanentDeliveryError",
    "RetryableDeliveryError",
    "UnknownRecipient",
    "UnsupportedMediaType",
    "Violation",
]


class UnsupportedMediaType(InvalidInput):
    title = "Unsupported media type"
    status = 415
    type_slug = "unsupported-media-type"


class PayloadTooLarge(InvalidInput):
    title = "Payload too large"
    status = 413
    type_slug = "payload-too-large"


class UnknownRecipient(InvalidInput):
    title = "Unknown recipient"
    status = 422
    type_slug = "unknown-recipient"


class AuthError(GatewayError):
    title = "Unauthorized"
    status = 401
    type_slug = "unauthorized"


class Forbidden(AuthError):
    title = "Forbidden"
    status = 403
    type_slug = "forbidden"


class NotFound(GatewayError):
    title = "Not found"
    status = 404
    type_slug = "not-found"


class IdempotencyConflict(GatewayError):
    title = "Idempotency key reused"
    status = 409
    type_slug = "idempotency-conflict"


class ConfigError(GatewayError):
    """Start-up refused: names the file, the path inside it and the rule."""

    title = "Invalid configuration"


class DeliveryError(GatewayError):
    title = "Delivery failed"

    def __init__(self, detail: str, *, code: str) -> None:
        super().__init__(detail)
        self.code = code
        """A short, content-free error code for metrics and the dead-letter record."""


class RetryableDeliveryError(DeliveryError):
    """Timeouts, connection errors, 5xx, 408 and 429: try again later."""


class PermanentDeliveryError(DeliveryError):
    """The partner rejected the payload (other 4xx) or it cannot be rendered: dead-letter."""
