"""Each order's dose coverage as runs (``dose_runs``): kept in step with every write to the dosing record."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, select

from clinic.extensions import db
from tests.test_dosing import observed, otp, review, take_home, today, void

__all__ = ["otp"]  # the dosing record's fixture, shared


def runs(app, medication_id: int) -> list[tuple[date, date]]:
    from clinic.dosing.models import DoseRun

    with app.app_context():
        rows = db.session.execute(
            select(DoseRun.covered_from, DoseRun.covered_until)
            .where(DoseRun.medication_id == medication_id)
            .order_by(DoseRun.covered_from)
        )
        return [(first, last) for first, last in rows]


def all_runs(app) -> list[tuple[int, int, date, date]]:
    from clinic.dosing.models import DoseRun

    with app.app_context():
        rows = db.session.execute(
            select(DoseRun.medication_id, DoseRun.first_dose_id, DoseRun.covered_from, DoseRun.covered_until)
        )
        return sorted(tuple(row) for row in rows)


def assert_same_as_a_full_rebuild(app) -> None:
    """What the listeners kept is what recomputing every order's runs from the record gives."""
    from clinic.dosing.runs import rebuild_runs

    kept = all_runs(app)
    with app.app_context():
        rebuild_runs()
        db.session.commit()
    assert all_runs(app) == kept


def test_runs_follow_recorded_doses_and_a_void_splits_one_in_two(client, otp, app):
    person = otp["patient"](started_days_ago=30)
    day = today()
    first = observed(client, otp, person, day - timedelta(days=10))
    assert first.status_code == 201, first.get_json()
    for back in (9, 8, 5):
        assert observed(client, otp, person, day - timedelta(days=back)).status_code == 201
    # Consecutive days are one run; a day without a dose (-7, -6) leaves two.
    assert runs(app, person["medication_id"]) == [
        (day - timedelta(days=10), day - timedelta(days=8)),
        (day - timedelta(days=5), day - timedelta(days=5)),
    ]
    middle = observed(client, otp, person, day - timedelta(days=7)).get_json()
    assert observed(client, otp, person, day - timedelta(days=6)).status_code == 201
    assert runs(app, person["medication_id"]) == [(day - timedelta(days=10), day - timedelta(days=5))]
    # The run begins with the first dose recorded on its first day.
    from clinic.dosing.models import DoseRun

    with app.app_context():
        assert db.session.scalar(select(DoseRun.first_dose_id)) == first.get_json()["id"]
    # The dose of -7 entered in error: the run falls in two around that day.
    assert void(client, otp, middle["id"]).status_code == 200
    assert runs(app, person["medication_id"]) == [
        (day - timedelta(days=10), day - timedelta(days=8)),
        (day - timedelta(days=6), day - timedelta(days=5)),
    ]
    assert_same_as_a_full_rebuild(app)


def test_a_take_home_supply_extends_the_run_over_the_days_it_covers(client, otp, app):
    person = otp["patient"]()
    review(client, otp, person)
    day = today()
    assert observed(client, otp, person, day - timedelta(days=1)).status_code == 201
    assert observed(client, otp, person, day).status_code == 201
    supply = take_home(client, otp, person, 3)
    assert supply.status_code == 201, supply.get_json()
    # Observed yesterday and today, then three days at home: one run through today + 3.
    assert runs(app, person["medication_id"]) == [(day - timedelta(days=1), day + timedelta(days=3))]
    assert void(client, otp, supply.get_json()["id"]).status_code == 200
    assert runs(app, person["medication_id"]) == [(day - timedelta(days=1), day)]
    assert_same_as_a_full_rebuild(app)


def _dose_row(person: dict, site_id: int, dispenser_id: int, day: date) -> dict:
    return {
        "client_id": person["id"],
        "site_id": site_id,
        "medication_id": person["medication_id"],
        "kind": "observed",
        "amount_mg": 40,
        "take_home_days": 0,
        "given_at": datetime.combine(day, time(14), tzinfo=UTC),
        "given_on": day,
        "covered_from": day,
        "covered_until": day,
        "is_split": False,
        "lot_number": "L-1",
        "substance": "methadone",
        "strength": "10 mg/mL",
        "dosage_form": "oral solution",
        "dispenser_id": dispenser_id,
        "dispenser_initials": "DR",
    }


def test_doses_written_through_the_orm_or_a_bulk_insert_keep_their_runs(client, otp, app):
    from clinic.dosing.models import Dose, DoseKind, DoseRun

    person = otp["patient"]()
    other = otp["patient"](first_name="Bea")
    site_id, dispenser_id = otp["site"].id, otp["clinician"].id
    day = today() - timedelta(days=20)
    with app.app_context():
        row = _dose_row(person, site_id, dispenser_id, day) | {"kind": DoseKind.OBSERVED}
        db.session.add(Dose(**row))
        db.session.flush()
        # Seen at once, in the same transaction (a report later in it reads them).
        assert db.session.scalar(select(func.count()).select_from(DoseRun)) == 1
        db.session.commit()
    assert runs(app, person["medication_id"]) == [(day, day)]
    with app.app_context():
        rows = [_dose_row(person, site_id, dispenser_id, day + timedelta(days=n)) for n in (1, 2, 4)]
        db.session.execute(Dose.__table__.insert(), rows)
        db.session.commit()
    assert runs(app, person["medication_id"]) == [(day, day + timedelta(days=2)), (day + timedelta(days=4),) * 2]
    # An entry moved to another order leaves a gap in the first and a run in the second.
    with app.app_context():
        moved = db.session.scalar(select(Dose).where(Dose.given_on == day + timedelta(days=1)))
        assert moved is not None
        moved.medication_id = other["medication_id"]
        db.session.commit()
    assert runs(app, person["medication_id"]) == [(day + timedelta(days=n),) * 2 for n in (0, 2, 4)]
    assert runs(app, other["medication_id"]) == [(day + timedelta(days=1), day + timedelta(days=1))]
    assert_same_as_a_full_rebuild(app)


def _union_of_entries() -> list[tuple[int, date, date]]:
    """Each order's runs worked out one entry at a time from the record, not in SQL."""
    from clinic.dosing.models import Dose

    entries = db.session.execute(
        select(Dose.medication_id, Dose.covered_from, Dose.covered_until)
        .where(Dose.voided_at.is_(None))
        .order_by(Dose.medication_id, Dose.covered_from)
    )
    merged: list[list] = []
    for order, first, last in entries:
        if merged and merged[-1][0] == order and first <= merged[-1][2] + timedelta(days=1):
            merged[-1][2] = max(merged[-1][2], last)
        else:
            merged.append([order, first, last])
    return [(order, first, last) for order, first, last in merged]


def test_the_demo_loads_doses_in_bulk_and_their_runs_with_them(app):
    from clinic.demo.loader import seed
    from clinic.dosing.models import DoseRun

    with app.app_context():
        seed(clients=40, seed=5, today=date(2026, 6, 1))
        db.session.commit()
        expected = _union_of_entries()
        assert len(expected) >= 5
        stored = db.session.execute(
            select(DoseRun.medication_id, DoseRun.covered_from, DoseRun.covered_until).order_by(
                DoseRun.medication_id, DoseRun.covered_from
            )
        )
        assert [tuple(row) for row in stored] == expected
