"""FHIR mapping: the client's record (Patient), episodes of care (EpisodeOfCare), disclosure consents (Consent).

Communication consents (to be reminded by SMS or email) are not Part 2 disclosure consents and are
not exported. A per-client Bundle sends only the consent its disclosure is made under
(``Scope.consent_id``); the bulk export sends every disclosure consent of its clients.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from sqlalchemy import select

from clinic.auth.models import Site
from clinic.clients.models import Client, Consent, ConsentKind, Episode, SexAtBirth
from clinic.core.time import utcnow
from clinic.fhir.labels import (
    ACT_CODE,
    BCP47,
    CONSENT_SCOPE,
    IDENTIFIER_TYPE,
    LOINC,
    PARTICIPATION_TYPE,
    US_CORE,
    labelled,
    mrn_system,
    narrative,
    patient_reference,
)
from clinic.fhir.sources import AnySelect, Scope, Source, register

#: Administrative gender (FHIR's required binding) from sex at birth; not recorded: unknown.
GENDER: Final[dict[SexAtBirth | None, str]] = {
    SexAtBirth.FEMALE: "female",
    SexAtBirth.MALE: "male",
    SexAtBirth.INTERSEX: "other",
    SexAtBirth.UNKNOWN: "unknown",
    None: "unknown",
}
#: US Core birth sex (F, M, UNK; a required binding). Intersex has no code there and is not unknown,
#: so it is sent without the extension (``gender`` says ``other``); not recorded or unknown: UNK.
BIRTH_SEX: Final[dict[SexAtBirth | None, str | None]] = {
    SexAtBirth.FEMALE: "F",
    SexAtBirth.MALE: "M",
    SexAtBirth.INTERSEX: None,
    SexAtBirth.UNKNOWN: "UNK",
    None: "UNK",
}
BIRTH_SEX_EXTENSION: Final = US_CORE + "us-core-birthsex"

#: TEDS reasons for discharge (clients.models.Episode.discharge_reason_code), for the narrative.
TEDS_REASONS: Final[dict[int, str]] = {
    1: "treatment completed",
    2: "dropped out of treatment",
    3: "terminated by facility",
    4: "transferred to another program",
    5: "incarcerated",
    6: "death",
    7: "other",
}

#: 42 CFR Part 2, the policy every disclosure consent is given under, and its consent section (2.31).
PART2_POLICY: Final = "https://www.ecfr.gov/current/title-42/chapter-I/subchapter-A/part-2"
PART2_CONSENT_SECTION: Final = PART2_POLICY + "/subpart-C/section-2.31"


# --- Patient -------------------------------------------------------------------------------------


def patient(client: Client) -> dict[str, Any]:
    """A client as a US Core Patient: the MRN, name, birth date, gender, language, contact points."""
    telecom = []
    if client.phone:
        telecom.append({"system": "phone", "value": client.phone, "use": "mobile"})
    if client.email:
        telecom.append({"system": "email", "value": client.email})
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": f"patient-{client.id}",
        "meta": {"profile": [US_CORE + "us-core-patient"]},
        "identifier": [
            {
                "use": "usual",
                "type": {
                    "coding": [{"system": IDENTIFIER_TYPE, "code": "MR", "display": "Medical record number"}],
                    "text": "MRN",
                },
                "system": mrn_system(),
                "value": client.mrn,
            }
        ],
        "name": [{"use": "official", "family": client.last_name, "given": [client.first_name]}],
        "gender": GENDER[client.sex_at_birth],
        "birthDate": client.date_of_birth.isoformat(),
        "communication": [
            {
                "language": {"coding": [{"system": BCP47, "code": client.preferred_language}]},
                "preferred": True,
            }
        ],
    }
    if telecom:
        resource["telecom"] = telecom
    birth_sex = BIRTH_SEX[client.sex_at_birth]
    if birth_sex is not None:
        resource["extension"] = [{"url": BIRTH_SEX_EXTENSION, "valueCode": birth_sex}]
    return labelled(resource)


def _select_clients(scope: Scope) -> AnySelect:
    return (
        select(Client)
        .where(scope.where(client=Client.id, site=Client.site_id, changed=(Client.updated_at,)))
        .order_by(Client.id)
    )


def _clients_to_fhir(client: Client) -> Iterable[dict[str, Any]]:
    yield patient(client)


# --- EpisodeOfCare -------------------------------------------------------------------------------


def episode_of_care(episode: Episode, site_name: str) -> dict[str, Any]:
    """An episode: active while open, finished once discharged; the level of care as its type."""
    edition = f"ASAM Criteria, {episode.asam_edition}{'rd' if episode.asam_edition == '3' else 'th'} edition"
    lines = [f"Admitted on {episode.admitted_on.isoformat()} at ASAM level of care {episode.level_of_care}."]
    if episode.referral_source:
        lines.append(f"Referred by: {episode.referral_source}.")
    if episode.discharged_on is not None:
        reason = TEDS_REASONS.get(episode.discharge_reason_code or 7, "other")
        lines.append(f"Discharged on {episode.discharged_on.isoformat()}: {reason}.")
    period = {"start": episode.admitted_on.isoformat()}
    if episode.discharged_on is not None:
        period["end"] = episode.discharged_on.isoformat()
    return labelled(
        {
            "resourceType": "EpisodeOfCare",
            "id": f"episode-{episode.id}",
            "text": narrative(*lines),
            "status": "active" if episode.is_open else "finished",
            "type": [{"text": f"ASAM level of care {episode.level_of_care} ({edition})"}],
            "patient": patient_reference(episode.client_id),
            "managingOrganization": {"display": site_name},
            "period": period,
        }
    )


def _select_episodes(scope: Scope) -> AnySelect:
    return (
        select(Episode, Site.name)
        .join(Site, Site.id == Episode.site_id)
        .where(scope.where(client=Episode.client_id, site=Episode.site_id, changed=(Episode.updated_at,)))
        .order_by(Episode.client_id, Episode.admitted_on, Episode.id)
    )


def _episodes_to_fhir(row: Any) -> Iterable[dict[str, Any]]:
    episode, site_name = row
    yield episode_of_care(episode, site_name)


# --- Consent -------------------------------------------------------------------------------------


def consent(row: Consent) -> dict[str, Any]:
    """A Part 2 disclosure consent: who may receive what, why, until when; inactive once revoked or expired."""
    today = utcnow().date()
    status = "active" if row.is_active_on(today) else "inactive"
    period = {"start": row.signed_on.isoformat()} if row.signed_on else {}
    if row.expires_on is not None:
        period["end"] = row.expires_on.isoformat()
    lines = [
        f"{row.patient_name or 'The patient'} consents to the disclosure by {row.disclosing_party} "
        f"to {row.recipient} of: {row.information_description}.",
        f"Purpose: {row.purpose}.",
        f"Expires: {row.expires_on.isoformat() if row.expires_on else row.expiry_event}.",
        f"Signed on {row.signed_on.isoformat() if row.signed_on else '(not signed)'} by {row.signature_name}.",
    ]
    if row.revoked_at is not None:
        lines.append(f"Revoked on {row.revoked_at.date().isoformat()}.")
    provision: dict[str, Any] = {
        "type": "permit",
        "actor": [
            {
                "role": {
                    "coding": [{"system": PARTICIPATION_TYPE, "code": "IRCP", "display": "information recipient"}]
                },
                "reference": {"display": row.recipient},
            }
        ],
    }
    if period:
        provision["period"] = period
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "id": f"consent-{row.id}",
        "text": narrative(*lines),
        "status": status,
        "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "patient-privacy", "display": "Privacy Consent"}]},
        "category": [
            {"coding": [{"system": LOINC, "code": "59284-0", "display": "Consent Document"}]},
            {"coding": [{"system": ACT_CODE, "code": "IDSCL", "display": "information disclosure"}]},
        ],
        "patient": patient_reference(row.client_id),
        "performer": [patient_reference(row.client_id)],
        "organization": [{"display": row.disclosing_party}],
        "policy": [{"authority": PART2_POLICY, "uri": PART2_CONSENT_SECTION}],
        "policyRule": {
            "coding": [{"system": ACT_CODE, "code": "42CFRPart2", "display": "42 CFR Part2"}],
            "text": "42 CFR Part 2 (consent requirements: 42 CFR 2.31)",
        },
        "provision": provision,
    }
    if row.signed_on is not None:
        resource["dateTime"] = row.signed_on.isoformat()
    return labelled(resource)


def _select_consents(scope: Scope) -> AnySelect:
    stmt = select(Consent).where(
        Consent.kind == ConsentKind.DISCLOSURE,
        scope.where(client=Consent.client_id, site=Consent.site_id, changed=(Consent.updated_at,)),
    )
    if scope.consent_id is not None:
        stmt = stmt.where(Consent.id == scope.consent_id)
    return stmt.order_by(Consent.client_id, Consent.id)


def _consents_to_fhir(row: Consent) -> Iterable[dict[str, Any]]:
    yield consent(row)


register(Source(name="clients", produces=("Patient",), select=_select_clients, to_fhir=_clients_to_fhir))
register(Source(name="episodes", produces=("EpisodeOfCare",), select=_select_episodes, to_fhir=_episodes_to_fhir))
register(Source(name="consents", produces=("Consent",), select=_select_consents, to_fhir=_consents_to_fhir))
