"""Dose runs written by two transactions at once (PostgreSQL, committed data): the second waits, then sees the first."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from clinic.extensions import db
from tests.test_dosing import today
from tests.test_dosing_concurrency import otp
from tests.test_dosing_runs import _dose_row

__all__ = ["otp"]  # the committed OTP with one client on an order, shared


def test_a_void_and_a_dose_of_one_order_written_at_once_leave_its_runs_as_a_full_rebuild_would(otp):
    from clinic.dosing.models import Dose, DoseRun
    from clinic.dosing.runs import rebuild_runs

    app, order = otp["app"], otp["medication_id"]
    person = {"id": otp["client_id"], "medication_id": order}
    base = today() - timedelta(days=60)
    with app.app_context():
        dispenser = db.session.scalar(select(Dose.dispenser_id)) or _first_user_id()
        db.session.execute(
            Dose.__table__.insert(),
            [_dose_row(person, otp["site_id"], dispenser, base + timedelta(days=n)) for n in range(3)],
        )
        db.session.commit()
        middle = db.session.scalar(select(Dose.id).where(Dose.given_on == base + timedelta(days=1)))

        def runs() -> list[tuple]:
            rows = db.session.execute(
                select(DoseRun.covered_from, DoseRun.covered_until)
                .where(DoseRun.medication_id == order, DoseRun.covered_from >= base)
                .order_by(DoseRun.covered_from)
            )
            db.session.rollback()
            return [tuple(row) for row in rows]

        assert runs() == [(base, base + timedelta(days=2))]
        engine = db.engine
        voiding = engine.connect()
        transaction = voiding.begin()
        # One transaction voids the middle dose and rebuilds the order's runs, not yet committed ...
        voiding.execute(update(Dose).where(Dose.id == middle).values(voided_at=datetime.now(UTC)))
        rebuild_runs({order}, connection=voiding)
        done: list[float] = []

        def record() -> None:
            # ... while another records the day after: its rebuild waits for the first to end.
            with engine.begin() as recording:
                row = _dose_row(person, otp["site_id"], dispenser, base + timedelta(days=3))
                recording.execute(Dose.__table__.insert(), [row])
            done.append(time.monotonic())

        thread = threading.Thread(target=record)
        thread.start()
        time.sleep(0.5)
        assert not done, "the second rebuild should wait for the first transaction"
        committed_at = time.monotonic()
        transaction.commit()
        voiding.close()
        thread.join(timeout=30)
        assert done and done[0] >= committed_at
        # Both writes are in: the void splits the run, the new dose extends the second part; nothing twice.
        assert runs() == [(base, base), (base + timedelta(days=2), base + timedelta(days=3))]
        rebuild_runs({order})
        db.session.commit()
        assert runs() == [(base, base), (base + timedelta(days=2), base + timedelta(days=3))]


def _first_user_id() -> int:
    from clinic.auth.models import User

    return db.session.scalars(select(User.id).order_by(User.id)).first() or 0
