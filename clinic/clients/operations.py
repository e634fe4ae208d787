"""Clients, episodes of care, consents: registration, search, admission, discharge, consent."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import Any, cast

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError

from clinic.audit.operations import audit, record
from clinic.auth.models import Role, Site, User
from clinic.auth.permissions import Permission, has_permission, read_scoped_page, scoped_select, site_scope
from clinic.clients.identifiers import is_valid_mrn, looks_like_mrn, new_mrn, normalise_mrn
from clinic.clients.models import Channel, Client, ClientStatus, Consent, ConsentKind, Episode
from clinic.clients.names import search_key, search_tokens
from clinic.clients.timeline import TimelineEntry, build_timeline
from clinic.core.errors import abort_problem
from clinic.core.pagination import Page
from clinic.core.phones import try_e164
from clinic.core.signals import (
    admission_assessment,
    contact_details_changed,
    episode_discharged,
    timeline_entries,
    values_from,
)
from clinic.core.time import start_of_day, today, utcnow
from clinic.extensions import db

#: Fields of a client that registration and PATCH may set; everything else is the system's.
DEMOGRAPHIC_FIELDS = (
    "first_name",
    "last_name",
    "date_of_birth",
    "sex_at_birth",
    "phone",
    "email",
    "preferred_language",
    "primary_clinician_id",
)

ASAM_LEVELS_3RD = frozenset(
    {"0.5", "1", "1-OTP", "2.1", "2.5", "3.1", "3.3", "3.5", "3.7", "4", "1-WM", "2-WM", "3.2-WM", "3.7-WM", "4-WM"}
)
ASAM_LEVELS = {"3": ASAM_LEVELS_3RD, "4": ASAM_LEVELS_3RD | {"1.5", "1.7", "2.7"}}
TEDS_REASONS = {
    1: "treatment completed",
    2: "dropped out",
    3: "terminated by facility",
    4: "transferred",
    5: "incarcerated",
    6: "death",
    7: "other",
}


# --- clients -----------------------------------------------------------------------------


def _check_primary_clinician(clinician_id: int | None, site_id: int) -> None:
    if clinician_id is None:
        return
    clinician = db.session.get(User, clinician_id)
    if (
        clinician is None
        or clinician.role is not Role.CLINICIAN
        or not clinician.is_active
        or site_id not in clinician.site_ids
    ):
        abort_problem(
            422,
            "The primary clinician must be an active clinician of the client's site.",
            errors={"primary_clinician_id": ["Not a clinician of this site."]},
        )


def likely_duplicates(
    *,
    site_id: int,
    first_name: str,
    last_name: str,
    date_of_birth: date,
    phone: str | None,
    exclude_id: int | None = None,
) -> Sequence[Client]:
    """Clients at the site with the same normalised name and birth date, or the same phone."""
    same_person = and_(
        Client.search_first == search_key(first_name),
        Client.search_last == search_key(last_name),
        Client.date_of_birth == date_of_birth,
    )
    match = or_(same_person, Client.phone == phone) if phone else same_person
    stmt = select(Client).where(Client.site_id == site_id, match).order_by(Client.id).limit(10)
    if exclude_id is not None:
        stmt = stmt.where(Client.id != exclude_id)
    return db.session.scalars(stmt).all()


def duplicate_candidate(client: Client) -> dict[str, Any]:
    """What a user needs to tell a likely duplicate apart: who, born when, where, and how far along."""
    return {
        "id": client.id,
        "mrn": client.mrn,
        "first_name": client.first_name,
        "last_name": client.last_name,
        "date_of_birth": client.date_of_birth.isoformat(),
        "site_id": client.site_id,
        "status": client.status.value,
    }


def _refuse_duplicates(candidates: Sequence[Client], *, actor: User | None = None) -> None:
    """409 listing the likely duplicates the caller may see (those of the caller's sites).

    Showing them is a read of their records: each is audited (``client.read``, ``via:
    duplicate-check``), and the event is kept when the refused request rolls back.
    """
    if actor is not None:
        scope = site_scope(actor)
        candidates = [c for c in candidates if c.site_id in scope]
    if candidates:
        for candidate in candidates:
            audit("read", candidate, details={"via": "duplicate-check"}, even_if_rolled_back=True)
        abort_problem(
            409,
            "This looks like a client who is already registered; "
            "check the candidates, or retry with allow_duplicate=true.",
            problem="likely-duplicate",
            extra={"candidates": [duplicate_candidate(c) for c in candidates]},
        )


def register_client(
    *,
    actor: User,
    site_id: int,
    first_name: str,
    last_name: str,
    date_of_birth: date,
    sex_at_birth: Any = None,
    phone: str | None = None,
    email: str | None = None,
    preferred_language: str | None = None,
    primary_clinician_id: int | None = None,
    allow_duplicate: bool = False,
) -> Client:
    """Register a prospective client with a new MRN, refusing likely duplicates unless allowed."""
    _check_primary_clinician(primary_clinician_id, site_id)
    if not allow_duplicate:
        _refuse_duplicates(
            likely_duplicates(
                site_id=site_id, first_name=first_name, last_name=last_name, date_of_birth=date_of_birth, phone=phone
            ),
            actor=actor,
        )
    client = Client(
        site_id=site_id,
        first_name=first_name.strip(),
        last_name=last_name.strip(),
        search_first=search_key(first_name),
        search_last=search_key(last_name),
        date_of_birth=date_of_birth,
        sex_at_birth=sex_at_birth,
        phone=phone,
        email=email.lower() if email else None,
        preferred_language=preferred_language or "en",
        primary_clinician_id=primary_clinician_id,
        status=ClientStatus.PROSPECTIVE,
        created_by_id=actor.id,
    )
    _insert_with_new_mrn(client)
    audit("create", client)
    return client


def _insert_with_new_mrn(client: Client, attempts: int = 5) -> None:
    for _ in range(attempts):
        client.mrn = new_mrn()
        try:
            with db.session.begin_nested():
                db.session.add(client)
                db.session.flush()
            return
        except IntegrityError:
            continue  # an MRN collision (1 in millions); draw again
    abort_problem(503, "Could not assign a medical record number; try again.")


def update_client(client: Client, changes: dict[str, Any], *, allow_duplicate: bool = False) -> Client:
    """Change demographics; the MRN, site and audit fields are never writable."""
    unknown = set(changes) - set(DEMOGRAPHIC_FIELDS)
    if unknown:
        raise ValueError(f"not client demographics: {sorted(unknown)}")
    if "primary_clinician_id" in changes:
        _check_primary_clinician(changes["primary_clinician_id"], client.site_id)
    identity_changed = {"first_name", "last_name", "date_of_birth", "phone"} & set(changes)
    if identity_changed and not allow_duplicate:
        _refuse_duplicates(
            likely_duplicates(
                site_id=client.site_id,
                first_name=changes.get("first_name", client.first_name),
                last_name=changes.get("last_name", client.last_name),
                date_of_birth=changes.get("date_of_birth", client.date_of_birth),
                phone=changes.get("phone"),
                exclude_id=client.id,
            )
        )
    for name, value in changes.items():
        cleaned = value
        if isinstance(value, str) and name in {"first_name", "last_name"}:
            cleaned = value.strip()
        if name == "email" and value:
            cleaned = value.lower()
        setattr(client, name, cleaned)
    client.search_first = search_key(client.first_name)
    client.search_last = search_key(client.last_name)
    db.session.flush()
    audit("update", client, details={"fields": sorted(changes)})
    if {"phone", "email"} & set(changes):
        contact_details_changed.send(client.id)
    return client


def search_clients(
    user: User,
    *,
    q: str | None = None,
    site_id: int | None = None,
    clinician_id: int | None = None,
    status: ClientStatus | None = None,
    limit: int,
    cursor: str | None,
) -> Page[Client]:
    """Clients in the caller's sites, alphabetical; ``q`` is a name prefix, an MRN or a phone."""
    stmt = scoped_select(Client, user)
    if site_id is not None:
        stmt = stmt.where(Client.site_id == site_id)
    if clinician_id is not None:
        stmt = stmt.where(Client.primary_clinician_id == clinician_id)
    if status is not None:
        stmt = stmt.where(Client.status == status)
    alternatives = _query_alternatives(q) if q else []
    if len(alternatives) == 1:
        stmt = stmt.where(alternatives[0])
    return read_scoped_page(
        stmt,
        keys=[Client.search_last, Client.search_first, Client.id],
        limit=limit,
        cursor=cursor,
        via="search",
        any_of=alternatives if len(alternatives) > 1 else (),
    )


def _query_alternatives(q: str) -> list[Any]:
    """What ``q`` matches, as conditions any one of which a client must meet.

    A name matches in more than one way (a last-name prefix, or a first-name prefix; "first last"
    or "last first"): each way is one condition, which an index of its own serves.
    """
    if looks_like_mrn(q):
        if not is_valid_mrn(q):
            abort_problem(
                422,
                "That MRN's check digit is wrong; it was probably mistyped.",
                errors={"q": ["Not a valid MRN (check digit mismatch)."]},
            )
        return [Client.mrn == normalise_mrn(q)]
    digits = sum(ch.isdigit() for ch in q)
    if digits >= 7:
        phone = try_e164(q)
        if phone is None:
            abort_problem(422, "Not a name, MRN or phone number.", errors={"q": ["Not a valid phone number."]})
        return [Client.phone == phone]
    tokens = search_tokens(q)
    if not tokens:
        abort_problem(422, "Search for a name, MRN or phone number.", errors={"q": ["Nothing to search for."]})
    if len(tokens) == 1:
        prefix = tokens[0] + "%"
        return [Client.search_last.like(prefix), Client.search_first.like(prefix)]
    first, rest = tokens[0] + "%", " ".join(tokens[1:]) + "%"
    last_first, rest_first = " ".join(tokens[:-1]) + "%", tokens[-1] + "%"
    return [
        and_(Client.search_first.like(first), Client.search_last.like(rest)),
        and_(Client.search_last.like(last_first), Client.search_first.like(rest_first)),
    ]


# --- episodes ----------------------------------------------------------------------------


def admit(
    client: Client,
    *,
    actor: User,
    admitted_on: date,
    level_of_care: str | None = None,
    asam_edition: str | None = None,
    referral_source: str | None = None,
    assessment_id: int | None = None,
) -> Episode:
    """Open an episode of care; one open episode at a time. The client becomes active.

    With ``assessment_id`` the level of care and edition come from that signed ASAM assessment.
    """
    if assessment_id is not None:
        answers = values_from(admission_assessment, client, assessment_id=assessment_id)
        if not answers:
            raise RuntimeError("no receiver answers admission_assessment: is clinic.assessments connected?")
        chosen, edition = answers[0]
        if level_of_care is not None and level_of_care != chosen:
            abort_problem(
                422,
                "The level of care differs from the ASAM assessment's.",
                errors={"level_of_care": [f"The assessment chose {chosen}; leave this out or match it."]},
            )
        level_of_care, asam_edition = chosen, edition
    asam_edition = asam_edition or "3"
    if level_of_care is None:
        abort_problem(
            422,
            "Give the level of care, or a signed ASAM assessment that chose it.",
            errors={"level_of_care": ["Missing data for required field."]},
        )
    if level_of_care not in ASAM_LEVELS[asam_edition]:
        abort_problem(
            422,
            "Unknown ASAM level of care.",
            errors={"level_of_care": [f"Not an ASAM level of the edition {asam_edition} criteria."]},
        )
    if admitted_on > today() + timedelta(days=1):
        abort_problem(
            422, "An admission cannot be dated in the future.", errors={"admitted_on": ["Must not be in the future."]}
        )
    open_episode = db.session.scalars(
        select(Episode).where(Episode.client_id == client.id, Episode.discharged_on.is_(None))
    ).first()
    if open_episode is not None:
        abort_problem(
            409,
            "The client already has an open episode of care; discharge it first.",
            problem="episode-open",
            extra={"open_episode_id": open_episode.id},
        )
    latest_discharge = db.session.scalars(
        select(Episode.discharged_on).where(Episode.client_id == client.id).order_by(Episode.discharged_on.desc())
    ).first()
    if latest_discharge is not None and admitted_on < latest_discharge:
        abort_problem(
            422,
            "A readmission cannot start before the previous discharge.",
            errors={"admitted_on": [f"Must be on or after {latest_discharge.isoformat()}."]},
        )
    episode = Episode(
        client_id=client.id,
        site_id=client.site_id,
        admitted_on=admitted_on,
        level_of_care=level_of_care,
        asam_edition=asam_edition,
        referral_source=referral_source,
        assessment_id=assessment_id,
        admitted_by_id=actor.id,
    )
    db.session.add(episode)
    client.status = ClientStatus.ACTIVE
    db.session.flush()
    audit("admit", episode, details={"level_of_care": level_of_care})
    return episode


def discharge(
    episode: Episode, *, actor: User, discharged_on: date, reason_code: int, note: str | None = None
) -> Episode:
    """Close an episode with a TEDS reason; the client becomes discharged."""
    if not episode.is_open:
        abort_problem(409, "This episode is already discharged.", problem="episode-closed")
    if discharged_on < episode.admitted_on:
        abort_problem(
            422,
            "Discharge cannot come before admission.",
            errors={"discharged_on": [f"Must be on or after {episode.admitted_on.isoformat()}."]},
        )
    if discharged_on > today() + timedelta(days=1):
        abort_problem(
            422, "A discharge cannot be dated in the future.", errors={"discharged_on": ["Must not be in the future."]}
        )
    episode.discharged_on = discharged_on
    episode.discharge_reason_code = reason_code
    episode.discharge_note = note
    episode.discharged_by_id = actor.id
    client = db.session.get_one(Client, episode.client_id)
    client.status = ClientStatus.DISCHARGED
    db.session.flush()
    audit("discharge", episode, details={"reason_code": reason_code})
    episode_discharged.send(episode, actor=actor, reason_code=reason_code)
    return episode


def list_episodes(client: Client) -> Sequence[Episode]:
    record("episode.read", resource="episode", client_id=client.id, details={"via": "list"})
    return db.session.scalars(
        select(Episode).where(Episode.client_id == client.id).order_by(Episode.admitted_on.desc(), Episode.id.desc())
    ).all()


# --- consents ----------------------------------------------------------------------------

DISCLOSURE_ELEMENTS = (
    "recipient",
    "purpose",
    "information_description",
    "disclosing_party",
    "signed_on",
    "signature_name",
    "revocation_acknowledged",
)


def record_consent(client: Client, *, actor: User, kind: ConsentKind, fields: dict[str, Any]) -> Consent:
    """Record a communication consent, or a disclosure consent holding every 42 CFR 2.31 element."""
    if kind is ConsentKind.DISCLOSURE:
        if not has_permission(actor, Permission.CLINICAL_WRITE):
            abort_problem(403, "Disclosure consents are recorded by clinicians.")
        missing = missing_disclosure_elements(fields)
        if missing:
            abort_problem(
                422,
                "A disclosure consent needs every element of 42 CFR 2.31.",
                errors={name: [message] for name, message in missing.items()},
            )
        consent = Consent(
            client_id=client.id,
            site_id=client.site_id,
            kind=kind,
            patient_name=f"{client.first_name} {client.last_name}",
            recipient=fields["recipient"].strip(),
            purpose=fields["purpose"].strip(),
            information_description=fields["information_description"],
            disclosing_party=fields["disclosing_party"],
            expires_on=fields.get("expires_on"),
            expiry_event=fields.get("expiry_event"),
            signed_on=fields["signed_on"],
            signature_name=fields["signature_name"],
            revocation_acknowledged=True,
            created_by_id=actor.id,
        )
    else:
        missing_fields = [name for name in ("channel", "granted_on", "evidence") if fields.get(name) in (None, "")]
        if missing_fields:
            abort_problem(
                422,
                "A communication consent needs a channel, a date and evidence.",
                errors={name: ["Missing data for required field."] for name in missing_fields},
            )
        consent = Consent(
            client_id=client.id,
            site_id=client.site_id,
            kind=kind,
            channel=fields["channel"],
            granted_on=fields["granted_on"],
            evidence=fields["evidence"],
            created_by_id=actor.id,
        )
    db.session.add(consent)
    db.session.flush()
    audit("create", consent, details={"kind": kind.value})
    if kind is ConsentKind.COMMUNICATION:
        contact_details_changed.send(client.id)
    return consent


def missing_disclosure_elements(fields: dict[str, Any]) -> dict[str, str]:
    missing = {
        name: "Required by 42 CFR 2.31." for name in DISCLOSURE_ELEMENTS if fields.get(name) in (None, "", False)
    }
    if fields.get("revocation_acknowledged") is False:
        missing["revocation_acknowledged"] = "The client must be told the consent can be revoked, and how."
    if not fields.get("expires_on") and not fields.get("expiry_event"):
        missing["expires_on"] = "Give an expiry date (expires_on) or an expiry event (expiry_event)."
    return missing


def visible_consents(client: Client, user: User) -> Sequence[Consent]:
    """A client's consents; communication consents only for roles without clinical access."""
    stmt = select(Consent).where(Consent.client_id == client.id).order_by(Consent.id)
    if not has_permission(user, Permission.CLINICAL_READ):
        stmt = stmt.where(Consent.kind == ConsentKind.COMMUNICATION)
    record("consent.read", resource="consent", client_id=client.id, details={"via": "list"})
    return db.session.scalars(stmt).all()


def get_consent_or_404(consent_id: int, user: User) -> Consent:
    stmt = scoped_select(Consent, user).where(Consent.id == consent_id)
    consent = db.session.scalars(stmt).first()
    if consent is None or (
        consent.kind is ConsentKind.DISCLOSURE and not has_permission(user, Permission.CLINICAL_READ)
    ):
        abort_problem(404, "Not found.")
    return cast(Consent, consent)


def revoke_consent(consent: Consent, *, actor: User) -> Consent:
    """Revoke a consent; it stops applying from the next request on."""
    if consent.kind is ConsentKind.DISCLOSURE and not has_permission(actor, Permission.CLINICAL_WRITE):
        abort_problem(403, "Disclosure consents are revoked by clinicians.")
    if consent.revoked_at is None:
        consent.revoked_at = utcnow()
        consent.revoked_by_id = actor.id
        db.session.flush()
    audit("revoke", consent)
    if consent.kind is ConsentKind.COMMUNICATION:
        contact_details_changed.send(consent.client_id)
    return consent


def active_channels(client_id: int, *, on: date | None = None) -> set[Channel]:
    """Channels on which the client has an active communication consent."""
    day = on or today()
    consents = db.session.scalars(
        select(Consent).where(Consent.client_id == client_id, Consent.kind == ConsentKind.COMMUNICATION)
    ).all()
    return channels_in_force(consents, day)


def channels_in_force(consents: Iterable[Consent], day: date) -> set[Channel]:
    """Channels of these communication consents that are in force on ``day``."""
    return {c.channel for c in consents if c.channel is not None and c.is_active_on(day)}


# --- timeline ----------------------------------------------------------------------------


def _site_zone(site_id: int) -> str:
    site = db.session.get(Site, site_id)
    return site.timezone if site is not None else "UTC"


@timeline_entries.connect
def _episode_entries(client_id: int) -> Iterable[TimelineEntry]:
    episodes = db.session.scalars(select(Episode).where(Episode.client_id == client_id)).all()
    for episode in episodes:
        zone = _site_zone(episode.site_id)
        yield TimelineEntry(
            start_of_day(episode.admitted_on, zone),
            "episode.admitted",
            episode.id,
            f"Admitted at ASAM level {episode.level_of_care}",
            clinical=True,
        )
        if episode.discharged_on is not None:
            reason = TEDS_REASONS.get(episode.discharge_reason_code or 7, "other")
            yield TimelineEntry(
                start_of_day(episode.discharged_on, zone),
                "episode.discharged",
                episode.id,
                f"Discharged: {reason} ({episode.length_of_stay_days} days)",
                clinical=True,
            )


@timeline_entries.connect
def _consent_entries(client_id: int) -> Iterable[TimelineEntry]:
    consents = db.session.scalars(select(Consent).where(Consent.client_id == client_id)).all()
    for consent in consents:
        clinical = consent.kind is ConsentKind.DISCLOSURE
        what = (
            f"Consent to {consent.channel.value if consent.channel else ''} contact"
            if not clinical
            else (f"Consent to disclose to {consent.recipient}")
        )
        yield TimelineEntry(consent.created_at, "consent.recorded", consent.id, what.replace("  ", " "), clinical)
        if consent.revoked_at is not None:
            yield TimelineEntry(consent.revoked_at, "consent.revoked", consent.id, "Consent revoked", clinical)


def client_timeline(client: Client, user: User) -> list[TimelineEntry]:
    entries = build_timeline(client.id, include_clinical=has_permission(user, Permission.CLINICAL_READ))
    audit("timeline", client)
    return entries


def scope_allows_site(user: User, site_id: int) -> bool:
    return site_id in site_scope(user)
