"""Who the demo clients are: names, local phone numbers, MRNs, where they were referred from."""

from __future__ import annotations

import random

from stdnum import damm

from clinic.demo.generator.sites import SiteStaff

FIRST_NAMES = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
    "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Christopher", "Karen",
    "Charles", "Lisa", "Daniel", "Nancy", "Matthew", "Betty", "Anthony", "Sandra", "Mark", "Ashley",
    "José", "María", "Luis", "Sofía", "Andrés", "Lucía", "Zoë", "Renée", "Chloé", "André",
    "Tyler", "Brittany", "Kyle", "Amber", "Cody", "Crystal", "Dustin", "Heather", "Travis", "Tiffany",
    "DeShawn", "Aaliyah", "Malik", "Imani", "Jamal", "Keisha", "Nguyen", "Mai", "Wei", "Aiyana",
)
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
    "Lee", "Pérez", "Thompson", "White", "Harris", "Sánchez", "Clark", "Ramírez", "Lewis", "Robinson",
    "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Núñez", "Hill", "Flores",
    "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts",
    "O'Brien", "McCarthy", "Kowalski", "Nguyen", "Tran", "Yazzie", "Begay", "Müller", "Dubois", "Van der Berg",
)
#: Area codes per site time zone, so a client's number looks local.
AREA_CODES = {
    "America/New_York": (212, 646, 718, 617, 215),
    "America/Chicago": (312, 773, 214, 612, 414),
    "America/Denver": (303, 720, 505, 801, 406),
    "America/Los_Angeles": (213, 415, 206, 503, 619),
    "America/Phoenix": (602, 480, 520, 623, 928),
}
REFERRAL_SOURCES = ("self", "emergency department", "primary care", "drug court", "family", "hospital", "peer recovery")


def mrn_for(body: int) -> str:
    """An MRN from its 7-digit body: the body and its Damm check digit."""
    text = str(body)
    return text + damm.calc_check_digit(text)


#: A stride coprime with 9,000,000, so ``i * stride mod 9e6`` visits every 7-digit body once.
_MRN_STRIDE = 7_368_787


class MrnSequence:
    """Distinct MRNs in a seeded order, skipping those already taken."""

    def __init__(self, offset: int, taken: set[str]) -> None:
        self.offset = offset
        self.index = 0
        self.taken = taken

    def take(self) -> str:
        while True:
            body = 1_000_000 + (self.offset + self.index * _MRN_STRIDE) % 9_000_000
            self.index += 1
            mrn = mrn_for(body)
            if mrn not in self.taken:
                return mrn


def local_phone(rng: random.Random, site: SiteStaff) -> str:
    """An E.164 number with an area code of the site's time zone (never N11 or 555)."""
    area = rng.choice(AREA_CODES.get(site.spec.timezone, (212,)))
    exchange = rng.randrange(201, 999)
    if exchange % 100 == 11 or exchange == 555:
        exchange += 1
    return f"+1{area}{exchange:03d}{rng.randrange(10_000):04d}"
