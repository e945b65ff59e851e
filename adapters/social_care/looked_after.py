"""``social-care-looked-after``: a looked-after period started or ended ->
``social-care.looked-after-started|ended``. Placement addresses MUST NOT be part of the
format."""

from __future__ import annotations

from typing import ClassVar

from adapters.social_care.shared import content_type_for
from adapters.social_care.status import StatusFormat

LOOKED_AFTER = "social-care-looked-after"


class SocialCareLookedAfterAdapter(StatusFormat):
    """A looked-after period started or ended -> ``social-care.looked-after-started|ended``,
    one ``social-care.status`` item of type ``looked-after`` with the SSDA903 legal status
    code (``LEGAL_STATUSES``). Placement addresses are deliberately not part of the format."""

    name: str = LOOKED_AFTER
    content_types: tuple[str, ...] = (content_type_for(LOOKED_AFTER),)
    media_type: str = content_type_for(LOOKED_AFTER)
    schema: ClassVar[str] = f"{LOOKED_AFTER}.schema.json"
    event_types: ClassVar[tuple[str, ...]] = (
        "social-care.looked-after-started",
        "social-care.looked-after-ended",
    )
    item_type: ClassVar[str] = "looked-after"
    period_key: ClassVar[str] = "episode"
    period_fields: ClassVar[tuple[tuple[str, str], ...]] = (
        ("legal_status", "legal_status"),
        ("start_date", "period_start"),
        ("end_date", "period_end"),
    )
