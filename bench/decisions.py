"""Decision benchmark: the consent and purpose engine on a large synthetic deployment, and the
same permit questions put to Cedar (``cedarpy``) as the reference policy engine.

Deployment: 1,000 partners, 5,000 sharing agreements (some consent-based, some expired, some
releasing special-category data), 1,000,000 consent records over 250,000 children, and
messages about 1-4 people. Everything is generated from a fixed seed; NHS numbers are from
the 999 test range with valid check digits.

Measured for our engine: ``consent.decide`` per (message, recipient) question, consent
look-up included, one ``perf_counter_ns`` pair per decision after a warm-up. For Cedar: the
same questions as ``is_authorized`` requests against a pre-parsed ``PolicySet`` and
``Entities`` (Cedar's fastest path), with the consent state already looked up and passed in
the request context (the look-up is not timed for Cedar: the comparison favours it).

Run:  .venv/bin/python bench/decisions.py [--questions 50000] [--cedar-questions 2000]

The last line printed is one JSON object with the figures (keys in bench/README.md).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import cedarpy  # noqa: E402 - a development dependency, after the path set-up

from canonical import Message, default_dictionary  # noqa: E402
from consent import (  # noqa: E402
    ConsentRecord,
    ConsentRegistry,
    ConsentState,
    DecidedBy,
    Effect,
    PolicySnapshot,
    compile_policy,
    decide,
)
from tests.support import valid_nhs_numbers  # noqa: E402

SEED = 20261122
NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
SECTORS = ("police", "health", "education", "social-care", "local-authority", "voluntary")
ROLES = ("child", "parent", "carer", "sibling", "victim", "alleged-perpetrator")
DECIDERS = tuple(DecidedBy)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- the synthetic deployment --------------------------------------------------------------


@dataclass
class Deployment:
    documents: dict[str, Any]
    policy: PolicySnapshot
    children: list[str]
    consents: ConsentRegistry
    consent_count: int


def generate(partners: int, agreements: int, consents: int, children: int, rng: random.Random) -> Deployment:
    dictionary = default_dictionary()
    events = sorted(dictionary.event_types)
    purposes = sorted(dictionary.purposes)
    plain = sorted(
        c for c, v in dictionary.categories.items() if not v.special_category and c != "identity.core"
    )
    special = sorted(c for c, v in dictionary.categories.items() if v.special_category)
    partner_docs = [
        {
            "id": f"partner-{i:04d}",
            "name": f"Synthetic partner {i} (fictional)",
            "sector": SECTORS[i % len(SECTORS)],
            "delivery": {"mode": "pull", "format": "canonical-json"},
            **({"roles": ["parent-facing"]} if i % 7 == 0 else {}),
        }
        for i in range(partners)
    ]
    ids: list[str] = [str(p["id"]) for p in partner_docs]
    agreement_docs = []
    for i in range(agreements):
        start = date(2025, 1, 1) + timedelta(days=rng.randrange(0, 600))
        length = rng.choice((30, 365, 730, 1095)) if rng.random() > 0.1 else 60  # ~10% lapse early
        cats = ["identity.core", *rng.sample(plain, rng.randint(1, 4))]
        basis: dict[str, Any] = {"article6": rng.choice(["6(1)(c)", "6(1)(e)"])}
        if rng.random() < 0.15:
            cats.append(rng.choice(special))
            basis |= {"article9": "9(2)(g)", "dpa_schedule1": "Schedule 1 para 18"}
        consent_based = rng.random() < 0.2
        agreement_docs.append(
            {
                "id": f"agreement-{i:05d}",
                "title": f"Synthetic agreement {i}",
                "owner": "Synthetic IG lead (role)",
                "valid_from": start.isoformat(),
                "valid_until": (start + timedelta(days=length)).isoformat(),
                "lawful_basis": basis | ({"article6": "6(1)(a)"} if consent_based else {}),
                "consent_required": consent_based,
                "share_without_consent_on_risk": consent_based and rng.random() < 0.5,
                "flows": [
                    {
                        "from": rng.sample(ids, rng.randint(1, 2)),
                        "to": rng.sample(ids, rng.randint(1, 3)),
                        "event_types": rng.sample(events, rng.randint(1, 2)),
                        "purposes": rng.sample(purposes, rng.randint(1, 2)),
                        "categories": sorted(set(cats)),
                        "person_roles": ["child", *rng.sample(ROLES[1:], rng.randint(0, 3))],
                    }
                ],
            }
        )
    documents = {
        "partners.yaml": {"partners": partner_docs},
        "agreements.yaml": {"agreements": agreement_docs},
        "routes.yaml": {"routes": []},
    }
    log(f"  compiling {partners} partners and {agreements} agreements")
    started = time.perf_counter()
    policy = compile_policy(documents, dictionary)
    compile_seconds = time.perf_counter() - started
    documents["compile_seconds"] = compile_seconds

    log(f"  generating {children} children and {consents:,} consent records")
    kids = valid_nhs_numbers(children, start=999_000_000)
    registry = ConsentRegistry()
    states = (ConsentState.GIVEN, ConsentState.GIVEN, ConsentState.REFUSED, ConsentState.WITHDRAWN)
    for n in range(consents):
        registry.add(
            ConsentRecord(
                record_id=f"con-{n}",
                subject=f"nhs-number:{kids[rng.randrange(children)]}",
                purpose=rng.choice(purposes),
                scope=rng.choice(ids) if rng.random() < 0.7 else f"sector:{rng.choice(SECTORS)}",
                state=rng.choice(states),
                decided_by=rng.choice(DECIDERS),
                recorded_at=NOW - timedelta(days=rng.randrange(1, 700)),
            )
        )
        if n and n % 250_000 == 0:
            log(f"    {n:,} consent records")
    return Deployment(documents, policy, kids, registry, consents)


# --- questions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Question:
    message: Message
    recipient: str


def questions(dep: Deployment, count: int, rng: random.Random) -> list[Question]:
    """Mostly questions an agreement covers (so the whole decision runs), some it does not."""
    keys = sorted(dep.policy.grants)
    dictionary = dep.policy.dictionary
    categories = sorted(dictionary.categories)
    out = []
    for _ in range(count):
        if rng.random() < 0.85:
            source, recipient, event, purpose = rng.choice(keys)
        else:
            source, recipient = rng.sample(list(dep.policy.partners), 2)
            event, purpose = (
                rng.choice(sorted(dictionary.event_types)),
                rng.choice(sorted(dictionary.purposes)),
            )
        people = []
        for p in range(rng.randint(1, 4)):
            role = "child" if p == 0 else rng.choice(ROLES[1:])
            person: dict[str, Any] = {
                "ref": f"person-{p}",
                "role": role,
                "identifiers": [{"system": "nhs-number", "value": rng.choice(dep.children)}],
                "name": {"given": "Synthetic", "family": f"Person{p}"},
            }
            if rng.random() < 0.3:
                person["addresses"] = [{"lines": ["1 Example Street"], "postcode": "ZZ99 1ZZ"}]
            if rng.random() < 0.1:
                person["markers"] = ["confidential-address"]
            people.append(person)
        items = [
            {"category": c, "type": "synthetic", "about": ["person-0"], "data": {"text": "synthetic"}}
            for c in rng.sample(categories, rng.randint(1, 4))
            if not c.startswith("identity.")
        ]
        doc = {
            "envelope": {
                "message_id": "msg_BENCH",
                "source": source,
                "event_type": event,
                "occurred_at": NOW.isoformat(),
                "purpose": purpose,
                "flags": {"risk_of_significant_harm": rng.random() < 0.3},
            },
            "people": people,
            "items": items,
        }
        out.append(Question(Message.from_dict(doc), recipient))
    return out


# --- timing --------------------------------------------------------------------------------


@dataclass
class Timing:
    count: int
    seconds: float
    p50_us: float
    p99_us: float

    @property
    def per_second(self) -> float:
        return self.count / self.seconds


def timed(run: Callable[[int], object], count: int) -> Timing:
    samples = []
    gc.disable()
    try:
        for i in range(count):
            t0 = time.perf_counter_ns()
            run(i)
            samples.append(time.perf_counter_ns() - t0)
    finally:
        gc.enable()
    samples.sort()
    total = sum(samples) / 1e9
    return Timing(count, total, samples[len(samples) // 2] / 1000, samples[int(0.99 * len(samples))] / 1000)


# --- Cedar ---------------------------------------------------------------------------------


def _cedar_set(values: Any) -> str:
    return "[" + ", ".join(json.dumps(v) for v in sorted(values)) + "]"


def cedar_policies(policy: PolicySnapshot) -> Iterator[str]:
    """One permit per (agreement, flow): who may share what event, for which purpose, when,
    and on what consent. Categories are not an authorisation question in Cedar terms: the
    permit answers "may anything be shared", which is the question compared."""
    for a in policy.agreements.values():
        for f in a.flows:
            when = [
                f"{_cedar_set(f.event_types)}.contains(context.event_type)",
                f"{_cedar_set(f.purposes)}.contains(context.purpose)",
                f"context.today >= {a.valid_from.strftime('%Y%m%d')}",
                f"context.today <= {a.valid_until.strftime('%Y%m%d')}",
            ]
            if a.consent_required:
                consent = 'context.consent == "given"'
                if a.share_without_consent_on_risk:
                    consent = f"({consent} || context.risk_of_significant_harm)"
                when.append(consent)
            principals = ", ".join(f'Partner::"{s}"' for s in sorted(f.sources))
            resources = ", ".join(f'Partner::"{r}"' for r in sorted(f.recipients))
            yield (
                f'@id("{a.id}")\npermit(principal, action == Action::"share", resource)\n'
                f"when {{ [{principals}].contains(principal) && [{resources}].contains(resource) && "
                + " && ".join(when)
                + " };"
            )


def cedar_request(q: Question, dep: Deployment) -> dict[str, Any]:
    env = q.message.envelope
    partner = dep.policy.partners[q.recipient]
    states = []
    for child in q.message.children():
        record = dep.consents.lookup(child.identifiers, env.purpose, partner.id, partner.sector, NOW)
        states.append("unknown" if record is None else record.state.value)
    consent = "given" if states and all(s == "given" for s in states) else "not-given"
    return {
        "principal": f'Partner::"{env.source}"',
        "action": 'Action::"share"',
        "resource": f'Partner::"{q.recipient}"',
        "context": {
            "event_type": env.event_type,
            "purpose": env.purpose,
            "today": int(NOW.strftime("%Y%m%d")),
            "consent": consent,
            "risk_of_significant_harm": env.flags.risk_of_significant_harm,
        },
    }


# --- the benchmark -------------------------------------------------------------------------


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--partners", type=int, default=1000)
    parser.add_argument("--agreements", type=int, default=5000)
    parser.add_argument("--consents", type=int, default=1_000_000)
    parser.add_argument("--children", type=int, default=250_000)
    parser.add_argument("--questions", type=int, default=50_000, help="decisions timed for our engine")
    parser.add_argument("--cedar-questions", type=int, default=2000, help="the first N put to Cedar too")
    args = parser.parse_args()
    rng = random.Random(SEED)

    log("generating the deployment")
    dep = generate(args.partners, args.agreements, args.consents, args.children, rng)
    qs = questions(dep, args.questions, rng)

    log(f"timing {len(qs):,} decisions")
    for q in qs[:2000]:  # warm-up
        decide(q.message, q.recipient, dep.policy, NOW, dep.consents)
    ours = timed(lambda i: decide(qs[i].message, qs[i].recipient, dep.policy, NOW, dep.consents), len(qs))
    effects = [decide(q.message, q.recipient, dep.policy, NOW, dep.consents).effect for q in qs]

    log("translating the agreements to Cedar")
    text = "\n".join(cedar_policies(dep.policy))
    cedar_set = cedarpy.PolicySet.from_str(text)
    entities = cedarpy.Entities.from_json_str(
        json.dumps(
            [{"uid": {"type": "Partner", "id": p}, "attrs": {}, "parents": []} for p in dep.policy.partners]
        )
    )
    n_cedar = min(args.cedar_questions, len(qs))
    requests = [cedar_request(q, dep) for q in qs[:n_cedar]]
    log(f"timing {n_cedar:,} Cedar decisions over {text.count('permit(')} policies")
    for r in requests[:50]:
        cedarpy.is_authorized(r, cedar_set, entities)
    results: list[Any] = [None] * n_cedar

    def ask(i: int) -> None:
        results[i] = cedarpy.is_authorized(requests[i], cedar_set, entities)

    cedar = timed(ask, n_cedar)
    agree = sum(
        (r.decision == cedarpy.Decision.Allow) == (effects[i] is Effect.PERMIT) for i, r in enumerate(results)
    )

    figures = {
        "partners": args.partners,
        "agreements": args.agreements,
        "consents": dep.consent_count,
        "questions": len(qs),
        "compile_seconds": round(dep.documents["compile_seconds"], 2),
        "permits": sum(e is Effect.PERMIT for e in effects),
        "reviews": sum(e is Effect.REVIEW for e in effects),
        "denials": sum(e is Effect.DENY for e in effects),
        "decisions_per_second": round(ours.per_second),
        "p50_us": round(ours.p50_us, 1),
        "p99_us": round(ours.p99_us, 1),
        "cedar_policies": text.count("permit("),
        "cedar_questions": n_cedar,
        "cedar_decisions_per_second": round(cedar.per_second),
        "cedar_p50_us": round(cedar.p50_us, 1),
        "cedar_p99_us": round(cedar.p99_us, 1),
        "ratio_vs_cedar": round(ours.per_second / cedar.per_second, 1),
        "engines_agree": round(agree / n_cedar, 4),
        "peak_rss_mb": round(peak_rss_mb()),
    }
    width = 28
    print(
        f"{'our engine':<{width}} {figures['decisions_per_second']:>10,} decisions/s  "
        f"p50 {figures['p50_us']} µs  p99 {figures['p99_us']} µs"
    )
    print(
        f"{'cedarpy (' + str(figures['cedar_policies']) + ' policies)':<{width}} "
        f"{figures['cedar_decisions_per_second']:>10,} decisions/s  "
        f"p50 {figures['cedar_p50_us']} µs  p99 {figures['cedar_p99_us']} µs"
    )
    print(
        f"{'ratio':<{width}} {figures['ratio_vs_cedar']}x; "
        f"same permit/deny on {100 * figures['engines_agree']:.2f}%"
    )
    print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
