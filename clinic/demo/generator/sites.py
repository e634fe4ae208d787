"""The demo sites and how many staff each gets for its share of the clients."""

from __future__ import annotations

from dataclasses import dataclass

#: Clients per clinician and per intake coordinator, for sizing the staff of a site.
CLIENTS_PER_CLINICIAN = 400
CLIENTS_PER_INTAKE = 3000


@dataclass(frozen=True)
class SiteSpec:
    name: str
    display_name: str
    timezone: str
    is_otp: bool
    requires_supervisor_signature: bool
    #: Relative share of the clients.
    weight: int


SITES = (
    SiteSpec("Riverside Recovery Center", "Riverside Health", "America/New_York", True, False, 5),
    SiteSpec("Lakeview Outpatient Clinic", "Lakeview Health", "America/Chicago", False, True, 3),
    SiteSpec("Mesa Treatment Services", "Mesa Wellness", "America/Denver", True, False, 3),
    SiteSpec("Harbor Counseling", "Harbor Health Partners", "America/Los_Angeles", False, False, 2),
    SiteSpec("Pinecrest Medical Group", "Pinecrest Medical", "America/Phoenix", True, True, 2),
)


def site_count(clients: int) -> int:
    """Two sites for a small demo, one per 20,000 clients up to all five."""
    return max(2, min(len(SITES), -(-clients // 20_000)))


@dataclass(frozen=True)
class SiteStaff:
    """A seeded site and the ids of its staff, as the loader created them."""

    site_id: int
    spec: SiteSpec
    clinician_ids: tuple[int, ...]
    intake_ids: tuple[int, ...]
    supervisor_id: int
    #: The clinicians' names, in the order of ``clinician_ids`` (the dosing record keeps initials).
    clinician_names: tuple[str, ...] = ()
