"""The iCalendar (RFC 5545) file attached to reminder emails, built with the icalendar library.

The event says what a message may say and no more: the site's display name as the summary and
place, the time, and the confirm/cancel link. Times are in UTC (every calendar shows them in
the reader's zone); the UID is stable per appointment and SEQUENCE follows its reschedulings,
so a calendar that imported an earlier file updates the event instead of adding another.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from icalendar import Calendar, Event

from clinic.core.time import utcnow


def appointment_calendar(
    *,
    appointment_id: int,
    sequence: int,
    starts_at: datetime,
    ends_at: datetime,
    summary: str,
    site: str,
    link: str,
    public_base_url: str,
) -> bytes:
    calendar = Calendar()
    calendar.add("prodid", "-//clinic//appointment reminders//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    event = Event()
    host = urlsplit(public_base_url).hostname or "clinic.invalid"
    event.add("uid", f"appointment-{appointment_id}@{host}")
    event.add("sequence", sequence)
    event.add("dtstamp", utcnow())
    event.add("dtstart", starts_at)
    event.add("dtend", ends_at)
    event.add("summary", summary)
    event.add("location", site)
    if link:
        event.add("url", link)
        event.add("description", link)
    calendar.add_component(event)
    return bytes(calendar.to_ical())
