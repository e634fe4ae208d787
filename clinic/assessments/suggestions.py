"""Plan problems that an instrument's result suggests: one rule per instrument code.

The rules sit beside the instrument definitions (``instruments/*.json``). Each reads a signed
assessment of its instrument and gives the problem's description, or None when the result
suggests no problem. The clinician edits what they suggest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from clinic.assessments.models import Assessment
from clinic.assessments.operations import current_signed


@dataclass(frozen=True)
class Suggestion:
    description: str
    #: The signed assessment that suggests the problem.
    assessment_id: int


def _words(label: str | None) -> str:
    """A severity band's label as words ("moderately_severe" -> "moderately severe")."""
    return str(label).replace("_", " ")


def dsm5_oud(assessment: Assessment) -> str | None:
    if assessment.severity not in {"mild", "moderate", "severe"}:
        return None
    return f"Opioid use disorder, {assessment.severity} (DSM-5: {assessment.total_score} of 11 criteria)"


def cows(assessment: Assessment) -> str | None:
    if assessment.total_score is None or assessment.total_score < 13:
        return None
    return f"Opioid withdrawal, {_words(assessment.severity)} (COWS {assessment.total_score})"


def phq_9(assessment: Assessment) -> str | None:
    suicide_risk = "suicide_risk_item" in assessment.flags
    if not ((assessment.total_score is not None and assessment.total_score >= 10) or suicide_risk):
        return None
    text = f"Depressive symptoms, {_words(assessment.severity)} (PHQ-9 {assessment.total_score})"
    return text + ("; safety plan needed (item 9)" if suicide_risk else "")


def gad_7(assessment: Assessment) -> str | None:
    if assessment.total_score is None or assessment.total_score < 10:
        return None
    return f"Anxiety symptoms, {assessment.severity} (GAD-7 {assessment.total_score})"


def dast_10(assessment: Assessment) -> str | None:
    if assessment.total_score is None or assessment.total_score < 3:
        return None
    return f"Other drug use, {assessment.severity} (DAST-10 {assessment.total_score})"


def audit_c(assessment: Assessment) -> str | None:
    if assessment.severity != "positive":
        return None
    return f"Unhealthy alcohol use (AUDIT-C {assessment.total_score}, positive)"


#: Instrument code -> its rule, in the order suggestions are listed.
RULES: dict[str, Callable[[Assessment], str | None]] = {
    "DSM5-OUD": dsm5_oud,
    "COWS": cows,
    "PHQ-9": phq_9,
    "GAD-7": gad_7,
    "DAST-10": dast_10,
    "AUDIT-C": audit_c,
}


def problem_suggestions(client_id: int) -> list[Suggestion]:
    """What the client's latest signed, current assessment of each instrument suggests, in ``RULES`` order."""
    suggestions = []
    for code, rule in RULES.items():
        signed = current_signed(client_id, code)
        if not signed:
            continue
        latest = signed[-1]
        description = rule(latest)
        if description:
            suggestions.append(Suggestion(description, latest.id))
    return suggestions
