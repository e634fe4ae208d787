"""Treatment plans (versioned), revisions, signatures, reviews, medications, drug screens, CM."""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ColumnElement,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from clinic.core.models import Base, TimestampMixin, UTCDateTime, enum_column
from clinic.core.time import utcnow


class PlanStatus(enum.StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    CLOSED = "closed"


class SignerRole(enum.StrEnum):
    CLINICIAN = "clinician"
    CLIENT = "client"
    SUPERVISOR = "supervisor"


class ReviewOutcome(enum.StrEnum):
    CONTINUE = "continue"
    REVISE = "revise"
    CLOSE = "close"


class Plan(TimestampMixin, Base):
    """A client's treatment plan. Its content is the problem tree of the current revision."""

    __tablename__ = "plans"
    __table_args__ = (
        Index("ix_plans_client_id", "client_id"),
        Index("ix_plans_site_next_review", "site_id", "status", "next_review_on"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"))
    episode_id: Mapped[int | None] = mapped_column(ForeignKey("episodes.id", ondelete="SET NULL"))
    status: Mapped[PlanStatus] = enum_column(PlanStatus, name="plan_status", length=16)
    #: Number of the current revision (1 for a new plan).
    revision: Mapped[int] = mapped_column(Integer, default=1)
    #: The last revision signed by everyone required: the plan in force while a newer one awaits signatures.
    active_revision: Mapped[int | None] = mapped_column(Integer)
    #: Problems -> goals -> objectives -> interventions, each node with a stable ``id``.
    content: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    #: Days between reviews; null means the default (30 for the first review, 90 after).
    review_interval_days: Mapped[int | None] = mapped_column(Integer)
    next_review_on: Mapped[date | None] = mapped_column(Date)
    last_reviewed_on: Mapped[date | None] = mapped_column(Date)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    #: Optimistic concurrency: every UPDATE checks and bumps it; the ETag is derived from it.
    version_id: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__ = {"version_id_col": version_id}  # noqa: RUF012 - SQLAlchemy's declarative API


class PlanRevision(Base):
    """A plan as it stood at one revision, with who made it and when."""

    __tablename__ = "plan_revisions"
    __table_args__ = (UniqueConstraint("plan_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    content: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    status: Mapped[PlanStatus] = enum_column(PlanStatus, name="plan_revision_status", length=16)
    review_interval_days: Mapped[int | None] = mapped_column(Integer)
    episode_id: Mapped[int | None] = mapped_column(Integer)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: What made this revision: "created", "edited", "signed", "activated", "reviewed", "closed".
    reason: Mapped[str] = mapped_column(String(32))


class PlanSignature(Base):
    __tablename__ = "plan_signatures"
    __table_args__ = (UniqueConstraint("plan_id", "revision", "role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"))
    #: The content revision signed.
    revision: Mapped[int] = mapped_column(Integer)
    role: Mapped[SignerRole] = enum_column(SignerRole, name="signer_role", length=16)
    #: The staff member who signed, or who witnessed the client's signature.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    signer_name: Mapped[str] = mapped_column(String(200))
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PlanReview(Base):
    __tablename__ = "plan_reviews"
    __table_args__ = (Index("ix_plan_reviews_plan_id", "plan_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"))
    reviewed_on: Mapped[date] = mapped_column(Date)
    note: Mapped[str] = mapped_column(Text)
    outcome: Mapped[ReviewOutcome] = enum_column(ReviewOutcome, name="review_outcome", length=16)
    #: Whether the review happened after its due date.
    was_overdue: Mapped[bool] = mapped_column(Boolean, default=False)
    due_on: Mapped[date | None] = mapped_column(Date)
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class MedicationName(enum.StrEnum):
    METHADONE = "methadone"
    BUPRENORPHINE = "buprenorphine"
    BUPRENORPHINE_NALOXONE = "buprenorphine_naloxone"
    NALTREXONE_ORAL = "naltrexone_oral"
    NALTREXONE_XR = "naltrexone_xr"


OPIOID_AGONISTS = frozenset(
    {MedicationName.METHADONE, MedicationName.BUPRENORPHINE, MedicationName.BUPRENORPHINE_NALOXONE}
)
NALTREXONE = frozenset({MedicationName.NALTREXONE_ORAL, MedicationName.NALTREXONE_XR})


class MedicationPhase(enum.StrEnum):
    INDUCTION = "induction"
    STABILIZATION = "stabilization"
    MAINTENANCE = "maintenance"
    TAPER = "taper"


class Medication(TimestampMixin, Base):
    """A MAT medication order: current dose here, every change in MedicationDoseChange."""

    __tablename__ = "medications"
    __table_args__ = (
        Index("ix_medications_client_id_start_on", "client_id", "start_on"),
        Index("ix_medications_site_id_start_on", "site_id", "start_on"),
        CheckConstraint("end_on IS NULL OR end_on >= start_on", name="end_after_start"),
        CheckConstraint("dose > 0", name="positive_dose"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"))
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"))
    medication: Mapped[MedicationName] = enum_column(MedicationName, name="medication_name")
    dose: Mapped[Decimal] = mapped_column(Numeric(10, 3))
    #: "mg" for tablets, films and injections; "mg/mL" is not used (give the dose in mg).
    unit: Mapped[str] = mapped_column(String(16))
    #: How often, in words: "daily", "twice daily", "every 28 days".
    frequency: Mapped[str] = mapped_column(String(64))
    phase: Mapped[MedicationPhase] = enum_column(MedicationPhase, name="medication_phase", length=16)
    prescriber_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    start_on: Mapped[date] = mapped_column(Date)
    end_on: Mapped[date | None] = mapped_column(Date)
    #: The clinician's reason for the last safety-rule override (each one is in MedicationOverride).
    override_reason: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    #: naltrexone_xr: the day of the latest injection (null: none recorded yet, the start counts).
    last_injection_on: Mapped[date | None] = mapped_column(Date)


class MedicationRule(enum.StrEnum):
    """The medication safety rules, by the code a refusal or an override names."""

    METHADONE_REQUIRES_OTP = "methadone_requires_otp"
    INDUCTION_REQUIRES_COWS = "induction_requires_cows"
    DOSE_ABOVE_LIMIT = "dose_above_limit"
    METHADONE_FIRST_DOSE = "methadone_first_dose"
    AGONIST_ANTAGONIST_CONFLICT = "agonist_antagonist_conflict"
    NALTREXONE_WASHOUT = "naltrexone_washout"
    DUPLICATE_AGONIST = "duplicate_agonist"


class MedicationOverride(Base):
    """One safety rule a clinician overrode on an order or a change of it, with the reason."""

    __tablename__ = "medication_overrides"
    __table_args__ = (Index("ix_medication_overrides_medication_id", "medication_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    medication_id: Mapped[int] = mapped_column(ForeignKey("medications.id", ondelete="CASCADE"))
    rule: Mapped[MedicationRule] = enum_column(MedicationRule, name="medication_override_rule", length=40)
    reason: Mapped[str] = mapped_column(Text)
    by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class MedicationDoseChange(Base):
    """One entry of an order's dose history; the entry in force on a day is the latest one
    effective on or before it that was not entered in error."""

    __tablename__ = "medication_dose_changes"
    __table_args__ = (Index("ix_medication_dose_changes_medication_id", "medication_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    medication_id: Mapped[int] = mapped_column(ForeignKey("medications.id", ondelete="CASCADE"))
    effective_on: Mapped[date] = mapped_column(Date)
    dose: Mapped[Decimal] = mapped_column(Numeric(10, 3))
    unit: Mapped[str] = mapped_column(String(16))
    frequency: Mapped[str] = mapped_column(String(64))
    phase: Mapped[MedicationPhase] = enum_column(MedicationPhase, name="dose_change_phase", length=16)
    reason: Mapped[str | None] = mapped_column(Text)
    changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: Set when the entry was marked entered in error: it stays in the history and no longer counts.
    entered_in_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    entered_in_error_reason: Mapped[str | None] = mapped_column(Text)
    entered_in_error_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class ScreenResult(enum.StrEnum):
    NEGATIVE = "negative"
    POSITIVE = "positive"
    INVALID = "invalid"


class DrugScreen(TimestampMixin, Base):
    """A drug screen; one marked entered in error stays, marked, and counts nowhere (see ``counts``)."""

    __tablename__ = "drug_screens"
    __table_args__ = (
        #: One counted screen per client and collection time: the right result of a screen entered
        #: in error is recorded as a new screen, at the same time if that is when it was collected.
        Index(
            "uq_drug_screens_client_id_collected_at",
            "client_id",
            "collected_at",
            unique=True,
            sqlite_where=text("entered_in_error_at IS NULL"),
            postgresql_where=text("entered_in_error_at IS NULL"),
        ),
        Index("ix_drug_screens_site_id_collected_at", "site_id", "collected_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"))
    #: When the sample was collected, or when the missed screen was scheduled.
    collected_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: Collection was observed by staff.
    observed: Mapped[bool] = mapped_column(Boolean, default=False)
    #: A scheduled screen the client did not give.
    missed: Mapped[bool] = mapped_column(Boolean, default=False)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    #: Set when the screen was marked entered in error: it stays on record and no longer counts
    #: (CM ledger, reports, timeline, medication rules); an incentive it already earned is kept.
    entered_in_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    entered_in_error_reason: Mapped[str | None] = mapped_column(Text)
    entered_in_error_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    @classmethod
    def counts(cls) -> ColumnElement[bool]:
        """The SQL condition of a screen that counts: one not entered in error."""
        return cls.entered_in_error_at.is_(None)


class DrugScreenResult(Base):
    """One substance's result in a screen (rows, so reports count them in SQL)."""

    __tablename__ = "drug_screen_results"
    __table_args__ = (
        UniqueConstraint("screen_id", "substance"),
        Index("ix_drug_screen_results_substance", "substance"),
        #: Covers "which substances were negative in this screen" (the CM ledger) from the index alone.
        Index("ix_drug_screen_results_screen_id_result", "screen_id", "result", "substance"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    screen_id: Mapped[int] = mapped_column(ForeignKey("drug_screens.id", ondelete="CASCADE"))
    #: Lower-case substance or panel name: "fentanyl", "opiates", "buprenorphine", ...
    substance: Mapped[str] = mapped_column(String(40))
    result: Mapped[ScreenResult] = enum_column(ScreenResult, name="screen_result", length=16)


class CMSchedule(enum.StrEnum):
    ESCALATING_VOUCHER = "escalating_voucher"
    PRIZE_DRAW = "prize_draw"


class CMProgram(TimestampMixin, Base):
    """A contingency-management program; its ledger is computed from the client's screens."""

    __tablename__ = "cm_programs"
    __table_args__ = (Index("ix_cm_programs_client_id", "client_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"))
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"))
    target_substances: Mapped[list[str]] = mapped_column(JSON)
    schedule: Mapped[CMSchedule] = enum_column(CMSchedule, name="cm_schedule", length=32)
    #: start_cents, increment_cents, bonus_cents, bonus_every, max_draws (DOMAIN.md defaults filled in).
    params: Mapped[dict[str, int]] = mapped_column(JSON)
    #: Earnings per client per calendar year stop here (cents).
    annual_cap_cents: Mapped[int] = mapped_column(Integer)
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class CMPrize(Base):
    __tablename__ = "cm_prizes"
    __table_args__ = (
        Index("ix_cm_prizes_program_id", "program_id"),
        CheckConstraint("prize_cents >= 0", name="not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("cm_programs.id", ondelete="CASCADE"))
    prize_cents: Mapped[int] = mapped_column(Integer)
    drawn_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class CMKeptIncentive(Base):
    """What a screen entered in error had earned in a CM program, kept: it was handed to the client.

    Written when the screen is marked (the ledger's entry for it, frozen); the ledger then lists it
    at the screen's time, against the annual cap, outside every streak.
    """

    __tablename__ = "cm_kept_incentives"
    __table_args__ = (
        UniqueConstraint("program_id", "drug_screen_id"),
        Index("ix_cm_kept_incentives_drug_screen_id", "drug_screen_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("cm_programs.id", ondelete="CASCADE"))
    drug_screen_id: Mapped[int] = mapped_column(ForeignKey("drug_screens.id", ondelete="CASCADE"))
    #: The screen's collection time: where the entry stands in the ledger.
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: The voucher paid for the screen, after the cap (0 for draws).
    amount_cents: Mapped[int] = mapped_column(Integer)
    #: prize_draw: the draws the screen earned.
    draws: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
