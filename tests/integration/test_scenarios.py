"""Every scenario in DOMAIN.md through the real gateway, on the example deployment.

Each test starts the gateway on a copy of ``deploy/example`` (webhook partners point at a real
recording receiver on loopback; pull partners read ``GET /v1/inbox`` with their demo token),
posts the scenario's example message as the sending partner and asserts exactly what each
recipient received: the categories, strings that must be there, strings that must not. A
recipient that must get nothing is checked in the sender's status view (deny or held, no
delivery) and then in its inbox or the receiver — never by waiting for absence.

The same messages are checked against the policy alone by ``gateway policy test
deploy/example`` (``deploy/example/policy-tests/scenario-N-*.yaml``); docs/scenarios.md says
which agreement each scenario relies on.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from gateway.testing import RecordingReceiver
from tests.conftest import GatewayFactory, RunningGateway
from tests.support import CANONICAL, CSC, EXAMPLE, HEALTH_VISITING, POLICE, SCHOOL, eventually

ED = "ed-northshire-general"
GP = "gp-riverside-surgery"
SEXUAL_HEALTH = "sexual-health-northshire"
LA_INCLUSION = "la-northshire-inclusion"
VIRTUAL_SCHOOL = "virtual-school-northshire"
MARAC = "marac-northshire"
IDVA = "idva-northshire"

TOKENS = {
    POLICE: "demo-police-token",
    SCHOOL: "demo-school-token",
    CSC: "demo-csc-token",
    HEALTH_VISITING: "demo-hv-token",
    ED: "demo-ed-token",
    GP: "demo-gp-token",
    SEXUAL_HEALTH: "demo-sh-token",
    LA_INCLUSION: "demo-la-token",
    VIRTUAL_SCHOOL: "demo-vsh-token",
    MARAC: "demo-marac-token",
    IDVA: "demo-idva-token",
    "police-southmoor": "demo-southmoor-token",
    "school-hillside-academy": "demo-hillside-token",
}
IG = {"Authorization": "Bearer test-ig-lead-token"}
WAIT = 10.0

PERMIT = ("permit", "permit")
NO_AGREEMENT = ("deny", "no-agreement")


def example_partners() -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load((EXAMPLE / "partners.yaml").read_text())
    return {p["id"]: p for p in doc["partners"]}


def message(name: str, **envelope: Any) -> dict[str, Any]:
    """An example message from ``deploy/example/messages``, with envelope fields replaced."""
    doc: dict[str, Any] = json.loads((EXAMPLE / "messages" / name).read_text())
    doc["envelope"].update(envelope)
    return doc


@dataclass(frozen=True)
class Copy:
    """What one recipient received: the payload and its exact text."""

    payload: dict[str, Any]
    text: str

    @property
    def categories(self) -> set[str]:
        """The categories present, read from the payload itself (not from the decision)."""
        found = {item["category"] for item in self.payload["items"]}
        for person in self.payload["people"]:
            if person.keys() & {"identifiers", "name", "birth_date", "sex", "markers"}:
                found.add("identity.core")
            if person.get("addresses"):
                found.add("identity.address")
            if person.get("contacts"):
                found.add("identity.contact")
        return found

    @property
    def roles(self) -> list[str]:
        return sorted(p["role"] for p in self.payload["people"])

    def holds(self, present: Iterable[str] = (), absent: Iterable[str] = ()) -> None:
        missing = [s for s in present if s not in self.text]
        leaked = [s for s in absent if s in self.text]
        assert (missing, leaked) == ([], []), "missing, or present but forbidden"


class Exchange:
    """Partners talking through one running gateway: send as a partner, read the sender's
    status view, and collect each recipient's copy (webhook receiver or pull inbox)."""

    def __init__(self, gw: RunningGateway, receiver: RecordingReceiver) -> None:
        self.gw = gw
        self.receiver = receiver
        self.modes = {pid: p.delivery.mode for pid, p in gw.services.deployment.partners.items()}
        self._pulled: dict[str, dict[str, Copy]] = defaultdict(dict)

    @staticmethod
    def auth(partner: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKENS[partner]}", "Content-Type": CANONICAL}

    async def send(self, sender: str, doc: Mapping[str, Any]) -> str:
        async with self.gw.http.post(
            self.gw.url("/v1/messages"), data=json.dumps(doc).encode(), headers=self.auth(sender)
        ) as r:
            assert r.status == 202, await r.text()
            message_id: str = (await r.json())["message_id"]
            return message_id

    async def status(self, sender: str, message_id: str) -> dict[str, Any]:
        async with self.gw.http.get(
            self.gw.url(f"/v1/messages/{message_id}"), headers=self.auth(sender)
        ) as r:
            assert r.status == 200, await r.text()
            doc: dict[str, Any] = await r.json()
            return doc

    async def decisions(self, sender: str, message_id: str) -> dict[str, tuple[str, str]]:
        """Every candidate's (decision, rule). A denial never has a delivery."""
        recipients = (await self.status(sender, message_id))["recipients"]
        for r in recipients:
            if r["decision"] == "deny":
                assert r["delivery"] == "not-sent", r["partner"]
            if r["decision"] == "review":
                assert r["delivery"] == "held", r["partner"]
        return {r["partner"]: (r["decision"], r["rule"]) for r in recipients}

    async def pull(self, partner: str) -> dict[str, Copy]:
        """Fetch and acknowledge everything in a pull partner's inbox; all it has had so far."""
        url = self.gw.url("/v1/inbox?limit=100")
        async with self.gw.http.get(url, headers=self.auth(partner)) as r:
            assert r.status == 200, await r.text()
            items = (await r.json())["items"]
        for item in items:
            self._pulled[partner][item["message_id"]] = Copy(item["payload"], json.dumps(item["payload"]))
            ack = self.gw.url(f"/v1/inbox/{item['delivery_id']}/ack")
            async with self.gw.http.post(ack, headers=self.auth(partner)) as r:
                assert r.status == 200, await r.text()
        return self._pulled[partner]

    async def copy(self, partner: str, message_id: str) -> Copy:
        """The recipient's copy of the message, by webhook or from its inbox."""
        if self.modes[partner] == "webhook":
            await self.receiver.wait_for(lambda: message_id in self.receiver.unique(partner), WAIT)
            got = self.receiver.unique(partner)[message_id]
            return Copy(got.payload, got.body.decode())

        async def arrived() -> bool:
            return message_id in await self.pull(partner)

        await eventually(arrived, WAIT)
        return self._pulled[partner][message_id]

    async def delivered(self, sender: str, message_id: str) -> None:
        async def done() -> bool:
            return bool((await self.status(sender, message_id))["status"] == "delivered")

        await eventually(done, WAIT)

    async def got_nothing(self, partner: str, message_id: str) -> None:
        """Call once the message's permitted deliveries are done: the decision already said
        deny (no delivery exists); the partner's inbox or receiver confirms it."""
        if self.modes[partner] == "webhook":
            assert message_id not in self.receiver.unique(partner)
        else:
            assert message_id not in await self.pull(partner)

    async def record_consent(self, subject: str, purpose: str, scope: str, state: str, by: str) -> str:
        body = {
            "subject": {"system": "nhs-number", "value": subject},
            "purpose": purpose,
            "scope": scope,
            "state": state,
            "decided_by": by,
        }
        async with self.gw.http.post(self.gw.url("/v1/consents"), json=body, headers=IG) as r:
            assert r.status == 201, await r.text()
            record_id: str = (await r.json())["record_id"]
            return record_id

    async def decision_made(self, message_id: str, recipient: str) -> Mapping[str, Any]:
        """The audited decision (its explanation holds no personal data)."""
        found = [
            r.data
            async for r in self.gw.services.backend.audit_records()
            if r.kind == "decision.made" and r.message_id == message_id and r.partner == recipient
        ]
        assert len(found) == 1
        return found[0]


@pytest.fixture
async def exchange(gateway: RunningGateway, receiver: RecordingReceiver) -> Exchange:
    return Exchange(gateway, receiver)


class TestTheExampleDeployment:
    def test_every_demo_token_belongs_to_its_partner(self) -> None:
        partners = example_partners()
        assert set(TOKENS) == set(partners)
        for pid, token in TOKENS.items():
            assert hashlib.sha256(token.encode()).hexdigest() in partners[pid]["token_sha256"], pid

    def test_new_partners_pull_so_the_demo_receiver_needs_no_change(self) -> None:
        webhooks = {pid for pid, p in example_partners().items() if p["delivery"]["mode"] == "webhook"}
        assert webhooks == {SCHOOL, CSC}


class TestScenario1Encompass:
    """Police domestic-abuse incident, child present -> the school DSL gets minimal facts;
    never the victim's new address."""

    async def test_school_gets_encompass_facts_and_social_care_the_referral_without_the_refuge(
        self, exchange: Exchange
    ) -> None:
        # Given the police send the incident, naming the child's school
        mid = await exchange.send(POLICE, message("domestic-abuse-incident.json"))

        # Then the school (named) and social care (standing route) are the only candidates
        assert await exchange.decisions(POLICE, mid) == {SCHOOL: PERMIT, CSC: PERMIT}

        # And the school's DSL gets who, what, when and whether the child was present: no more
        school = await exchange.copy(SCHOOL, mid)
        assert school.categories == {"identity.core", "event.summary"}
        assert school.roles == ["child"]
        school.holds(
            present=["child_present", "Alex", "9990000018"],
            absent=[
                "Refuge",
                "Sampleton",
                "ZZ99",
                "1 Example Street",
                "Demo narrative",
                "childs_voice",
                "dash",
                "score",
                "Jordan",
                "Casey",
                "07700",
            ],
        )

        # And social care gets the fuller referral, still without the refuge address
        csc = await exchange.copy(CSC, mid)
        assert csc.categories == {
            "identity.core",
            "identity.address",
            "identity.contact",
            "event.summary",
            "event.narrative",
            "police.risk-assessment",
        }
        csc.holds(present=["Demo narrative", "ZZ99 1ZZ", "Casey"], absent=["Refuge", "ZZ99 2ZZ", "Sampleton"])
        await exchange.delivered(POLICE, mid)
        await exchange.got_nothing(HEALTH_VISITING, mid)


class TestScenario2EmergencyDepartment:
    """A child on a child protection plan attends the ED -> the responsible local authority
    learns the setting and time, not clinical notes."""

    async def test_social_care_learns_setting_and_time_only(self, exchange: Exchange) -> None:
        # Given CP-IS shows a plan, so the department names the responsible authority
        mid = await exchange.send(ED, message("ed-attendance.json"))
        assert await exchange.decisions(ED, mid) == {CSC: PERMIT}

        csc = await exchange.copy(CSC, mid)
        assert csc.categories == {"identity.core", "health.attendance"}
        assert csc.roles == ["child"]
        csc.holds(
            present=["Emergency department", "arrived_at", "left_at", "9990001014"],
            absent=[
                "presenting_complaint",
                "Demo diagnosis",
                "forearm",
                "Demo mental health",
                "PSY",
                "ZZ99",
                "5 Example Street",
                "Toni",
                "07700",
                "plan_start",
            ],
        )
        await exchange.delivered(ED, mid)
        await exchange.got_nothing(SCHOOL, mid)
        await exchange.got_nothing(GP, mid)

    async def test_an_attendance_of_a_child_not_on_a_plan_goes_nowhere(self, exchange: Exchange) -> None:
        mid = await exchange.send(ED, message("ed-attendance-not-on-plan.json"))
        status = await exchange.status(ED, mid)
        assert (status["status"], status["recipients"]) == ("decided", [])
        await exchange.got_nothing(CSC, mid)


# What the MASH receives from each partner it asked (scenario 3): the answer file, the
# categories released, text that must arrive, text that must not.
ANSWERS = [
    (
        SCHOOL,
        "school-information-response.json",
        {"identity.core", "event.summary", "education.attendance"},
        ["collected late", "attendance_percent"],
        ["Demo SEN diagnosis", "SEN support", "Demo child protection file entry", "Pat", "07700", "ZZ99"],
    ),
    (
        GP,
        "gp-information-response.json",
        {"identity.core", "event.summary", "health.attendance"},
        ["missed_appointments"],
        ["Demo mental health note", "PSY"],
    ),
    (
        HEALTH_VISITING,
        "hv-information-response.json",
        {"identity.core", "event.summary", "health.attendance"},
        ["2-year review not attended", "missed_reviews"],
        ["growth chart", "Demo perinatal mental health", "PSY", "Pat", "07700"],
    ),
]


class TestScenario3PublicProtectionNotice:
    """PPN graded high -> the MASH gets the full referral; the MASH asks school, GP and health
    visitor for need-to-know items only; the referrer gets the outcome only."""

    async def test_referral_enquiries_answers_and_outcome(self, exchange: Exchange) -> None:
        # Given the police send a high-risk PPN: the MASH gets the full referral
        ppn = await exchange.send(POLICE, message("ppn-high-risk.json"))
        assert await exchange.decisions(POLICE, ppn) == {CSC: PERMIT}
        referral = await exchange.copy(CSC, ppn)
        assert referral.categories == {
            "identity.core",
            "identity.address",
            "identity.contact",
            "event.summary",
            "event.narrative",
            "police.risk-assessment",
        }
        referral.holds(present=["Demo PPN narrative", "ZZ99 3ZZ", "07700 900003", "Pat", "demo factor"])
        for partner in (SCHOOL, GP, HEALTH_VISITING):
            await exchange.got_nothing(partner, ppn)

        # When the MASH asks school, GP and health visitor: each gets the question only
        ask = await exchange.send(CSC, message("mash-information-request.json"))
        assert await exchange.decisions(CSC, ask) == {SCHOOL: PERMIT, GP: PERMIT, HEALTH_VISITING: PERMIT}
        for partner in (SCHOOL, GP, HEALTH_VISITING):
            question = await exchange.copy(partner, ask)
            assert question.categories == {"identity.core", "event.summary"}, partner
            assert question.roles == ["child"], partner
            question.holds(
                present=["please share attendance", "Drew"],
                absent=["Demo PPN narrative", "grading", "demo factor", "Pat"],
            )
        await exchange.delivered(CSC, ask)

        # And each answers: the MASH gets the need-to-know items, nothing more
        for partner, file, categories, present, absent in ANSWERS:
            answer = await exchange.send(partner, message(file))
            assert await exchange.decisions(partner, answer) == {CSC: PERMIT}
            got = await exchange.copy(CSC, answer)
            assert got.categories == categories, partner
            got.holds(present, absent)

        # Then the referring force learns the outcome and the named worker, not the reasoning
        outcome = await exchange.send(CSC, message("referral-outcome-to-police.json"))
        assert await exchange.decisions(CSC, outcome) == {POLICE: PERMIT}
        police = await exchange.copy(POLICE, outcome)
        assert police.categories == {"identity.core", "event.outcome"}
        police.holds(
            present=["accepted-for-assessment", "Demo Social Worker"],
            absent=["Demo MASH assessment", "missed_appointments"],
        )
        await exchange.delivered(CSC, outcome)


EXCLUSION_ONLY = {"identity.core", "education.exclusion"}


class TestScenario4Suspension:
    """A school suspends or excludes -> the local authority; the social worker if the child
    has one; the virtual school head if looked after. Not SEN or child protection files."""

    async def test_looked_after_child_la_social_worker_and_virtual_school_get_the_exclusion_only(
        self, exchange: Exchange
    ) -> None:
        # Given the school suspends a looked-after child who has a social worker
        mid = await exchange.send(SCHOOL, message("suspension.json"))
        assert await exchange.decisions(SCHOOL, mid) == {
            LA_INCLUSION: PERMIT,
            CSC: PERMIT,
            VIRTUAL_SCHOOL: PERMIT,
        }
        for partner in (LA_INCLUSION, CSC, VIRTUAL_SCHOOL):
            got = await exchange.copy(partner, mid)
            assert got.categories == EXCLUSION_ONLY, partner
            assert got.roles == ["child"], partner
            got.holds(
                present=["reason_code", "Jamie"],
                absent=[
                    "EHC plan",
                    "Demo SEN diagnosis",
                    "Demo child protection file content",
                    "legal_status",
                    "Foster home",
                    "ZZ99",
                    "Frankie",
                    "07700",
                ],
            )
        # And the local authority is told under its legal obligation, the others as a public task
        agreements = {
            p: (await exchange.decision_made(mid, p))["agreement"]
            for p in (LA_INCLUSION, CSC, VIRTUAL_SCHOOL)
        }
        assert agreements == {
            LA_INCLUSION: "northshire-exclusion-notifications",
            CSC: "northshire-exclusion-notifications-care",
            VIRTUAL_SCHOOL: "northshire-exclusion-notifications-care",
        }
        await exchange.delivered(SCHOOL, mid)
        await exchange.got_nothing(GP, mid)

    async def test_child_without_social_worker_only_the_local_authority(self, exchange: Exchange) -> None:
        mid = await exchange.send(SCHOOL, message("permanent-exclusion.json"))
        assert await exchange.decisions(SCHOOL, mid) == {LA_INCLUSION: PERMIT}
        got = await exchange.copy(LA_INCLUSION, mid)
        assert got.categories == EXCLUSION_ONLY
        got.holds(
            present=["permanent-exclusion"],
            absent=["Demo SEN diagnosis", "Demo child protection file entry", "Test-Parent", "07700"],
        )
        await exchange.delivered(SCHOOL, mid)
        for partner in (CSC, VIRTUAL_SCHOOL):
            await exchange.got_nothing(partner, mid)


class TestScenario5SchoolReferral:
    """The DSL refers to social care -> social care gets the concern; the school later gets
    the outcome and the named worker."""

    @pytest.mark.parametrize("outcome", ["accepted-for-assessment", "no-further-action", "early-help"])
    async def test_concern_to_social_care_then_outcome_to_school(
        self, exchange: Exchange, outcome: str
    ) -> None:
        # Given the DSL refers a safeguarding concern
        referral = await exchange.send(SCHOOL, message("dsl-safeguarding-referral.json"))
        assert await exchange.decisions(SCHOOL, referral) == {CSC: PERMIT}
        concern = await exchange.copy(CSC, referral)
        assert concern.categories == {
            "identity.core",
            "identity.address",
            "identity.contact",
            "event.summary",
            "event.narrative",
        }
        concern.holds(present=["bruising", "Demo DSL chronology", "07700 900004"], absent=["Demo SEN detail"])

        # When social care decides, it tells the school the outcome and the named worker
        doc = message("referral-outcome-to-school.json")
        doc["items"][0]["data"]["outcome"] = outcome
        answer = await exchange.send(CSC, doc)
        assert await exchange.decisions(CSC, answer) == {SCHOOL: PERMIT}

        # Then the school gets the outcome only: not the reasoning, not the family
        school = await exchange.copy(SCHOOL, answer)
        assert school.categories == {"identity.core", "event.outcome"}
        assert school.roles == ["child"]
        school.holds(present=[outcome, "Demo Early Help Worker"], absent=["Demo MASH reasoning", "Lee"])
        await exchange.delivered(CSC, answer)
        await exchange.got_nothing(POLICE, answer)


class TestScenario6Marac:
    """High-risk domestic abuse -> MARAC partners get identifiers; safe contact details only to
    the IDVA; the refuge address to no one."""

    async def test_identifiers_to_all_safe_contact_to_the_idva_refuge_to_no_one(
        self, exchange: Exchange
    ) -> None:
        mid = await exchange.send(POLICE, message("marac-referral.json"))
        assert await exchange.decisions(POLICE, mid) == {MARAC: PERMIT, CSC: PERMIT, IDVA: PERMIT}
        never = [
            "Refuge",
            "Hiddenham",
            "ZZ99",
            "9 Sample Road",
            "Demo MARAC narrative",
            "Demo offending history",
        ]
        for partner in (MARAC, CSC):
            got = await exchange.copy(partner, mid)
            assert got.categories == {"identity.core", "event.summary", "police.risk-assessment"}, partner
            assert got.roles == ["alleged-perpetrator", "child", "victim"], partner
            got.holds(present=["NSP-DEMO-P-0001", "NSP-DEMO-P-0002", "9990001057"], absent=[*never, "07700"])
        idva = await exchange.copy(IDVA, mid)
        assert idva.categories == {
            "identity.core",
            "identity.contact",
            "event.summary",
            "police.risk-assessment",
        }
        idva.holds(present=["07700 900009", "NSP-DEMO-P-0001"], absent=[*never, "07700 900010"])
        await exchange.delivered(POLICE, mid)
        await exchange.got_nothing(SCHOOL, mid)

    async def test_the_idva_also_gets_the_alleged_perpetrators_identifiers_but_not_his_phone(
        self, exchange: Exchange
    ) -> None:
        mid = await exchange.send(POLICE, message("marac-referral.json"))
        idva = await exchange.copy(IDVA, mid)
        idva.holds(present=["NSP-DEMO-P-0002", "07700 900009"], absent=["07700 900010"])


class TestScenario7SexualHealth:
    """A competent 15-year-old at a sexual health clinic: nothing to school or parents by
    default; with exploitation indicators, a concern-only referral to social care."""

    CHILD = "9990001065"

    async def test_without_indicators_her_refusal_stands_and_nothing_goes(self, exchange: Exchange) -> None:
        # Given the young person, judged competent, says no to a referral
        await exchange.record_consent(self.CHILD, "safeguarding", CSC, "refused", "child-judged-competent")
        # When the clinic sends a concern without risk of significant harm
        mid = await exchange.send(SEXUAL_HEALTH, message("sexual-health-concern.json"))
        # Then nobody gets anything: not social care, not the (parent-facing) school
        assert await exchange.decisions(SEXUAL_HEALTH, mid) == {
            CSC: ("deny", "consent-refused"),
            SCHOOL: NO_AGREEMENT,
        }
        assert (await exchange.status(SEXUAL_HEALTH, mid))["status"] == "decided"
        for partner in (CSC, SCHOOL, GP):
            await exchange.got_nothing(partner, mid)

    async def test_exploitation_indicators_send_the_concern_only_without_consent(
        self, exchange: Exchange
    ) -> None:
        await exchange.record_consent(self.CHILD, "safeguarding", CSC, "refused", "child-judged-competent")
        # When the clinician asserts risk of significant harm (exploitation indicators)
        mid = await exchange.send(SEXUAL_HEALTH, message("sexual-health-exploitation.json"))
        assert await exchange.decisions(SEXUAL_HEALTH, mid) == {CSC: PERMIT, SCHOOL: NO_AGREEMENT}
        # Then social care gets the concern: no clinical detail, nothing about the parent
        got = await exchange.copy(CSC, mid)
        assert got.categories == {"identity.core", "event.summary"}
        assert got.roles == ["child"]
        got.holds(
            present=["exploitation indicators"],
            absent=["Demo sexual health clinical detail", "SEX", "Sky", "clinical-notes"],
        )
        # And the decision is recorded as made without consent, on the safeguarding condition
        decision = await exchange.decision_made(mid, CSC)
        assert str(decision["consent"]).startswith("without consent")
        assert decision["agreement"] == "northshire-sexual-health-concerns"
        await exchange.delivered(SEXUAL_HEALTH, mid)
        await exchange.got_nothing(SCHOOL, mid)


class TestScenario8EarlyHelp:
    """Early help (no risk of significant harm) is consent-based: refused or withdrawn
    consent stops sharing, including a message already queued."""

    CHILD = "9990000026"

    @pytest.fixture
    async def pulling(self, start_gateway: GatewayFactory, receiver: RecordingReceiver) -> Exchange:
        # Social care pulls here, so a delivery stays queued until it is fetched.
        gw: RunningGateway = await start_gateway(partner_delivery={CSC: {"mode": "pull"}})
        return Exchange(gw, receiver)

    @staticmethod
    def referral(seq: int) -> dict[str, Any]:
        return message("early-help-referral.json", sender_reference=f"RPS-DEMO-EH-{seq:04d}")

    async def test_withdrawal_cancels_the_queued_referral(self, pulling: Exchange) -> None:
        # Given the parent consents: the first referral goes, without SEN detail
        given = await pulling.record_consent(
            self.CHILD, "early-help", CSC, "given", "parent-with-parental-responsibility"
        )
        first = await pulling.send(SCHOOL, self.referral(1))
        assert await pulling.decisions(SCHOOL, first) == {CSC: PERMIT}
        got = await pulling.copy(CSC, first)
        assert got.categories == {
            "identity.core",
            "identity.contact",
            "event.summary",
            "education.attendance",
        }
        got.holds(present=["attendance_percent"], absent=["SEN support"])
        await pulling.delivered(SCHOOL, first)

        # And a second referral is queued in social care's inbox, not yet fetched
        second = await pulling.send(SCHOOL, self.referral(2))
        assert await pulling.decisions(SCHOOL, second) == {CSC: PERMIT}
        assert (await pulling.status(SCHOOL, second))["status"] == "queued"

        # When the parent withdraws consent
        url = pulling.gw.url(f"/v1/consents/{given}/withdraw")
        async with pulling.gw.http.post(url, json={"reason": "parent withdrew by phone"}, headers=IG) as r:
            assert r.status == 201, await r.text()
            assert len((await r.json())["cancelled_deliveries"]) == 1

        # Then the queued referral is never delivered, and the sender sees why
        status = await pulling.status(SCHOOL, second)
        assert (status["status"], status["recipients"][0]["delivery"]) == ("closed", "withdrawn")
        await pulling.got_nothing(CSC, second)

        # And a new referral is refused outright
        third = await pulling.send(SCHOOL, self.referral(3))
        assert await pulling.decisions(SCHOOL, third) == {CSC: ("deny", "consent-refused")}
        await pulling.got_nothing(CSC, third)

    @pytest.mark.parametrize(
        ("consent", "expected"),
        [
            ("refused", ("deny", "consent-refused")),
            (None, ("review", "consent-unknown")),
        ],
    )
    async def test_refused_or_unknown_consent_sends_nothing(
        self, pulling: Exchange, consent: str | None, expected: tuple[str, str]
    ) -> None:
        if consent is not None:
            await pulling.record_consent(
                self.CHILD, "early-help", CSC, consent, "parent-with-parental-responsibility"
            )
        # Even a risk flag on an early help referral does not override the consent rule
        doc = self.referral(4)
        doc["envelope"]["flags"] = {"risk_of_significant_harm": True}
        mid = await pulling.send(SCHOOL, doc)
        assert await pulling.decisions(SCHOOL, mid) == {CSC: expected}
        await pulling.got_nothing(CSC, mid)
