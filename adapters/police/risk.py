"""Risk grading and DASH answers, shared by the PPN and MARAC formats.

* Grades: ``high`` / ``medium`` / ``standard``; ``red`` / ``amber`` / ``green`` are accepted
  as their synonyms and stored as the first three.
* DASH (Domestic Abuse, Stalking and Harassment and Honour-based violence risk
  identification checklist): exactly 24 answers, each ``yes``, ``no`` or ``not-known``
  (the schema refuses another count: ``minItems``/``maxItems`` at ``.../dash/answers``), and
  a score, the number of ``yes`` answers. A score that differs from the answers is refused
  (``dash-score``); a score without answers is kept as sent.
* A grade inconsistent with the score (14+ ``yes`` but not graded high, or high below 14)
  is **kept as sent**: the grade is the officer's professional judgement, which DASH
  guidance lets override the count in both directions (professional judgement, potential
  escalation). Both are carried, so the reader sees the grade and the score side by side.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from canonical import Violation

GRADES = {
    "high": "high",
    "medium": "medium",
    "standard": "standard",
    "red": "high",
    "amber": "medium",
    "green": "standard",
}
CANONICAL_GRADES = frozenset({"high", "medium", "standard"})
DASH_QUESTIONS = 24
DASH_HIGH_RISK_YES = 14
"""14 or more ``yes`` answers is "visible high risk", the usual MARAC threshold."""
DASH_ANSWERS = frozenset({"yes", "no", "not-known"})


def risk_to_canonical(native: Mapping[str, Any], at: str, problems: list[Violation]) -> dict[str, Any]:
    """A schema-valid risk assessment at pointer ``at`` -> the item's data."""
    data: dict[str, Any] = {}
    if "grade" in native:
        data["grading"] = GRADES[native["grade"]]
    dash = native.get("dash")
    if dash is not None:
        answers = dash.get("answers")
        score = dash.get("score")
        if answers is not None:
            yes = answers.count("yes")
            if score is not None and score != yes:
                problems.append(
                    Violation(f"{at}/dash/score", "dash-score", "must equal the number of 'yes' answers")
                )
            data["dash_answers"] = list(answers)
            data["dash_score"] = yes
        else:
            data["dash_score"] = score
    for key in ("factors", "referral_criteria"):
        if native.get(key):
            data[key] = list(native[key])
    return data


def is_high(native: Mapping[str, Any] | None) -> bool:
    return native is not None and GRADES.get(native.get("grade", "")) == "high"


def risk_to_native(data: Mapping[str, Any]) -> dict[str, Any]:
    """The item's data -> our ``risk_assessment`` object; values of a foreign canonical
    message that our schema could not carry are left out rather than rendered invalid."""
    out: dict[str, Any] = {}
    grading = data.get("grading")
    if isinstance(grading, str) and grading in CANONICAL_GRADES:
        out["grade"] = grading
    dash: dict[str, Any] = {}
    answers = data.get("dash_answers")
    if (
        isinstance(answers, list)
        and len(answers) == DASH_QUESTIONS
        and all(a in DASH_ANSWERS for a in answers)
    ):
        dash["answers"] = list(answers)
    score = data.get("dash_score")
    if isinstance(score, int) and not isinstance(score, bool) and 0 <= score <= DASH_QUESTIONS:
        dash["score"] = score
    if dash:
        out["dash"] = dash
    for key in ("factors", "referral_criteria"):
        values = data.get(key)
        if isinstance(values, list) and values and all(isinstance(v, str) for v in values):
            out[key] = list(values)
    return out
