"""HTTP endpoints: plans (versioned), revisions, signatures, reviews, medications, screens, CM."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from flask import request
from flask_smorest import Blueprint

from clinic.auth.permissions import Permission, authenticated_user, get_scoped_or_404, requires
from clinic.clients.loaders import load_client
from clinic.core.time import today
from clinic.extensions import links
from clinic.plans import cm, medications, screens
from clinic.plans import operations as ops
from clinic.plans.models import CMProgram, DrugScreen, Medication, Plan
from clinic.plans.schemas import (
    CMProgramCreateSchema,
    CMProgramEndSchema,
    CMProgramSchema,
    DiffQuerySchema,
    DiffSchema,
    DrugScreenCreateSchema,
    DrugScreenListSchema,
    DrugScreenPatchSchema,
    DrugScreenSchema,
    DueListSchema,
    DueQuerySchema,
    EnteredInErrorSchema,
    LedgerSchema,
    MedicationCreateSchema,
    MedicationListSchema,
    MedicationPatchSchema,
    MedicationSchema,
    PlanCreateSchema,
    PlanListSchema,
    PlanPatchSchema,
    PlanProblemSchema,
    PlanSchema,
    PrizeCreateSchema,
    PrizeSchema,
    ReviewCreateSchema,
    ReviewSchema,
    RevisionListSchema,
    RevisionSchema,
    SignSchema,
)

blp = Blueprint("plans", __name__, url_prefix="/api/v1", description="Treatment plans, medications, drug screens, CM")

_IF_MATCH = {
    "in": "header",
    "name": "If-Match",
    "required": True,
    "schema": {"type": "string"},
    "description": "The ETag of the plan as you read it.",
}
_ETAG = {"ETag": {"description": "The plan's version; send it back as If-Match", "schema": {"type": "string"}}}


def load_plan(plan_id: int, *, audit_read: bool = False) -> Plan:
    return get_scoped_or_404(Plan, plan_id, authenticated_user(), audit_read=audit_read)


def plan_view(plan: Plan, signatures: Sequence[Any] | None = None) -> dict[str, Any]:
    return {
        **{
            c: getattr(plan, c)
            for c in (
                "id",
                "client_id",
                "site_id",
                "episode_id",
                "status",
                "revision",
                "active_revision",
                "content",
                "review_interval_days",
                "next_review_on",
                "last_reviewed_on",
                "created_at",
                "updated_at",
            )
        },
        "signatures": ops.signatures(plan) if signatures is None else signatures,
        "required_signatures": [r.value for r in ops.required_roles(plan)],
    }


def _with_etag(plan: Plan, status: int = 200) -> tuple[dict[str, Any], int, dict[str, str]]:
    return plan_view(plan), status, {"ETag": ops.etag(plan)}


#: What can be done with a plan just created (the links of its 201); a change needs its ETag.
_PLAN_OPERATIONS = (
    "plans.get_plan",
    "plans.sign_plan",
    "plans.list_revisions",
    "plans.diff_revisions",
    "plans.review_plan",
    "plans.add_medication",
    "plans.create_cm_program",
)
_PLAN_VERSION = {"plan_id": "$response.body#/id", "header.If-Match": "$response.header.ETag"}


@blp.route("/clients/<int:client_id>/plans", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
@blp.arguments(PlanCreateSchema)
@blp.response(201, PlanSchema, headers=_ETAG)
@blp.doc(**links(201, {"plan_id": "$response.body#/id"}, *_PLAN_OPERATIONS))
@blp.doc(**links(201, _PLAN_VERSION, "plans.update_plan"))
def create_plan(body: dict[str, Any], client_id: int) -> Any:
    """Write a draft plan (optionally from the latest signed assessments)."""
    plan = ops.create_plan(load_client(client_id), actor=authenticated_user(), **body)
    return _with_etag(plan, 201)


@blp.route("/clients/<int:client_id>/plans", methods=["GET"])
@requires(Permission.CLINICAL_READ)
@blp.response(200, PlanListSchema)
def list_plans(client_id: int) -> dict[str, Any]:
    """The client's plans, newest first."""
    plans = ops.list_plans(load_client(client_id))
    signed = ops.signatures_by_plan(plans)
    return {"items": [plan_view(p, signed[p.id]) for p in plans]}


@blp.route("/clients/<int:client_id>/plan-suggestions", methods=["GET"])
@requires(Permission.CLINICAL_READ)
@blp.response(200, PlanProblemSchema(many=True))
def plan_suggestions(client_id: int) -> list[dict[str, Any]]:
    """Problems the client's latest signed assessments suggest for a plan."""
    return ops.plan_suggestions(load_client(client_id))


@blp.route("/plans/<int:plan_id>", methods=["GET"])
@requires(Permission.CLINICAL_READ)
@blp.response(200, PlanSchema, headers=_ETAG)
def get_plan(plan_id: int) -> Any:
    """The plan at its current revision, with its ETag."""
    return _with_etag(load_plan(plan_id, audit_read=True))


@blp.route("/plans/<int:plan_id>", methods=["PATCH"])
@requires(Permission.CLINICAL_WRITE)
@blp.arguments(PlanPatchSchema)
@blp.response(200, PlanSchema, headers=_ETAG)
@blp.alt_response(409, description="The plan is closed")
@blp.alt_response(412, description="If-Match is not the current ETag")
@blp.alt_response(428, description="If-Match is missing")
@blp.doc(parameters=[_IF_MATCH])
@blp.doc(**links(200, _PLAN_VERSION, "plans.update_plan", "plans.sign_plan"))
def update_plan(body: dict[str, Any], plan_id: int) -> Any:
    """Edit the plan (a new revision); needs If-Match. An active plan needs signing again."""
    plan = load_plan(plan_id)
    return _with_etag(ops.update_plan(plan, body, actor=authenticated_user(), if_match=request.headers.get("If-Match")))


@blp.route("/plans/<int:plan_id>/sign", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
@blp.arguments(SignSchema)
@blp.response(200, PlanSchema, headers=_ETAG)
def sign_plan(body: dict[str, Any], plan_id: int) -> Any:
    """Sign the current revision as clinician, client (witnessed) or supervisor. If-Match is checked when sent."""
    signed = ops.sign_plan(
        load_plan(plan_id),
        actor=authenticated_user(),
        role=body["as_"],
        signer_name=body.get("signer_name"),
        if_match=request.headers.get("If-Match"),
    )
    return _with_etag(signed)


@blp.route("/plans/<int:plan_id>/revisions", methods=["GET"])
@requires(Permission.CLINICAL_READ)
@blp.response(200, RevisionListSchema)
def list_revisions(plan_id: int) -> dict[str, Any]:
    """Every revision of the plan, oldest first, with who made it and when."""
    return {"items": ops.revisions(load_plan(plan_id))}


@blp.route("/plans/<int:plan_id>/revisions/<int:number>", methods=["GET"])
@requires(Permission.CLINICAL_READ)
@blp.response(200, RevisionSchema)
def get_revision(plan_id: int, number: int) -> Any:
    """The plan as it stood at one revision."""
    return ops.get_revision(load_plan(plan_id), number)


@blp.route("/plans/<int:plan_id>/diff", methods=["GET"])
@requires(Permission.CLINICAL_READ)
@blp.arguments(DiffQuerySchema, location="query")
@blp.response(200, DiffSchema)
def diff_revisions(args: dict[str, Any], plan_id: int) -> dict[str, Any]:
    """What changed between two revisions, entry by entry, in words."""
    changes = ops.revision_diff(load_plan(plan_id), args["from_"], args["to"])
    return {"from_": args["from_"], "to": args["to"], "changes": [c.as_dict() for c in changes]}


@blp.route("/plans/<int:plan_id>/reviews", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
@blp.arguments(ReviewCreateSchema)
@blp.response(201, ReviewSchema)
def review_plan(body: dict[str, Any], plan_id: int) -> dict[str, Any]:
    """Review the plan: continue, revise or close; the next review date moves on."""
    plan = load_plan(plan_id)
    review = ops.review_plan(plan, actor=authenticated_user(), **body)
    return {
        **{
            c: getattr(review, c)
            for c in ("id", "plan_id", "reviewed_on", "note", "outcome", "due_on", "was_overdue", "reviewer_id")
        },
        "next_review_on": plan.next_review_on,
    }


@blp.route("/plan-reviews/due", methods=["GET"])
@requires(Permission.CLINICAL_READ)
@blp.arguments(DueQuerySchema, location="query")
@blp.response(200, DueListSchema)
def due_reviews(args: dict[str, Any]) -> dict[str, Any]:
    """Plans at the caller's sites whose review is due on or before `before` (default today)."""
    before: date = args.get("before") or today()
    return {
        "items": ops.due_reviews(
            authenticated_user(), before=before, site_id=args.get("site_id"), clinician_id=args.get("clinician_id")
        )
    }


@blp.route("/plans/<int:plan_id>/medications", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
@blp.arguments(MedicationCreateSchema)
@blp.response(201, MedicationSchema)
@blp.doc(**links(201, {"medication_id": "$response.body#/id"}, "plans.update_medication"))
def add_medication(body: dict[str, Any], plan_id: int) -> dict[str, Any]:
    """Order a MAT medication, checked against the medication safety rules (docs/medications.md).

    A broken rule is a 422 naming its field, with `rules` [{rule, field, detail, overridable}];
    with `override_reason` the overridable ones pass and are listed in the order's `overrides`.
    """
    return medications.add_medication(load_plan(plan_id), actor=authenticated_user(), **body)


@blp.route("/medications/<int:medication_id>", methods=["PATCH"])
@requires(Permission.CLINICAL_WRITE)
@blp.arguments(MedicationPatchSchema)
@blp.response(200, MedicationSchema)
def update_medication(body: dict[str, Any], medication_id: int) -> dict[str, Any]:
    """Change dose, unit, frequency, phase or end date; the dose history is kept.

    A change dated after the site's today is scheduled: `dose` stays the one in force until then,
    and `scheduled_changes` lists it. The safety rules a change can break are checked as on create.
    """
    med = get_scoped_or_404(Medication, medication_id, authenticated_user())
    return medications.update_medication(med, body, actor=authenticated_user())


@blp.route("/medications/<int:medication_id>/history/<int:change_id>/entered-in-error", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
@blp.arguments(EnteredInErrorSchema)
@blp.response(200, MedicationSchema)
def mark_dose_entered_in_error(body: dict[str, Any], medication_id: int, change_id: int) -> dict[str, Any]:
    """Mark an entry of the dose history entered in error: it stays, marked, and no longer counts.

    409 `no-dose-left` when the order would be left without a dose from its start.
    """
    med = get_scoped_or_404(Medication, medication_id, authenticated_user())
    return medications.mark_entered_in_error(med, change_id, reason=body["reason"], actor=authenticated_user())


@blp.route("/clients/<int:client_id>/medications", methods=["GET"])
@requires(Permission.CLINICAL_READ)
@blp.response(200, MedicationListSchema)
def list_medications(client_id: int) -> dict[str, Any]:
    """The client's medications, newest first, each with its dose history."""
    return {"items": medications.list_for_client(load_client(client_id))}


@blp.route("/clients/<int:client_id>/drug-screens", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
@blp.arguments(DrugScreenCreateSchema)
@blp.response(201, DrugScreenSchema)
@blp.alt_response(
    200, schema=DrugScreenSchema, description="A screen with this collection time existed; it was re-recorded"
)
@blp.doc(**links(201, {"screen_id": "$response.body#/id"}, "plans.update_screen", "plans.mark_screen_entered_in_error"))
def record_screen(body: dict[str, Any], client_id: int) -> Any:
    """Record a drug screen (or a missed one); it feeds the CM ledger."""
    screen, created = screens.record_screen(load_client(client_id), actor=authenticated_user(), **body)
    return screens.serialise([screen])[0], 201 if created else 200


@blp.route("/clients/<int:client_id>/drug-screens", methods=["GET"])
@requires(Permission.CLINICAL_READ)
@blp.response(200, DrugScreenListSchema)
def list_screens(client_id: int) -> dict[str, Any]:
    """The client's drug screens, newest first."""
    return {"items": screens.serialise(screens.list_for_client(load_client(client_id)))}


@blp.route("/drug-screens/<int:screen_id>", methods=["PATCH"])
@requires(Permission.CLINICAL_WRITE)
@blp.arguments(DrugScreenPatchSchema)
@blp.response(200, DrugScreenSchema)
def update_screen(body: dict[str, Any], screen_id: int) -> dict[str, Any]:
    """Correct a drug screen; the CM ledger is recomputed without double counting."""
    screen = get_scoped_or_404(DrugScreen, screen_id, authenticated_user())
    return screens.serialise([screens.update_screen(screen, body, actor=authenticated_user())])[0]


@blp.route("/drug-screens/<int:screen_id>/entered-in-error", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
@blp.arguments(EnteredInErrorSchema)
@blp.response(200, DrugScreenSchema)
@blp.alt_response(409, description="The screen is already marked entered in error")
def mark_screen_entered_in_error(body: dict[str, Any], screen_id: int) -> dict[str, Any]:
    """Mark a drug screen entered in error: it stays, marked, and counts nowhere from now on.

    Not in the CM streaks, the reports, the timeline or the medication rules; an incentive it already
    earned in a CM program stays in that ledger (`kept`), as it was handed to the client. Record the
    right result as a new screen. A repeat is a 409 `already-entered-in-error`.
    """
    screen = get_scoped_or_404(DrugScreen, screen_id, authenticated_user())
    marked = screens.mark_entered_in_error(screen, reason=body["reason"], actor=authenticated_user())
    return screens.serialise([marked])[0]


@blp.route("/plans/<int:plan_id>/cm-programs", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
@blp.arguments(CMProgramCreateSchema)
@blp.response(201, CMProgramSchema)
@blp.doc(
    **links(201, {"program_id": "$response.body#/id"}, "plans.record_prize", "plans.cm_ledger", "plans.end_cm_program")
)
def create_cm_program(body: dict[str, Any], plan_id: int) -> CMProgram:
    """Start a contingency-management program under the plan."""
    return cm.create_program(load_plan(plan_id), actor=authenticated_user(), **body)


@blp.route("/cm-programs/<int:program_id>/end", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
@blp.arguments(CMProgramEndSchema)
@blp.response(200, CMProgramSchema)
@blp.alt_response(409, description="The program has already ended")
def end_cm_program(body: dict[str, Any], program_id: int) -> CMProgram:
    """End a CM program on `ends_on` (default today): screens after that day earn nothing in it."""
    program = get_scoped_or_404(CMProgram, program_id, authenticated_user())
    return cm.end_program(program, actor=authenticated_user(), ends_on=body.get("ends_on"))


@blp.route("/cm-programs/<int:program_id>/prizes", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
@blp.arguments(PrizeCreateSchema)
@blp.response(201, PrizeSchema)
def record_prize(body: dict[str, Any], program_id: int) -> Any:
    """Record the value of a prize the client drew."""
    program = get_scoped_or_404(CMProgram, program_id, authenticated_user())
    return cm.record_prize(program, actor=authenticated_user(), prize_cents=body["prize_cents"])


@blp.route("/cm-programs/<int:program_id>/ledger", methods=["GET"])
@requires(Permission.CLINICAL_READ)
@blp.response(200, LedgerSchema)
def cm_ledger(program_id: int) -> dict[str, Any]:
    """Earnings computed from the screens, in time order, with the annual cap applied."""
    program = get_scoped_or_404(CMProgram, program_id, authenticated_user())
    return cm.ledger(program)
