"""Overdose prevention: naloxone handed to clients, and overdoses reported about them."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import JSON, Boolean, CheckConstraint, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from clinic.core.models import Base, TimestampMixin, UTCDateTime, enum_column


class NaloxoneFormulation(enum.StrEnum):
    NASAL_4MG = "nasal_4mg"
    NASAL_8MG = "nasal_8mg"
    IM_0_4MG = "im_0_4mg"
    OTHER = "other"


class OverdoseSource(enum.StrEnum):
    CLIENT_REPORT = "client_report"
    ED_NOTICE = "ed_notice"
    FAMILY = "family"
    OTHER = "other"


class NaloxoneDispense(TimestampMixin, Base):
    """Naloxone handed to a client (a kit, or a number of doses) on a day."""

    __tablename__ = "naloxone_dispenses"
    __table_args__ = (
        Index("ix_naloxone_dispenses_client_id_dispensed_on", "client_id", "dispensed_on"),
        Index("ix_naloxone_dispenses_site_id_dispensed_on", "site_id", "dispensed_on"),
        CheckConstraint("quantity >= 1", name="quantity_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    #: The client's site when it was dispensed: the site that handed it over.
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"))
    dispensed_on: Mapped[date] = mapped_column(Date)
    formulation: Mapped[NaloxoneFormulation] = enum_column(NaloxoneFormulation, name="naloxone_formulation", length=16)
    #: Units handed over: nasal sprays or syringes (a two-pack kit is 2).
    quantity: Mapped[int] = mapped_column(Integer)
    #: The client (or a companion) was shown how to recognise an overdose and give naloxone.
    education_given: Mapped[bool] = mapped_column(Boolean)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class OverdoseEvent(TimestampMixin, Base):
    """An overdose the client had, as reported by whoever told the program; fatal or not."""

    __tablename__ = "overdose_events"
    __table_args__ = (
        Index("ix_overdose_events_client_id_occurred_on", "client_id", "occurred_on"),
        Index("ix_overdose_events_site_id_occurred_on", "site_id", "occurred_on"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    #: The client's site when it was recorded.
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"))
    occurred_on: Mapped[date] = mapped_column(Date)
    fatal: Mapped[bool] = mapped_column(Boolean)
    #: Naloxone was given during the overdose; None when whoever reported it did not know.
    naloxone_used: Mapped[bool | None] = mapped_column(Boolean)
    #: Lower-case substances involved as reported ("fentanyl", "xylazine", ...), possibly none.
    substances: Mapped[list[str]] = mapped_column(JSON)
    #: Where it happened, in the reporter's words ("home", "street", "shelter", ...).
    setting: Mapped[str | None] = mapped_column(String(120))
    source: Mapped[OverdoseSource] = enum_column(OverdoseSource, name="overdose_source", length=16)
    note: Mapped[str | None] = mapped_column(Text)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    #: A fatal event: when a clinician confirmed the death (and the open episode was discharged).
    death_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    death_confirmed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    #: The episode the confirmation discharged with TEDS reason 6; None when none was open.
    discharged_episode_id: Mapped[int | None] = mapped_column(ForeignKey("episodes.id", ondelete="SET NULL"))
