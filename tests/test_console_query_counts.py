"""Console pages run a fixed number of SQL statements, however many rows they show (no N+1).

The same method as tests/test_query_counts.py: seed a few demo clients, count each page's
statements, seed many more, count again; any growth fails.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta

from flask import Flask
from sqlalchemy import func, select

from clinic.auth.models import User
from clinic.demo.loader import seed
from clinic.extensions import db
from tests.test_query_counts import TODAY, _user, counting


def _busiest_client(app: Flask, clinician: User) -> int:
    from clinic.scheduling.models import Appointment

    with app.app_context():
        return int(db.session.execute(
            select(Appointment.client_id, func.count()).where(Appointment.site_id.in_(clinician.site_ids))
            .group_by(Appointment.client_id).order_by(func.count().desc(), Appointment.client_id)
        ).first()[0])  # type: ignore[index]


def _busiest_day(app: Flask, clinician: User) -> date:
    """The day (UTC) with the most appointments at the clinician's sites, in the seeded history."""
    from clinic.scheduling.models import Appointment

    with app.app_context():
        starts = db.session.scalars(select(Appointment.starts_at).where(Appointment.site_id.in_(clinician.site_ids)))
        return Counter(start.date() for start in starts).most_common(1)[0][0]


def _otp_site(app: Flask, clinician: User) -> int:
    from clinic.auth.models import Site

    with app.app_context():
        return int(db.session.scalars(
            select(Site.id).where(Site.id.in_(clinician.site_ids), Site.is_otp.is_(True)).order_by(Site.id)
        ).first())  # type: ignore[arg-type]


def _measure(app: Flask, bearer: Callable[[User], dict[str, str]]) -> dict[str, tuple[int, int]]:
    """(statements, table rows shown) of each page, as the first demo clinician and intake coordinator."""
    clinician = _user(app, "clinician1.riverside@demo.example.org")
    intake = _user(app, "intake1.riverside@demo.example.org")
    client_id = _busiest_client(app, clinician)
    week = _busiest_day(app, clinician).isoformat()
    otp = _otp_site(app, clinician)
    pages = {
        clinician: {
            "chart": f"/clients/{client_id}",
            "schedule week (site)": f"/schedule?view=week&date={week}&clinician_id=",
            "schedule day (site)": f"/schedule?view=day&date={week}&clinician_id=",
            "today": "/today",
            "client search": "/clients?q=a",
            "dosing window (today)": f"/dosing?site_id={otp}",
            "dosing window (a past day)": f"/dosing?site_id={otp}&date={(TODAY - timedelta(days=1)).isoformat()}",
        },
        intake: {"intake queue": "/intake", "alerts": "/alerts"},
    }
    http = app.test_client()
    found: dict[str, tuple[int, int]] = {}
    for user, paths in pages.items():
        headers = {**bearer(user), "Accept": "text/html"}
        for name, path in paths.items():
            http.get(path, headers=headers)  # warm caches
            with counting(app) as statements:
                response = http.get(path, headers=headers)
            assert response.status_code == 200, (name, response.status_code)
            html = response.get_data(as_text=True)
            found[name] = (len(statements), html.count("<tr") + html.count('class="slot'))
    return found


def test_console_pages_do_not_query_per_row(app: Flask, bearer: Callable[[User], dict[str, str]]) -> None:
    with app.app_context():
        seed(clients=3, seed=11, today=TODAY)
        db.session.commit()
    few = _measure(app, bearer)
    with app.app_context():
        seed(clients=40, seed=12, today=TODAY, force=True)
        db.session.commit()
    many = _measure(app, bearer)
    grew = {name: (few[name], many[name]) for name in few if many[name][0] > few[name][0]}
    assert not grew, f"statements grew with rows (statements, rows shown): {grew}"
    more_rows = {name for name in few if many[name][1] > few[name][1]}
    assert {"schedule week (site)", "intake queue", "client search"} <= more_rows, (few, many)
