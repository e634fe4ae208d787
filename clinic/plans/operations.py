"""Treatment plans: creation (optionally from assessments), revisions, signatures, reviews."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select

from clinic.assessments.suggestions import problem_suggestions
from clinic.audit.operations import audit, record
from clinic.auth.models import Role, Site, User
from clinic.auth.permissions import scoped_select
from clinic.clients.models import Client, Episode
from clinic.clients.timeline import TimelineEntry
from clinic.core.errors import abort_problem
from clinic.core.signals import timeline_entries
from clinic.core.time import today, utcnow
from clinic.extensions import db
from clinic.notify.models import StaffNotificationKind
from clinic.notify.staff import notify_staff
from clinic.plans.content import PLAN_FIELDS, Change, assign_ids, diff, interventions, node_ids, plan_changes
from clinic.plans.models import Plan, PlanReview, PlanRevision, PlanSignature, PlanStatus, ReviewOutcome, SignerRole

FIRST_REVIEW_DAYS = 30
LATER_REVIEW_DAYS = 90


# --- ETags -------------------------------------------------------------------------------


def etag(plan: Plan) -> str:
    return f'"plan-{plan.id}-v{plan.version_id}"'


def check_if_match(plan: Plan, header: str | None) -> None:
    """Versioned writes need ``If-Match``: 428 without it, 412 when it is not the current ETag."""
    if not header:
        abort_problem(428, "Send If-Match with the ETag of the plan you read.", problem="if-match-required")
    candidates = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    if "*" not in candidates and etag(plan) not in candidates:
        abort_problem(
            412,
            "The plan changed since you read it; read it again and reapply your change.",
            problem="stale-plan",
            extra={"current_etag": etag(plan)},
        )


# --- suggestions -------------------------------------------------------------------------


def suggested_problems(client: Client) -> list[dict[str, Any]]:
    """Problems suggested by the client's latest signed assessments (the clinician edits them)."""
    return [
        {"description": suggestion.description, "source_assessment_id": suggestion.assessment_id, "goals": []}
        for suggestion in problem_suggestions(client.id)
    ]


def plan_suggestions(client: Client) -> list[dict[str, Any]]:
    """The problems suggested for the client's plan; they show assessment results, so the read is audited."""
    suggestions = suggested_problems(client)
    record(
        "assessment.read",
        resource="assessment",
        client_id=client.id,
        details={"via": "plan-suggestions", "ids": [s["source_assessment_id"] for s in suggestions]},
    )
    return suggestions


# --- plans -------------------------------------------------------------------------------


def _check_episode(client: Client, episode_id: int | None) -> None:
    if episode_id is None:
        return
    episode = db.session.get(Episode, episode_id)
    if episode is None or episode.client_id != client.id:
        abort_problem(422, "Not an episode of this client.", errors={"episode_id": ["Not an episode of this client."]})


def _check_responsible_staff(problems: list[dict[str, Any]], site_id: int) -> None:
    staff_ids = {node["responsible_user_id"] for node in interventions(problems) if node.get("responsible_user_id")}
    if not staff_ids:
        return
    users = {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(staff_ids)))}
    bad = sorted(
        i
        for i in staff_ids
        if i not in users or not users[i].is_active or site_id not in users[i].site_ids or users[i].role is Role.ADMIN
    )
    if bad:
        abort_problem(
            422,
            "Responsible staff must work at the client's site.",
            errors={"responsible_user_id": [f"User {i} is not staff of this site." for i in bad]},
        )


def _write_revision(plan: Plan, actor: User, reason: str) -> None:
    db.session.add(
        PlanRevision(
            plan_id=plan.id,
            number=plan.revision,
            content=plan.content,
            status=plan.status,
            review_interval_days=plan.review_interval_days,
            episode_id=plan.episode_id,
            created_by_id=actor.id,
            reason=reason,
        )
    )


def create_plan(
    client: Client,
    *,
    actor: User,
    problems: list[dict[str, Any]] | None = None,
    episode_id: int | None = None,
    review_interval_days: int | None = None,
    from_assessments: bool = False,
) -> Plan:
    """A draft plan; with ``from_assessments`` the latest signed assessments suggest problems."""
    _check_episode(client, episode_id)
    tree = list(problems or [])
    if from_assessments:
        tree = suggested_problems(client) + tree
    content = assign_ids(tree, existing=set())
    _check_responsible_staff(content, client.site_id)
    plan = Plan(
        client_id=client.id,
        site_id=client.site_id,
        episode_id=episode_id,
        status=PlanStatus.DRAFT,
        revision=1,
        content=content,
        review_interval_days=review_interval_days,
        next_review_on=today() + timedelta(days=review_interval_days or FIRST_REVIEW_DAYS),
        created_by_id=actor.id,
        updated_by_id=actor.id,
    )
    db.session.add(plan)
    db.session.flush()
    _write_revision(plan, actor, "created")
    audit("create", plan)
    return plan


def _refuse_if_closed(plan: Plan) -> None:
    if plan.status is PlanStatus.CLOSED:
        abort_problem(409, "This plan is closed and read-only.", problem="plan-closed")


def update_plan(plan: Plan, changes: dict[str, Any], *, actor: User, if_match: str | None) -> Plan:
    """Apply an edit as a new revision; an active plan goes back to draft until signed again."""
    check_if_match(plan, if_match)
    _refuse_if_closed(plan)
    client = db.session.get_one(Client, plan.client_id)
    if "episode_id" in changes:
        _check_episode(client, changes["episode_id"])
        plan.episode_id = changes["episode_id"]
    if "problems" in changes:
        content = assign_ids(changes["problems"], existing=node_ids(plan.content))
        _check_responsible_staff(content, plan.site_id)
        plan.content = content
    if "review_interval_days" in changes:
        plan.review_interval_days = changes["review_interval_days"]
    plan.revision += 1
    if plan.status is PlanStatus.ACTIVE:
        plan.status = PlanStatus.DRAFT
    plan.updated_by_id = actor.id
    plan.updated_at = utcnow()
    db.session.flush()  # the version check happens here: a stale write raises StaleDataError -> 412
    _write_revision(plan, actor, "edited")
    audit("update", plan, details={"revision": plan.revision, "fields": sorted(changes)})
    return plan


def required_roles(plan: Plan) -> list[SignerRole]:
    site = db.session.get_one(Site, plan.site_id)
    roles = [SignerRole.CLINICIAN, SignerRole.CLIENT]
    if site.requires_supervisor_signature:
        roles.append(SignerRole.SUPERVISOR)
    return roles


def signatures(plan: Plan, revision: int | None = None) -> Sequence[PlanSignature]:
    return db.session.scalars(
        select(PlanSignature)
        .where(PlanSignature.plan_id == plan.id, PlanSignature.revision == (revision or plan.revision))
        .order_by(PlanSignature.id)
    ).all()


def signatures_by_plan(plans: Sequence[Plan]) -> dict[int, list[PlanSignature]]:
    """The current revision's signatures of several plans, in one query (lists show them all)."""
    current = {(plan.id, plan.revision) for plan in plans}
    found: dict[int, list[PlanSignature]] = {plan.id: [] for plan in plans}
    if not plans:
        return found
    rows = db.session.scalars(
        select(PlanSignature).where(PlanSignature.plan_id.in_(list(found))).order_by(PlanSignature.id)
    )
    for row in rows:
        if (row.plan_id, row.revision) in current:
            found[row.plan_id].append(row)
    return found


def sign_plan(
    plan: Plan, *, actor: User, role: SignerRole, signer_name: str | None, if_match: str | None = None
) -> Plan:
    """Sign the current revision; it becomes active once every required role has signed.

    ``if_match`` is checked when the caller sent one: a signature need not name the revision it signs.
    """
    if if_match:
        check_if_match(plan, if_match)
    _refuse_if_closed(plan)
    if role is SignerRole.CLINICIAN and actor.role is not Role.CLINICIAN:
        abort_problem(403, "Only a clinician signs as the clinician.")
    if role is SignerRole.SUPERVISOR and not actor.is_supervisor:
        abort_problem(403, "Only a clinical supervisor signs as supervisor.")
    if role is SignerRole.CLIENT and not (signer_name and signer_name.strip()):
        abort_problem(
            422, "Give the name the client signed with.", errors={"signer_name": ["Required for the client."]}
        )
    if any(s.role is role for s in signatures(plan)):
        abort_problem(409, f"Revision {plan.revision} is already signed by the {role.value}.", problem="already-signed")
    db.session.add(
        PlanSignature(
            plan_id=plan.id,
            revision=plan.revision,
            role=role,
            user_id=actor.id,
            signer_name=(signer_name or actor.name).strip(),
        )
    )
    db.session.flush()
    signed_roles = {s.role for s in signatures(plan)}
    if all(r in signed_roles for r in required_roles(plan)) and plan.status is PlanStatus.DRAFT:
        plan.status = PlanStatus.ACTIVE
        plan.active_revision = plan.revision
    plan.updated_by_id = actor.id
    plan.updated_at = utcnow()
    db.session.flush()
    audit("sign", plan, details={"role": role.value, "revision": plan.revision, "status": plan.status.value})
    return plan


def review_plan(plan: Plan, *, actor: User, note: str, outcome: ReviewOutcome) -> PlanReview:
    """Record a review; the next review moves on (or the plan closes)."""
    _refuse_if_closed(plan)
    reviewed_on = today()
    review = PlanReview(
        plan_id=plan.id,
        reviewed_on=reviewed_on,
        note=note,
        outcome=outcome,
        reviewer_id=actor.id,
        due_on=plan.next_review_on,
        was_overdue=plan.next_review_on is not None and reviewed_on > plan.next_review_on,
    )
    db.session.add(review)
    plan.last_reviewed_on = reviewed_on
    if outcome is ReviewOutcome.CLOSE:
        plan.status = PlanStatus.CLOSED
        plan.next_review_on = None
    else:
        # The first review falls FIRST_REVIEW_DAYS after creation; every later one LATER_REVIEW_DAYS after a review.
        interval = plan.review_interval_days or LATER_REVIEW_DAYS
        plan.next_review_on = reviewed_on + timedelta(days=interval)
    plan.updated_by_id = actor.id
    plan.updated_at = utcnow()
    db.session.flush()
    audit("review", plan, details={"outcome": outcome.value})
    return review


def list_plans(client: Client) -> Sequence[Plan]:
    record("plan.read", resource="plan", client_id=client.id, details={"via": "list"})
    return db.session.scalars(select(Plan).where(Plan.client_id == client.id).order_by(Plan.id.desc())).all()


def revisions(plan: Plan) -> Sequence[PlanRevision]:
    audit("read", plan, details={"via": "revisions"})
    return db.session.scalars(
        select(PlanRevision).where(PlanRevision.plan_id == plan.id).order_by(PlanRevision.number)
    ).all()


def get_revision(plan: Plan, number: int) -> PlanRevision:
    row = db.session.scalars(
        select(PlanRevision).where(PlanRevision.plan_id == plan.id, PlanRevision.number == number)
    ).first()
    if row is None:
        abort_problem(404, "No such revision.")
    audit("read", plan, details={"revision": number})
    return row


def revision_diff(plan: Plan, first: int, second: int) -> list[Change]:
    """What changed between two revisions: the plan's own fields first, then the tree's entries."""
    older, newer = get_revision(plan, first), get_revision(plan, second)
    fields = [{name: getattr(revision, name) for name in PLAN_FIELDS} for revision in (older, newer)]
    return plan_changes(*fields) + diff(older.content, newer.content)


def due_reviews(
    user: User, *, before: date, site_id: int | None = None, clinician_id: int | None = None
) -> Sequence[Plan]:
    """Open plans due for review on or before ``before``, the most overdue first.

    ``clinician_id``: only the plans that clinician answers for, the client's primary clinician (or,
    when the client has none, the plan's author) — whom an overdue review alerts.
    """
    stmt = scoped_select(Plan, user).where(
        Plan.status != PlanStatus.CLOSED, Plan.next_review_on.is_not(None), Plan.next_review_on <= before
    )
    if site_id is not None:
        stmt = stmt.where(Plan.site_id == site_id)
    if clinician_id is not None:
        responsible = select(Client.id).where(
            Client.id == Plan.client_id,
            (Client.primary_clinician_id == clinician_id)
            | (Client.primary_clinician_id.is_(None) & (Plan.created_by_id == clinician_id)),
        )
        stmt = stmt.where(responsible.exists())
    plans = db.session.scalars(stmt.order_by(Plan.next_review_on, Plan.id).limit(500)).all()
    for plan in plans:
        audit("read", plan, details={"via": "due"})
    return plans


def notify_overdue_reviews(on: date | None = None) -> int:
    """Alert each responsible clinician of every overdue review, once per plan per day."""
    day = on or today()
    rows = db.session.execute(
        select(
            Plan.id, Plan.client_id, Plan.next_review_on, Plan.created_by_id, Client.primary_clinician_id, Client.mrn
        )
        .join(Client, Client.id == Plan.client_id)
        .where(Plan.status != PlanStatus.CLOSED, Plan.next_review_on < day)
    ).all()
    created = 0
    for plan_id, client_id, due_on, author_id, clinician_id, mrn in rows:
        recipient = clinician_id or author_id
        if recipient is None:
            continue
        made = notify_staff(
            recipient,
            kind=StaffNotificationKind.REVIEW_OVERDUE,
            title="A treatment plan review is overdue",
            body=f"The plan of client MRN {mrn} was due for review on {due_on}.",
            client_id=client_id,
            resource="plan",
            resource_id=plan_id,
            dedupe_key=f"review_overdue:plan:{plan_id}:{day.isoformat()}",
        )
        created += made is not None
    return created


@timeline_entries.connect
def _plan_entries(client_id: int) -> Iterable[TimelineEntry]:
    for rev in db.session.execute(
        select(PlanRevision.plan_id, PlanRevision.number, PlanRevision.created_at, PlanRevision.reason)
        .join(Plan, Plan.id == PlanRevision.plan_id)
        .where(Plan.client_id == client_id)
    ):
        yield TimelineEntry(
            rev.created_at, "plan.revision", rev.plan_id, f"Plan revision {rev.number} ({rev.reason})", clinical=True
        )
    for review in db.session.execute(
        select(PlanReview.plan_id, PlanReview.created_at, PlanReview.outcome)
        .join(Plan, Plan.id == PlanReview.plan_id)
        .where(Plan.client_id == client_id)
    ):
        yield TimelineEntry(
            review.created_at, "plan.review", review.plan_id, f"Plan reviewed: {review.outcome.value}", clinical=True
        )
