"""Series of appointments from an RFC 5545 RRULE, expanded on the wall clock of a zone.

A rule is evaluated on the wall clock of the appointment's zone (python-dateutil's rrule on
local times), then each local time is turned into an instant. So "every Monday at 09:00"
stays at 09:00 local across daylight-saving changes, whatever the UTC offset does.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from dateutil.rrule import rrule, rrulestr

from clinic.core.time import from_local, to_local

#: Frequencies a clinic schedules at; finer ones would book a clinician every hour.
FREQUENCIES = frozenset({"DAILY", "WEEKLY", "MONTHLY"})
#: Rule parts accepted. BYMONTH, BYYEARDAY, BYWEEKNO and BYHOUR... are refused: a clinic does not
#: need them, and impossible combinations of them make dateutil search for thousands of years.
PARTS = frozenset({"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYSETPOS", "WKST"})
MAX_OCCURRENCES = 400
MAX_SPAN = timedelta(days=2 * 366)
MAX_INTERVAL = 52

_UNTIL = re.compile(r"^(\d{8})(T\d{6})?(Z?)$")


class RecurrenceError(ValueError):
    """The rule is not one clinic can expand; the message says why, for the caller."""


def normalise_rule(text: str) -> str:
    """The rule without an "RRULE:" prefix, upper-cased, its parts checked; else RecurrenceError."""
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[len("RRULE:") :]
    body = body.strip().upper()
    if not body or "\n" in body or "\r" in body:
        raise RecurrenceError("Give one RRULE, e.g. FREQ=WEEKLY;COUNT=10.")
    parts: dict[str, str] = {}
    for item in body.split(";"):
        name, sep, value = item.partition("=")
        if not sep or not value:
            raise RecurrenceError(f"{item!r} is not NAME=VALUE.")
        if name not in PARTS:
            raise RecurrenceError(f"{name} is not supported; use {', '.join(sorted(PARTS))}.")
        if name in parts:
            raise RecurrenceError(f"{name} is given twice.")
        parts[name] = value
    if parts.get("FREQ") not in FREQUENCIES:
        raise RecurrenceError(f"FREQ must be one of {', '.join(sorted(FREQUENCIES))}.")
    if ("COUNT" in parts) == ("UNTIL" in parts):
        raise RecurrenceError("Give exactly one of COUNT and UNTIL: a series must end.")
    if "INTERVAL" in parts and not (parts["INTERVAL"].isdigit() and 1 <= int(parts["INTERVAL"]) <= MAX_INTERVAL):
        raise RecurrenceError(f"INTERVAL must be 1..{MAX_INTERVAL}.")
    if "COUNT" in parts and not (parts["COUNT"].isdigit() and 1 <= int(parts["COUNT"]) <= MAX_OCCURRENCES):
        raise RecurrenceError(f"COUNT must be 1..{MAX_OCCURRENCES}.")
    if "UNTIL" in parts and not _UNTIL.match(parts["UNTIL"]):
        raise RecurrenceError("UNTIL must be a date (20260630) or a time (20260630T235959Z).")
    return ";".join(f"{name}={value}" for name, value in parts.items())


def _local_until(value: str, zone: str) -> datetime:
    """UNTIL as a local wall time: a UTC time converted, a local time kept, a date to its end."""
    match = _UNTIL.match(value)
    if match is None:
        raise RecurrenceError("UNTIL must be a date (20260630) or a time (20260630T235959Z).")
    day, clock, utc = match.groups()
    # Wall-clock times: naive on purpose, localised by the caller.
    if clock is None:
        return datetime.strptime(day, "%Y%m%d") + timedelta(days=1, seconds=-1)  # noqa: DTZ007
    parsed = datetime.strptime(day + clock, "%Y%m%dT%H%M%S")  # noqa: DTZ007
    if utc:
        return to_local(parsed.replace(tzinfo=UTC), zone)
    return parsed


def occurrences(first_start: datetime, rule_text: str, zone: str) -> list[datetime]:
    """The UTC starts of a series: ``rule_text`` repeated from ``first_start``'s wall time in ``zone``.

    The first start counts only if the rule matches it (as with dateutil and most calendars).
    """
    normalised = normalise_rule(rule_text)
    parts = dict(item.split("=", 1) for item in normalised.split(";"))
    start_local = to_local(first_start, zone)
    without_until = ";".join(f"{k}={v}" for k, v in parts.items() if k != "UNTIL")
    try:
        rule = rrulestr(without_until, dtstart=start_local)
        if not isinstance(rule, rrule):
            raise RecurrenceError("Give one RRULE.")
        if "UNTIL" in parts:
            rule = rule.replace(until=_local_until(parts["UNTIL"], zone))
        horizon = start_local + MAX_SPAN
        starts: list[datetime] = []
        for local in rule:
            if local > horizon:
                raise RecurrenceError("A series may span at most two years; split it or end it sooner.")
            starts.append(from_local(local, zone))
            if len(starts) > MAX_OCCURRENCES:
                raise RecurrenceError(f"A series may have at most {MAX_OCCURRENCES} occurrences.")
    except RecurrenceError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        raise RecurrenceError(f"Not a valid RRULE: {exc}.") from exc
    if not starts:
        raise RecurrenceError("The rule gives no occurrence.")
    return starts
