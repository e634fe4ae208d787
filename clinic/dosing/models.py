"""The OTP dosing record (21 CFR 1304.24) and the clinician's take-home reviews (42 CFR 8.12(i))."""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, Date, ForeignKey, Index, Integer, Numeric, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from clinic.core.models import Base, TimestampMixin, UTCDateTime, enum_column
from clinic.core.time import utcnow


class DoseKind(enum.StrEnum):
    #: Consumed at the program, in front of the dispenser.
    OBSERVED = "observed"
    #: Handed over to be taken at home, one daily dose per day after the visit.
    TAKE_HOME = "take_home"


class Dose(TimestampMixin, Base):
    """One entry of the dispensing record: a dose consumed at the program, or a take-home supply.

    A correction never deletes: the entry is voided (``voided_at`` and ``void_reason``) and a new
    one written. A voided entry stays in the record and counts nowhere.
    """

    __tablename__ = "doses"
    __table_args__ = (
        Index("ix_doses_client_id_given_on", "client_id", "given_on"),
        Index("ix_doses_site_id_given_on", "site_id", "given_on"),
        Index("ix_doses_medication_id_given_on", "medication_id", "given_on"),
        # The lot in use at the counter: a site's newest dose of one substance, read backwards.
        Index("ix_doses_site_id_substance_given_on", "site_id", "substance", "given_on"),
        # One full observed dose of an order per local day (a second one is a 409, even in a race).
        Index(
            "uq_doses_one_full_observed_dose_per_day",
            "medication_id",
            "given_on",
            unique=True,
            sqlite_where=text("kind = 'observed' AND NOT is_split AND voided_at IS NULL"),
            postgresql_where=text("kind = 'observed' AND NOT is_split AND voided_at IS NULL"),
        ),
        CheckConstraint("amount_mg > 0", name="positive_amount"),
        CheckConstraint(
            "(kind = 'observed' AND take_home_days = 0) OR (kind = 'take_home' AND take_home_days >= 1)",
            name="take_home_days_by_kind",
        ),
        CheckConstraint("covered_until >= covered_from", name="covered_in_order"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    #: The OTP that dispensed it (the client's site when it was given).
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"))
    #: The order the dose was given under.
    medication_id: Mapped[int] = mapped_column(ForeignKey("medications.id", ondelete="CASCADE"))
    kind: Mapped[DoseKind] = enum_column(DoseKind, name="dose_kind", length=16)
    #: Milligrams of one daily dose (a take-home hands over ``take_home_days`` of them).
    amount_mg: Mapped[Decimal] = mapped_column(Numeric(10, 3))
    #: Daily doses handed over to take home; 0 for an observed dose.
    take_home_days: Mapped[int] = mapped_column(Integer, default=0)
    #: When the dose was administered (observed) or the supply dispensed (take-home).
    given_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: The site's local day of ``given_at``: the day of the dispensing record.
    given_on: Mapped[date] = mapped_column(Date)
    #: First and last local day the entry doses the client: the day itself for an observed dose
    #: (a naltrexone XR injection: the days its coverage lasts), the ``take_home_days`` days after
    #: the visit for a take-home supply.
    covered_from: Mapped[date] = mapped_column(Date)
    covered_until: Mapped[date] = mapped_column(Date)
    #: One part of the day's ordered dose (the parts of a day may not exceed it).
    is_split: Mapped[bool] = mapped_column(Boolean, default=False)
    lot_number: Mapped[str] = mapped_column(String(64))
    #: As dispensed, for the record: the substance (the order's medication), its strength, its form.
    substance: Mapped[str] = mapped_column(String(40))
    strength: Mapped[str] = mapped_column(String(60))
    dosage_form: Mapped[str] = mapped_column(String(60))
    note: Mapped[str | None] = mapped_column(Text)
    dispenser_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    #: The dispenser's initials as they were when the dose was given (the record keeps them).
    dispenser_initials: Mapped[str] = mapped_column(String(8))
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    voided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    void_reason: Mapped[str | None] = mapped_column(Text)

    @property
    def is_voided(self) -> bool:
        return self.voided_at is not None


class TakeHomeReview(Base):
    """A clinician's review of the take-home criteria of 42 CFR 8.12(i)(2); the latest one stands."""

    __tablename__ = "take_home_reviews"
    __table_args__ = (Index("ix_take_home_reviews_client_id_decided_at", "client_id", "decided_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"))
    #: The episode open when the review was recorded.
    episode_id: Mapped[int | None] = mapped_column(ForeignKey("episodes.id", ondelete="SET NULL"))
    #: Each criterion's name -> true, false or null (not assessed); ``other_considerations`` may
    #: also hold the clinician's words. Any false stops take-homes until a new review.
    criteria: Mapped[dict[str, Any]] = mapped_column(JSON)
    note: Mapped[str] = mapped_column(Text)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DoseRun(Base):
    """One run of an order's dose coverage: a maximal stretch of days its counted entries cover.

    The runs of an order are the union of ``covered_from``..``covered_until`` of its entries that
    are not voided, merged where they overlap or touch (one ends the day before the next begins).
    Derived from ``doses`` and kept in step with it (:mod:`clinic.dosing.runs`): never written by
    hand. The MAT continuity report reads these instead of every entry.
    """

    __tablename__ = "dose_runs"
    __table_args__ = (Index("ix_dose_runs_medication_id_covered_from", "medication_id", "covered_from"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    medication_id: Mapped[int] = mapped_column(ForeignKey("medications.id", ondelete="CASCADE"))
    #: The run's first entry, in (``covered_from``, id) order: what orders two runs that begin the same day.
    first_dose_id: Mapped[int] = mapped_column(Integer)
    covered_from: Mapped[date] = mapped_column(Date)
    covered_until: Mapped[date] = mapped_column(Date)
