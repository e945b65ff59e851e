"""The IG lead's commands: ``gateway policy check|explain|test|diff``, in-process and, once, as
the real command a CI job would run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.cli import main
from tests.support import EXAMPLE

SCENARIOS = sorted((EXAMPLE / "policy-tests").glob("scenario-*.yaml"))
DOMESTIC_ABUSE = EXAMPLE / "messages" / "domestic-abuse-incident.json"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["policy", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def deployment(tmp_path: Path) -> Path:
    target = tmp_path / "deploy"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("data"))
    return target


def edit(path: Path, change: Any) -> None:
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc))


class TestCheck:
    def test_the_example_is_clean(self, capsys: pytest.CaptureFixture[str]) -> None:
        code, out, _ = run(capsys, "check", str(EXAMPLE), "--today", "2026-11-22")
        assert (code, out.strip()) == (0, "OK: 0 error(s), 0 warning(s) as of 2026-11-22")

    def test_errors_fail_and_warnings_are_listed_separately(
        self, deployment: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        def change(doc: dict[str, Any]) -> None:
            doc["agreements"][0]["review_date"] = "2026-01-01"
            cp_attendance = next(a for a in doc["agreements"] if a["id"] == "northshire-cp-attendance")
            del cp_attendance["lawful_basis"]["article9"]

        edit(deployment / "agreements.yaml", change)
        code, out, _ = run(capsys, "check", str(deployment), "--today", "2026-11-22")
        assert code == 1
        errors, warnings = out.split("Warnings (1):")
        assert "(special-category-without-article9)" in errors
        assert "/agreements/0/review_date (review-overdue)" in warnings
        assert out.strip().endswith("FAILED: 1 error(s), 1 warning(s) as of 2026-11-22")

    def test_warnings_alone_pass(self, deployment: Path, capsys: pytest.CaptureFixture[str]) -> None:
        edit(deployment / "agreements.yaml", lambda d: d["agreements"][0].update(review_date="2026-01-01"))
        code, out, _ = run(capsys, "check", str(deployment), "--today", "2026-11-22", "--json")
        doc = json.loads(out)
        assert code == 0
        assert doc["errors"] == []
        assert [w["code"] for w in doc["warnings"]] == ["review-overdue"]

    def test_a_reference_error_names_file_and_path(
        self, deployment: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        edit(deployment / "agreements.yaml", lambda d: d["agreements"][1]["flows"][0]["to"].append("ghost"))
        code, out, _ = run(capsys, "check", str(deployment))
        assert code == 1
        assert (
            "agreements.yaml: /agreements/1/flows/0/to/1 (known-partner): 'ghost' is not a known partner"
            in out
        )

    def test_unreadable_yaml_is_an_error_with_the_place(
        self, deployment: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        (deployment / "routes.yaml").write_text("routes: [\n  - {event_types: [x]\n")
        code, out, _ = run(capsys, "check", str(deployment))
        assert code == 1
        assert "routes.yaml" in out
        assert "not valid YAML" in out


class TestExplain:
    def test_each_candidate_with_decision_explanation_and_exact_payload(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, out, _ = run(
            capsys,
            "explain",
            "--config",
            str(EXAMPLE),
            "--message",
            str(DOMESTIC_ABUSE),
            "--from",
            "police-northshire",
            "--at",
            "2026-11-22T07:00:00Z",
            "--json",
        )
        assert code == 0
        doc = json.loads(out)
        by = {o["recipient"]: o for o in doc["outcomes"]}
        assert set(by) == {"school-riverside-primary", "csc-northshire"}
        school = by["school-riverside-primary"]
        assert school["decision"]["effect"] == "permit"
        assert school["decision"]["agreement"] == "northshire-operation-encompass"
        assert {w["category"] for w in school["decision"]["withheld"]} >= {"event.narrative"}
        payload = json.loads(school["payload"])
        assert {i["category"] for i in payload["items"]} == {"event.summary"}
        assert "Refuge" not in school["payload"]
        assert doc["policy_version"].startswith("sha256:")

    def test_plain_text_for_one_recipient(self, capsys: pytest.CaptureFixture[str]) -> None:
        code, out, _ = run(
            capsys,
            "explain",
            "--config",
            str(EXAMPLE),
            "--message",
            str(DOMESTIC_ABUSE),
            "--from",
            "police-northshire",
            "--to",
            "health-visiting-northshire",
        )
        assert code == 0
        assert "== health-visiting-northshire: DENY (no-agreement)" in out
        assert "payload" not in out

    def test_consents_from_a_file_change_the_decision(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        consents = tmp_path / "consents.yaml"
        record = {
            "subject": {"system": "nhs-number", "value": "9990000026"},
            "purpose": "early-help",
            "scope": "csc-northshire",
            "state": "given",
            "decided_by": "parent-with-parental-responsibility",
            "recorded_at": "2026-11-19T09:00:00+00:00",
        }
        consents.write_text(yaml.safe_dump([record]))
        args = [
            "explain",
            "--config",
            str(EXAMPLE),
            "--message",
            str(EXAMPLE / "messages" / "early-help-referral.json"),
            "--from",
            "school-riverside-primary",
            "--at",
            "2026-11-20T10:30:00Z",
            "--json",
        ]
        _, without, _ = run(capsys, *args)
        _, with_consent, _ = run(capsys, *args, "--consent", str(consents))
        assert json.loads(without)["outcomes"][0]["decision"]["rule"] == "consent-unknown"
        assert json.loads(with_consent)["outcomes"][0]["decision"]["rule"] == "permit"

        consents.write_text(yaml.safe_dump([{**record, "decided_by": "the-parent"}]))
        code, _, err = run(capsys, *args, "--consent", str(consents))
        assert code == 2
        assert "/consents/0/decided_by (enum)" in err

    def test_a_message_without_a_sender_is_a_clear_usage_error(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with pytest.raises(SystemExit):
            main(["policy", "explain", "--config", str(EXAMPLE)])
        code = main(["policy", "explain", "--config", str(EXAMPLE), "--message", str(DOMESTIC_ABUSE)])
        assert code == 2
        assert "--from PARTNER" in capsys.readouterr().err


class TestPolicyTests:
    @pytest.mark.parametrize("case_file", SCENARIOS, ids=[p.stem for p in SCENARIOS])
    def test_each_domain_scenario_holds_on_the_example_policy(
        self, case_file: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, out, _ = run(capsys, "test", str(EXAMPLE), "--cases", str(case_file))
        assert code == 0, out
        assert "FAIL" not in out

    def test_every_scenario_has_a_case(self) -> None:
        numbers = {yaml.safe_load(p.read_text()).get("scenario") for p in SCENARIOS}
        numbers |= {c["scenario"] for p in SCENARIOS for c in yaml.safe_load(p.read_text()).get("cases", [])}
        assert numbers - {None} == set(range(1, 9))

    def test_a_failing_case_is_reported_as_a_readable_diff(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        case = tmp_path / "leaky.yaml"
        case.write_text(
            yaml.safe_dump(
                {
                    "name": "The school would see the narrative",
                    "from": "police-northshire",
                    "at": "2026-11-22T07:00:00Z",
                    "message": str(DOMESTIC_ABUSE),
                    "only": True,
                    "expect": {
                        "school-riverside-primary": {
                            "decision": "permit",
                            "categories": ["identity.core", "event.narrative"],
                            "present": ["Demo narrative"],
                            "absent": ["Alex"],
                        },
                        "police-northshire": {"decision": "permit"},
                    },
                }
            )
        )
        code, out, _ = run(capsys, "test", str(EXAMPLE), "--cases", str(case))
        assert code == 1
        assert "FAIL  The school would see the narrative" in out
        assert "candidates not expected: csc-northshire" in out
        assert "+ released, not expected: event.summary" in out
        assert "- expected, not released: event.narrative" in out
        assert "payload lacks 'Demo narrative'" in out
        assert "payload contains 'Alex'" in out
        assert "police-northshire: decision: expected permit, got deny (no-agreement)" in out
        assert out.strip().endswith("0 passed, 1 failed, policy " + out.strip().split("policy ")[-1])

    def test_the_real_command_passes_on_the_example_for_ci(self) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "gateway", "policy", "test", str(EXAMPLE)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert " 0 failed" in done.stdout


class TestDiff:
    def test_who_newly_sees_and_who_stops_seeing(
        self, deployment: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        def change(doc: dict[str, Any]) -> None:
            doc["agreements"][0]["flows"][0]["categories"].append("event.narrative")
            doc["agreements"][1]["flows"][0]["categories"].remove("identity.contact")

        edit(deployment / "agreements.yaml", change)
        code, out, _ = run(capsys, "diff", str(EXAMPLE), str(deployment), "--on", "2026-11-22")
        assert code == 0
        assert "school-riverside-primary <- police-northshire  police.domestic-abuse-incident" in out
        assert "+ newly sees: event.narrative" in out
        assert "- stops seeing: identity.contact" in out
        code, out, _ = run(capsys, "diff", str(EXAMPLE), str(EXAMPLE), "--json")
        assert json.loads(out)["access"] == []
