"""Every rejected input, whatever the transport (HTTP, MLLP, folder drop), is counted per
partner and rule and written to the audit log — without content: rules and field paths only.
"""

from __future__ import annotations

from canonical import GatewayError, InvalidInput
from gateway.audit import AuditEvent
from gateway.metrics import Metrics
from gateway.store.base import Store


async def record_rejection(
    store: Store, metrics: Metrics, source: str, exc: GatewayError, *, transport: str = "http"
) -> None:
    violations = exc.violations if isinstance(exc, InvalidInput) else []
    rule = exc.reason if isinstance(exc, InvalidInput) else exc.type_slug
    metrics.rejected.labels(source, str(exc.status), rule).inc()
    event = {
        "status": exc.status,
        "rules": sorted({v.rule for v in violations} or {rule}),
        "fields": [v.field for v in violations[:20]],
        "adapter": exc.adapter if isinstance(exc, InvalidInput) else None,
    }
    if transport != "http":
        event["transport"] = transport
    await store.append_audit([AuditEvent("message.rejected", event, None, source)])
