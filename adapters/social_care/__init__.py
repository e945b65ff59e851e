"""Children's social care JSON formats: four adapters, one per notification a local
authority's case-management system sends or receives through the gateway.

Supported subset (field-by-field tables in ``docs/formats/social-care.md``; each format has
its own JSON Schema in ``schemas/``, draft 2020-12, closed objects, bounded lengths):

=================================  ======================================  ==================
format name                        event types                             purpose
=================================  ======================================  ==================
``social-care-referral``           ``social-care.referral``                ``safeguarding`` or
                                                                           ``child-in-need``
                                                                           (the document says)
``social-care-referral-outcome``   ``social-care.referral-outcome``        ``referral-feedback``
``social-care-cp-plan``            ``social-care.cp-plan-started|ended``   ``safeguarding``
``social-care-looked-after``       ``social-care.looked-after-started|``   ``safeguarding``
                                   ``ended``
=================================  ======================================  ==================

Each content type is ``application/vnd.gateway.<format name>+json``.

Modules: ``shared`` (the parse pipeline and self-checking render every format uses, the
envelope and the gateway block), ``people`` (child and household members), ``codes``
(public code lists), one module per format (``referral``, ``referral_outcome``,
``cp_plan``, ``looked_after``) and ``status`` (the started/ended base of the last two).

Contracts (the parse pipeline's are in ``adapters.social_care.shared``):

* ``parse``: every violation names the JSON pointer of the *native* field and a rule; it
  MUST NOT quote the value. The ``gateway`` block is ignored: the gateway assigns those
  fields itself.
* ``render`` writes only what the (redacted) message carries: an absent category is an
  absent field, never a placeholder. Items of other categories or types, identifiers of
  other systems and people in roles the format has no place for are not carried (the
  format's documentation lists what each format carries). A message the format cannot
  express — another event type, no child left after redaction, or the one item that makes
  the notification (the plan, the period, the outcome) redacted away — raises
  ``NotRenderable``; the rendered document is checked against the format's own schema and
  rules before it is returned, so a recipient never gets a document that we would refuse.
* ``parse(render(m)) == m`` for every message ``parse`` produced (the gateway's envelope
  fields aside, which ``parse`` drops).
"""

from __future__ import annotations

from collections.abc import Callable

from adapters.social_care.codes import (
    CATEGORIES_OF_ABUSE,
    HOUSEHOLD_ROLES,
    LEGAL_STATUSES,
    OUTCOMES,
    REFERRAL_SOURCES,
)
from adapters.social_care.cp_plan import CP_PLAN, SocialCareCpPlanAdapter
from adapters.social_care.looked_after import LOOKED_AFTER, SocialCareLookedAfterAdapter
from adapters.social_care.people import DO_NOT_CONTACT_FAMILY
from adapters.social_care.referral import REFERRAL, SocialCareReferralAdapter
from adapters.social_care.referral_outcome import OUTCOME, SocialCareReferralOutcomeAdapter
from adapters.social_care.shared import CHILD_REF, JSON, SocialCareJson, content_type_for
from adapters.social_care.status import STATUS_CATEGORY

__all__ = [
    "ADAPTERS",
    "CATEGORIES_OF_ABUSE",
    "CHILD_REF",
    "CP_PLAN",
    "DO_NOT_CONTACT_FAMILY",
    "HOUSEHOLD_ROLES",
    "JSON",
    "LEGAL_STATUSES",
    "LOOKED_AFTER",
    "OUTCOME",
    "OUTCOMES",
    "REFERRAL",
    "REFERRAL_SOURCES",
    "STATUS_CATEGORY",
    "SocialCareCpPlanAdapter",
    "SocialCareJson",
    "SocialCareLookedAfterAdapter",
    "SocialCareReferralAdapter",
    "SocialCareReferralOutcomeAdapter",
    "content_type_for",
]

ADAPTERS: tuple[Callable[[], SocialCareJson], ...] = (
    SocialCareReferralAdapter,
    SocialCareReferralOutcomeAdapter,
    SocialCareCpPlanAdapter,
    SocialCareLookedAfterAdapter,
)
"""The four formats, for the registry: ``[make() for make in ADAPTERS]``."""
