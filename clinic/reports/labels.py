"""What a reader sees instead of codes: display names of the coded values in reports, and numbers."""

from __future__ import annotations

from typing import Any

#: Display names by vocabulary. A code not listed is shown with its underscores as spaces.
DISPLAY_NAMES: dict[str, dict[str, str]] = {
    "medication": {
        "methadone": "Methadone",
        "buprenorphine": "Buprenorphine",
        "buprenorphine_naloxone": "Buprenorphine/naloxone",
        "naltrexone_oral": "Naltrexone (oral)",
        "naltrexone_xr": "Naltrexone XR (injection)",
    },
    "substance": {
        "6-mam": "6-MAM (heroin)",
        "amphetamine": "Amphetamine",
        "amphetamines": "Amphetamines",
        "barbiturates": "Barbiturates",
        "benzodiazepines": "Benzodiazepines",
        "buprenorphine": "Buprenorphine",
        "cocaine": "Cocaine",
        "eddp": "EDDP (methadone)",
        "ethanol": "Alcohol",
        "etg": "EtG (alcohol)",
        "fentanyl": "Fentanyl",
        "mdma": "MDMA",
        "methadone": "Methadone",
        "methamphetamine": "Methamphetamine",
        "opiates": "Opiates",
        "oxycodone": "Oxycodone",
        "pcp": "PCP",
        "thc": "Cannabis (THC)",
        "xylazine": "Xylazine",
    },
    "appointment_kind": {
        "intake_assessment": "Intake assessment",
        "individual_therapy": "Individual therapy",
        "group_therapy": "Group therapy",
        "medication_visit": "Medication visit",
        "peer_support": "Peer support",
        "drug_screen": "Drug screen",
        "plan_review": "Plan review",
    },
    "channel": {"sms": "SMS", "email": "Email"},
    "cm_schedule": {"escalating_voucher": "Escalating vouchers", "prize_draw": "Prize draws"},
    "iet_measure": {
        "admissions": "Admissions",
        "initiated": "Initiated (within 14 days)",
        "engaged": "Engaged (2 more in 34 days)",
    },
    # ASAM Criteria, 3rd edition, and the levels the 4th adds.
    "asam_level": {
        "0.5": "0.5 Early intervention",
        "1": "1 Outpatient",
        "1-OTP": "1 Opioid treatment program",
        "1.5": "1.5 Outpatient therapy",
        "1.7": "1.7 Medically managed outpatient",
        "2.1": "2.1 Intensive outpatient",
        "2.5": "2.5 Partial hospitalization",
        "2.7": "2.7 Medically managed intensive outpatient",
        "3.1": "3.1 Low-intensity residential",
        "3.3": "3.3 Population-specific residential",
        "3.5": "3.5 High-intensity residential",
        "3.7": "3.7 Medically monitored inpatient",
        "4": "4 Medically managed inpatient",
        "1-WM": "1-WM Ambulatory withdrawal management",
        "2-WM": "2-WM Withdrawal management, on-site monitoring",
        "3.2-WM": "3.2-WM Residential withdrawal management",
        "3.7-WM": "3.7-WM Inpatient withdrawal management",
        "4-WM": "4-WM Intensive inpatient withdrawal management",
    },
}


def display_name(value: Any, vocabulary: str | None) -> str:
    """The name a reader knows for a coded value; free text (names of people, sites) as it is.

    A code missing from its vocabulary, or a vocabulary with no map (``"sentence"``: text in lower
    case), is shown with spaces for underscores and a capital first letter.
    """
    if value is None:
        return "None recorded"
    text = str(value)
    if vocabulary is None:
        return text
    known = DISPLAY_NAMES.get(vocabulary, {}).get(text)
    if known is not None:
        return known
    spaced = text.replace("_", " ")
    return spaced[:1].upper() + spaced[1:]


def format_value(value: Any, unit: str) -> str:
    """A number as a reader expects it: a percentage, dollars, days or a count; n/a when undefined."""
    if value is None:
        return "n/a"
    if unit.startswith("fraction"):
        return f"{float(value) * 100:.1f}%".replace(".0%", "%")
    if unit == "cents":
        return f"${int(value) / 100:,.2f}"
    if unit == "days":
        number = float(value)
        shown = f"{number:,.0f}" if number.is_integer() else f"{number:,.1f}"
        return f"{shown} day" if number == 1 else f"{shown} days"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"
