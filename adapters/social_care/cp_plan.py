"""``social-care-cp-plan``: a child protection plan started or ended (CP-IS style, for
health staff in unscheduled care) -> ``social-care.cp-plan-started|ended``."""

from __future__ import annotations

from typing import ClassVar

from adapters.social_care.shared import content_type_for
from adapters.social_care.status import StatusFormat

CP_PLAN = "social-care-cp-plan"


class SocialCareCpPlanAdapter(StatusFormat):
    """A child protection plan started or ended -> ``social-care.cp-plan-started|ended``,
    one ``social-care.status`` item of type ``cp-plan`` (CP-IS style: for health staff in
    unscheduled care: plan, category of abuse, dates, the responsible authority and its
    phone numbers)."""

    name: str = CP_PLAN
    content_types: tuple[str, ...] = (content_type_for(CP_PLAN),)
    media_type: str = content_type_for(CP_PLAN)
    schema: ClassVar[str] = f"{CP_PLAN}.schema.json"
    event_types: ClassVar[tuple[str, ...]] = ("social-care.cp-plan-started", "social-care.cp-plan-ended")
    item_type: ClassVar[str] = "cp-plan"
    period_key: ClassVar[str] = "plan"
    period_fields: ClassVar[tuple[tuple[str, str], ...]] = (
        ("category_of_abuse", "category_of_abuse"),
        ("start_date", "plan_start"),
        ("end_date", "plan_end"),
    )
