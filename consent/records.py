"""Consent records as IG leads write them (``schemas/consent-record.schema.json``): the checks
a record must pass, shared by the consent API and ``gateway policy explain|test``. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from canonical import Identifier, Violation
from canonical.validate import schema_validator, schema_violations
from consent.policy import PolicySnapshot
from consent.registry import ConsentRecord, ConsentState, DecidedBy, subject_key

SECTORS = frozenset({"police", "health", "education", "social-care", "local-authority", "voluntary"})
SCHEMA = "consent-record.schema.json"


def consent_problems(document: Any, policy: PolicySnapshot) -> list[Violation]:
    """Schema violations; if the shape is right, unknown purpose, scope or identifier system."""
    problems = schema_violations(schema_validator(SCHEMA), document)
    if problems:
        return problems
    dictionary = policy.dictionary
    if document["purpose"] not in dictionary.purposes:
        problems.append(Violation("/purpose", "known-purpose", "not a purpose in the data dictionary"))
    scope: str = document["scope"]
    if scope.startswith("sector:") and scope.removeprefix("sector:") not in SECTORS:
        problems.append(Violation("/scope", "known-sector", f"one of: {', '.join(sorted(SECTORS))}"))
    elif not scope.startswith("sector:") and scope not in policy.partners:
        problems.append(Violation("/scope", "known-partner", "not a partner of this gateway"))
    if document["subject"]["system"] not in dictionary.identifier_systems:
        problems.append(Violation("/subject/system", "known-identifier-system", "not an identifier system"))
    return problems


def record_from_document(
    document: Mapping[str, Any], record_id: str, default_time: datetime
) -> ConsentRecord:
    """A checked document as a registry record keyed by the plain ``system:value`` subject."""
    subject = Identifier(document["subject"]["system"], document["subject"]["value"])
    recorded = document.get("recorded_at")
    expires = document.get("expires_at")
    return ConsentRecord(
        record_id=record_id,
        subject=subject_key(subject),
        purpose=document["purpose"],
        scope=document["scope"],
        state=ConsentState(document["state"]),
        decided_by=DecidedBy(document["decided_by"]),
        recorded_at=datetime.fromisoformat(recorded) if recorded else default_time,
        expires_at=datetime.fromisoformat(expires) if expires else None,
        evidence_ref=document.get("evidence_ref"),
    )
