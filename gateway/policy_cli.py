"""``gateway policy check|explain|test|diff``: the IG lead's tools. This module reads the files
and prints; the analysis is pure and lives in ``consent`` (``checks``, ``policy_diff``) and
``gateway.simulate``.

Exit codes: 0 fine, 1 a check or test failed, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from adapters import AdapterRegistry, default_registry
from canonical import InvalidInput, Message, default_dictionary
from consent import ConsentRegistry, PolicySnapshot, compile_policy
from consent.checks import Finding, check_policy
from consent.policy import PolicyError
from consent.policy_diff import diff_policies
from gateway.config import load_policy_documents, read_yaml
from gateway.errors import ConfigError
from gateway.simulate import Outcome, consent_registry, simulate

MAX_INPUT_BYTES = 1024 * 1024


def add_policy_parser(sub: Any) -> None:
    policy = sub.add_parser("policy", help="IG tools: check, explain, test and diff sharing policy")
    actions = policy.add_subparsers(dest="policy_command", required=True, metavar="ACTION")

    check = actions.add_parser("check", help="find errors and risks in a deployment's policy files")
    check.add_argument("dir", type=Path, metavar="DIR", help="deployment directory")
    check.add_argument("--today", type=date.fromisoformat, help="check as of this date (default: today)")
    check.add_argument("--json", action="store_true", help="print the findings as JSON")

    explain = actions.add_parser(
        "explain", help="what each candidate recipient would receive of a message, and why"
    )
    explain.add_argument("--config", type=Path, required=True, metavar="DIR", help="deployment directory")
    explain.add_argument("--message", type=Path, required=True, metavar="FILE", help="the message")
    explain.add_argument("--to", metavar="PARTNER", help="only this recipient (default: every candidate)")
    explain.add_argument("--at", metavar="TIME", help="decide as of this ISO date or time (default: now)")
    explain.add_argument(
        "--consent", type=Path, metavar="FILE", help="consent records (YAML or JSON list) to decide with"
    )
    explain.add_argument(
        "--from", dest="source", metavar="PARTNER", help="the sender (default: envelope.source)"
    )
    explain.add_argument("--format", default="canonical-json", help="the message file's format")
    explain.add_argument("--json", action="store_true", help="print the outcomes as JSON")

    test = actions.add_parser("test", help="run IG-written policy test cases (usable in CI)")
    test.add_argument("dir", type=Path, metavar="DIR", help="deployment directory")
    test.add_argument(
        "--cases", type=Path, metavar="PATH", help="a case file or folder (default: DIR/policy-tests)"
    )

    diff = actions.add_parser("diff", help="who would newly see, or stop seeing, which categories")
    diff.add_argument("old", type=Path, metavar="OLD", help="deployment directory before the change")
    diff.add_argument("new", type=Path, metavar="NEW", help="deployment directory after the change")
    diff.add_argument("--on", type=date.fromisoformat, help="compare as of this date (default: today)")
    diff.add_argument("--json", action="store_true", help="print the differences as JSON")


def run_policy(args: argparse.Namespace) -> int:
    handlers = {"check": _check, "explain": _explain, "test": _test, "diff": _diff}
    try:
        return handlers[args.policy_command](args)
    except InvalidInput as exc:
        print(f"invalid input ({exc.adapter or 'input'}):", file=sys.stderr)
        for v in exc.violations:
            print(f"  {v.field} ({v.rule}): {v.message}", file=sys.stderr)
        return 2


# -- loading ----------------------------------------------------------------------------


def _policy(config: Path) -> PolicySnapshot:
    documents = load_policy_documents(config)
    try:
        return compile_policy(documents, default_dictionary())
    except PolicyError as exc:
        raise ConfigError(
            "\n".join(f"{config / f}: {v.field} ({v.rule}): {v.message}" for f, v in exc.problems)
        ) from None


def _formats(config: Path) -> dict[str, str]:
    partners = read_yaml(config / "partners.yaml")["partners"]
    return {p["id"]: p.get("delivery", {}).get("format", "") for p in partners}


def _read(path: Path) -> bytes:
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    if path.stat().st_size > MAX_INPUT_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_INPUT_BYTES} bytes")
    return path.read_bytes()


def _parse_time(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--at/at: {text!r} is not an ISO 8601 date or time") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _message(
    adapters: AdapterRegistry, fmt: str, body: bytes, policy: PolicySnapshot, source: str | None
) -> Message:
    adapter = adapters.by_name.get(fmt)
    if adapter is None:
        raise ConfigError(f"--format: {fmt!r} is not one of {sorted(adapters.by_name)}")
    message = adapter.parse(body, policy.dictionary)
    sender = source or message.envelope.source
    if not sender:
        raise ConfigError("the message names no envelope.source: say who sends it with --from PARTNER")
    if sender not in policy.partners:
        raise ConfigError(f"the sender {sender!r} is not a partner in this policy")
    return message.with_envelope(source=sender)


def _consents(document: Any, policy: PolicySnapshot, at: datetime) -> ConsentRegistry:
    records = document.get("consents", []) if isinstance(document, dict) else document
    if not isinstance(records, list):
        raise ConfigError("consents: expected a list of consent records")
    return consent_registry(records, policy, at)


# -- check -------------------------------------------------------------------------------


def _check(args: argparse.Namespace) -> int:
    today = args.today or datetime.now(UTC).date()
    try:
        findings = check_policy(load_policy_documents(args.dir), default_dictionary(), today)
    except ConfigError as exc:
        findings = [
            Finding("error", "unreadable", str(args.dir), "/", line) for line in exc.detail.splitlines()
        ]
    errors = [f for f in findings if f.level == "error"]
    warnings = [f for f in findings if f.level == "warning"]
    if args.json:
        print(
            json.dumps(
                {"errors": [f.as_dict() for f in errors], "warnings": [f.as_dict() for f in warnings]},
                sort_keys=True,
            )
        )
        return 1 if errors else 0
    for title, group in (("Errors", errors), ("Warnings", warnings)):
        if group:
            print(f"{title} ({len(group)}):")
            for f in group:
                print(f"  {f}")
    print(f"{'FAILED' if errors else 'OK'}: {len(errors)} error(s), {len(warnings)} warning(s) as of {today}")
    return 1 if errors else 0


# -- explain ------------------------------------------------------------------------------


def _explain(args: argparse.Namespace) -> int:
    policy = _policy(args.config)
    adapters = default_registry()
    at = _parse_time(args.at)
    message = _message(adapters, args.format, _read(args.message), policy, args.source)
    consents = _consents(read_yaml(args.consent), policy, at) if args.consent else None
    if args.to and args.to not in policy.partners:
        raise ConfigError(f"--to: {args.to!r} is not a partner in this policy")
    outcomes = simulate(
        message,
        policy=policy,
        formats=_formats(args.config),
        adapters=adapters,
        at=at,
        consents=consents,
        only=args.to,
    )
    if args.json:
        doc = {
            "policy_version": policy.version,
            "at": at.isoformat(),
            "outcomes": [o.as_dict() for o in outcomes],
        }
        print(json.dumps(doc, sort_keys=True, ensure_ascii=False))
        return 0
    print(f"Policy {policy.version}, decided as of {at.isoformat()}")
    if not outcomes:
        print("No candidate recipients: no route for this event type and no recipient named.")
    for o in outcomes:
        print("\n".join(_describe(o)))
    return 0


def _describe(o: Outcome) -> Iterator[str]:
    d = o.decision
    yield ""
    yield f"== {o.recipient}: {d.effect.value.upper()} ({d.rule})"
    yield f"   {d.explanation}"
    if d.agreement_id:
        basis = d.lawful_basis.describe() if d.lawful_basis else "-"
        yield f"   agreement: {d.agreement_id}; lawful basis: {basis}"
    yield f"   consent: {d.consent}"
    if d.released:
        yield f"   released: {', '.join(sorted(d.released))}"
    for w in d.withheld:
        yield f"   withheld: {w.category}{' of ' + w.person_ref if w.person_ref else ''} — {w.reason}"
    if o.payload is not None:
        yield f"   payload ({o.media_type}){' if approved' if d.effect.value == 'review' else ''}:"
        yield _pretty(o.payload)


def _pretty(payload: bytes) -> str:
    try:
        text = json.dumps(json.loads(payload), indent=2, ensure_ascii=False)
    except ValueError:
        text = payload.decode("utf-8", "replace")
    return "\n".join("     " + line for line in text.splitlines())


# -- test ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    file: Path
    spec: Mapping[str, Any]


def _cases(path: Path) -> list[Case]:
    files = sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml")) if path.is_dir() else [path]
    if not files:
        raise ConfigError(f"{path}: no policy test cases (*.yaml)")
    out = []
    for file in files:
        doc = read_yaml(file)
        specs = doc.get("cases", [doc]) if isinstance(doc, dict) else None
        if not isinstance(specs, list):
            raise ConfigError(f"{file}: expected a case (a mapping) or cases: [...]")
        for i, spec in enumerate(specs):
            if (
                not isinstance(spec, dict)
                or "message" not in spec
                or not isinstance(spec.get("expect"), dict)
            ):
                raise ConfigError(f"{file}: case {i + 1} needs message: and expect: (a mapping by recipient)")
            out.append(Case(str(spec.get("name", f"{file.stem} #{i + 1}")), file, spec))
    return out


def _test(args: argparse.Namespace) -> int:
    policy = _policy(args.dir)
    formats = _formats(args.dir)
    adapters = default_registry()
    cases = _cases(args.cases or args.dir / "policy-tests")
    failed = 0
    for case in cases:
        try:
            problems = list(_run_case(case, policy, formats, adapters))
        except (InvalidInput, ConfigError) as exc:
            detail = (
                exc.detail
                if isinstance(exc, ConfigError)
                else "; ".join(f"{v.field} ({v.rule})" for v in exc.violations)
            )
            problems = [f"the case cannot run: {detail}"]
        failed += bool(problems)
        print(f"{'FAIL' if problems else 'PASS'}  {case.name}  ({case.file.name})")
        for p in problems:
            print(f"      {p}")
    print(f"{len(cases) - failed} passed, {failed} failed, policy {policy.version[:19]}")
    return 1 if failed else 0


def _run_case(
    case: Case, policy: PolicySnapshot, formats: Mapping[str, str], adapters: AdapterRegistry
) -> Iterator[str]:
    spec = case.spec
    at = _parse_time(str(spec["at"]) if spec.get("at") else None)
    raw = spec["message"]
    body = json.dumps(raw).encode() if isinstance(raw, dict) else _read(case.file.parent / str(raw))
    message = _message(adapters, str(spec.get("format", "canonical-json")), body, policy, spec.get("from"))
    consents = _consents(spec.get("consents", []), policy, at)
    outcomes = {
        o.recipient: o
        for o in simulate(
            message, policy=policy, formats=formats, adapters=adapters, at=at, consents=consents
        )
    }
    expect: Mapping[str, Any] = spec["expect"]
    if spec.get("only"):
        extra, missing = sorted(set(outcomes) - set(expect)), sorted(set(expect) - set(outcomes))
        if extra:
            yield f"candidates not expected: {', '.join(extra)}"
        if missing:
            yield f"expected candidates that are not: {', '.join(missing)}"
    for recipient, want in expect.items():
        got = outcomes.get(recipient)
        if got is None:
            if recipient in policy.partners:
                got = simulate(
                    message,
                    policy=policy,
                    formats=formats,
                    adapters=adapters,
                    at=at,
                    consents=consents,
                    only=recipient,
                )[0]
            else:
                yield f"{recipient}: not a partner in this policy"
                continue
        yield from (f"{recipient}: {p}" for p in _compare(want, got))


def _compare(want: Mapping[str, Any], got: Outcome) -> Iterator[str]:
    d = got.decision
    if want.get("decision") != d.effect.value:
        yield f"decision: expected {want.get('decision')}, got {d.effect.value} ({d.rule}): {d.explanation}"
        return
    if "rule" in want and want["rule"] != d.rule:
        yield f"rule: expected {want['rule']}, got {d.rule}"
    if "categories" in want:
        expected = set(want["categories"])
        if expected != d.released:
            plus, minus = sorted(d.released - expected), sorted(expected - d.released)
            parts = ([f"+ released, not expected: {', '.join(plus)}"] if plus else []) + (
                [f"- expected, not released: {', '.join(minus)}"] if minus else []
            )
            yield "categories: " + "; ".join(parts)
    if "without_consent" in want and bool(want["without_consent"]) != d.consent.startswith("without consent"):
        yield f"without_consent: expected {bool(want['without_consent'])}; consent: {d.consent}"
    text = got.payload.decode("utf-8", "replace") if got.payload is not None else ""
    for s in want.get("absent", []):
        if str(s) in text:
            yield f"payload contains {s!r}, which must not reach this recipient"
    for s in want.get("present", []):
        if str(s) not in text:
            yield f"payload lacks {s!r}"


# -- diff ---------------------------------------------------------------------------------


def _diff(args: argparse.Namespace) -> int:
    on = args.on or datetime.now(UTC).date()
    result = diff_policies(_policy(args.old), _policy(args.new), on)
    if args.json:
        print(json.dumps(result.as_dict(), sort_keys=True))
        return 0
    if result.empty:
        print(f"No difference in who sees what as of {on}.")
        return 0
    print(f"Changes in who sees what as of {on}:")
    for change in result.access:
        print(change.describe())
    for title, rows in (
        ("Agreements added", result.agreements_added),
        ("Agreements removed", result.agreements_removed),
        ("Agreements changed", result.agreements_changed),
    ):
        if rows:
            print(f"{title}:")
            print("\n".join(f"  {r}" for r in rows))
    return 0
