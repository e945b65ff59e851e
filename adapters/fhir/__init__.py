"""Health FHIR R4 (UK Core) adapter: ``fhir-r4``, ``application/fhir+json``.

Subset supported (the mapping table is ``docs/formats/fhir-r4.md``):

* a Bundle of type ``message`` whose first entry is a MessageHeader; its ``eventCoding``
  (system ``https://schemas.mash-gateway.example/fhir/event-type``) is the canonical event
  type, ``reason`` (our purpose system) the purpose (default ``safeguarding``),
  ``Bundle.timestamp`` the time of the event, ``Bundle.identifier.value`` the sender's
  reference, two MessageHeader extensions the envelope flags;
* Patient -> a ``child``; RelatedPerson -> parent, sibling, carer (v3 RoleCode) or any
  canonical role (our role system); NHS number (``https://fhir.nhs.uk/Id/nhs-number``,
  check digit verified), name, birthDate, gender, address, telecom; ``meta.security`` R/V
  on a person -> the ``confidential-address`` marker;
* Encounter (class EMER/IMP/AMB) -> ``health.attendance``; Flag (our social-care-status
  codes: child protection plan, looked after, child in need) -> ``social-care.status``;
  ServiceRequest (or a partner's Communication) referral -> ``event.summary`` (category,
  reason) and ``event.narrative`` (note / text payload); our Communication "item carrier"
  -> any other item, its data as a JSON attachment;
* ``meta.security`` on an item's resource <-> the item's sensitivity labels
  (v3-Confidentiality R/V, v3-ActCode SDV/PSY/ETH/SEX/STD/HIV).

Every other resource type R4 knows (Organization, Condition, Observation...) is validated
and not carried. FHIR R4 is read with ``fhir.resources.R4B`` (wire-compatible for these
resources; the package's top level is R5).
"""

from adapters.fhir.adapter import MEDIA_TYPE, FhirR4Adapter
from adapters.fhir.reader import NAME

__all__ = ["MEDIA_TYPE", "NAME", "FhirR4Adapter"]
