"""Clients, their episodes of care, their consents and the disclosures made under them."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import Boolean, CheckConstraint, Date, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from clinic.core.models import Base, TimestampMixin, UTCDateTime, enum_column
from clinic.core.time import utcnow

#: Normalised search keys compare byte-wise on PostgreSQL, so one b-tree serves both
#: ``LIKE 'prefix%'`` and ``ORDER BY``.
SearchKey = String(100).with_variant(String(100, collation="C"), "postgresql")


class ClientStatus(enum.StrEnum):
    PROSPECTIVE = "prospective"
    ACTIVE = "active"
    DISCHARGED = "discharged"


class SexAtBirth(enum.StrEnum):
    FEMALE = "female"
    MALE = "male"
    INTERSEX = "intersex"
    UNKNOWN = "unknown"


class Client(TimestampMixin, Base):
    __tablename__ = "clients"
    __table_args__ = (
        Index("ix_clients_search_last", "search_last", "search_first", "id"),
        Index("ix_clients_search_first", "search_first", "search_last", "id"),
        Index("ix_clients_site_id_date_of_birth", "site_id", "date_of_birth"),
        Index("ix_clients_phone", "phone"),
        Index("ix_clients_primary_clinician_id", "primary_clinician_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"))
    #: Medical record number: 7 random digits and a Damm check digit, assigned by clinic.
    mrn: Mapped[str] = mapped_column(String(8), unique=True)
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    #: Lower-case, accent-free forms of the names, for prefix search and duplicate detection.
    search_first: Mapped[str] = mapped_column(SearchKey)
    search_last: Mapped[str] = mapped_column(SearchKey)
    date_of_birth: Mapped[date] = mapped_column(Date)
    sex_at_birth: Mapped[SexAtBirth | None] = enum_column(SexAtBirth, name="sex_at_birth", length=16, nullable=True)
    #: E.164.
    phone: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(254))
    #: BCP 47 language tag for messages to the client, e.g. "en", "es".
    preferred_language: Mapped[str] = mapped_column(String(16), default="en")
    primary_clinician_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    status: Mapped[ClientStatus] = enum_column(ClientStatus, name="client_status", length=16)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


#: TEDS reason for discharge "death".
TEDS_DEATH = 6


class Episode(TimestampMixin, Base):
    """An episode of care: from admission at an ASAM level to discharge."""

    __tablename__ = "episodes"
    __table_args__ = (
        # At most one open episode per client, enforced by the database as well.
        Index(
            "uq_episodes_one_open_per_client",
            "client_id",
            unique=True,
            sqlite_where=text("discharged_on IS NULL"),
            postgresql_where=text("discharged_on IS NULL"),
        ),
        Index("ix_episodes_client_id_admitted_on", "client_id", "admitted_on"),
        Index("ix_episodes_site_id_admitted_on", "site_id", "admitted_on"),
        CheckConstraint("discharge_reason_code BETWEEN 1 AND 7", name="teds_reason"),
        CheckConstraint("discharged_on IS NULL OR discharged_on >= admitted_on", name="discharge_after_admission"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    #: The client's site, copied so episodes are scoped without a join.
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"))
    admitted_on: Mapped[date] = mapped_column(Date)
    #: ASAM level of care code, e.g. "1", "1-OTP", "2.1", "3.7-WM".
    level_of_care: Mapped[str] = mapped_column(String(16))
    #: ASAM Criteria edition the level belongs to: "3" or "4".
    asam_edition: Mapped[str] = mapped_column(String(1))
    referral_source: Mapped[str | None] = mapped_column(String(200))
    #: The signed ASAM assessment that set the level of care, when there is one.
    assessment_id: Mapped[int | None] = mapped_column(Integer)
    discharged_on: Mapped[date | None] = mapped_column(Date)
    #: TEDS reason for discharge: 1 completed, 2 dropped out, 3 terminated by facility,
    #: 4 transferred, 5 incarcerated, 6 death, 7 other.
    discharge_reason_code: Mapped[int | None] = mapped_column(Integer)
    discharge_note: Mapped[str | None] = mapped_column(Text)
    admitted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    discharged_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    @property
    def length_of_stay_days(self) -> int | None:
        """Discharge date minus admission date, in days; a same-day stay counts as 1."""
        if self.discharged_on is None:
            return None
        return max(1, (self.discharged_on - self.admitted_on).days)

    @property
    def is_open(self) -> bool:
        return self.discharged_on is None


class ConsentKind(enum.StrEnum):
    COMMUNICATION = "communication"
    DISCLOSURE = "disclosure"


class Channel(enum.StrEnum):
    SMS = "sms"
    EMAIL = "email"
    VOICE = "voice"


class Consent(TimestampMixin, Base):
    """A client's consent: to be contacted on a channel, or to a disclosure (42 CFR 2.31)."""

    __tablename__ = "consents"
    __table_args__ = (
        Index("ix_consents_client_id_kind", "client_id", "kind"),
        CheckConstraint("kind <> 'communication' OR channel IS NOT NULL", name="communication_has_channel"),
        CheckConstraint(
            "kind <> 'disclosure' OR (recipient IS NOT NULL AND purpose IS NOT NULL "
            "AND information_description IS NOT NULL AND disclosing_party IS NOT NULL "
            "AND (expires_on IS NOT NULL OR expiry_event IS NOT NULL) AND signed_on IS NOT NULL "
            "AND signature_name IS NOT NULL AND revocation_acknowledged)",
            name="disclosure_has_every_element",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"))
    kind: Mapped[ConsentKind] = enum_column(ConsentKind, name="consent_kind", length=16)
    # Communication consent.
    channel: Mapped[Channel | None] = enum_column(Channel, name="consent_channel", length=8, nullable=True)
    granted_on: Mapped[date | None] = mapped_column(Date)
    #: How consent was obtained, e.g. "signed form scanned to chart", "verbal, witnessed by J. Doe".
    evidence: Mapped[str | None] = mapped_column(Text)
    # Disclosure consent: the elements 42 CFR 2.31 requires.
    #: The patient's name as it stood on the signed form.
    patient_name: Mapped[str | None] = mapped_column(String(200))
    recipient: Mapped[str | None] = mapped_column(String(200))
    purpose: Mapped[str | None] = mapped_column(String(500))
    #: How much and what kind of information may be disclosed.
    information_description: Mapped[str | None] = mapped_column(Text)
    #: Who may disclose (the program, a named clinician).
    disclosing_party: Mapped[str | None] = mapped_column(String(200))
    expires_on: Mapped[date | None] = mapped_column(Date)
    expiry_event: Mapped[str | None] = mapped_column(String(500))
    signed_on: Mapped[date | None] = mapped_column(Date)
    signature_name: Mapped[str | None] = mapped_column(String(200))
    #: The patient was told the consent can be revoked, and how.
    revocation_acknowledged: Mapped[bool] = mapped_column(Boolean, default=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    def is_active_on(self, day: date) -> bool:
        """In force on ``day``: granted or signed by then, not revoked, not expired."""
        if self.revoked_at is not None:
            return False
        start = self.granted_on if self.kind is ConsentKind.COMMUNICATION else self.signed_on
        if start is not None and start > day:
            return False
        return self.expires_on is None or self.expires_on >= day


class Disclosure(Base):
    """One disclosure of a client's records, for the accounting of disclosures (42 CFR 2.24)."""

    __tablename__ = "disclosures"
    __table_args__ = (Index("ix_disclosures_client_id_disclosed_at", "client_id", "disclosed_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"))
    consent_id: Mapped[int] = mapped_column(ForeignKey("consents.id", ondelete="RESTRICT"))
    recipient: Mapped[str] = mapped_column(String(200))
    #: What was disclosed.
    description: Mapped[str] = mapped_column(Text)
    purpose: Mapped[str] = mapped_column(String(500))
    disclosed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
