"""The consent and purpose engine: policy model, decision, redaction, routing.

Pure: no I/O, no clock (callers pass ``now``), no imports from ``gateway``.
"""

from consent.decision import Decision, Effect, Withheld, decide
from consent.policy import Agreement, Partner, PolicyError, PolicySnapshot, compile_policy
from consent.redact import redact
from consent.registry import ConsentRecord, ConsentRegistry, ConsentState, ConsentView, DecidedBy
from consent.routing import candidates, resolve_named_recipients, unknown_named_recipients

__all__ = [
    "Agreement",
    "ConsentRecord",
    "ConsentRegistry",
    "ConsentState",
    "ConsentView",
    "DecidedBy",
    "Decision",
    "Effect",
    "Partner",
    "PolicyError",
    "PolicySnapshot",
    "Withheld",
    "candidates",
    "compile_policy",
    "decide",
    "redact",
    "resolve_named_recipients",
    "unknown_named_recipients",
]
