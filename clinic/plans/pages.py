"""The console's treatment plan pages: the plan tree edited in place, revisions, signatures, reviews.

Each view mirrors the API view of the same data (clinic.plans.api): the same permission, the same
loaders and operations, so every read is audited as the API's is and a plan outside the caller's
sites is the "page not found" page. The edit form posts the whole tree with the ETag the clinician
read (a hidden field): when someone else saved first the operation refuses it as stale, and the
page shows their saved version beside the clinician's typed one, which stays in the form.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from flask import Response, request, url_for
from sqlalchemy import select
from sqlalchemy.orm.exc import StaleDataError

from clinic.auth.models import Role, User, site_memberships
from clinic.auth.permissions import Permission, authenticated_user, has_permission, requires
from clinic.clients.banner import banner_context
from clinic.clients.loaders import load_client
from clinic.clients.models import Client
from clinic.console import ConsoleBlueprint, FormErrors, as_number, attempt, form_values, load_form, page, redirect_to
from clinic.core.errors import abort_problem
from clinic.extensions import db
from clinic.plans import operations as ops
from clinic.plans.api import load_plan
from clinic.plans.content import diff, node_ids
from clinic.plans.models import Plan, PlanStatus, ReviewOutcome, SignerRole
from clinic.plans.schemas import (
    InterventionKind,
    ObjectiveStatus,
    PlanCreateSchema,
    PlanPatchSchema,
    ReviewCreateSchema,
    SignSchema,
)

blp = ConsoleBlueprint("plan_pages", __name__)

#: Each intervention kind's label and tag colour (the words say it; the colour is a second cue).
KIND_LABELS: dict[str, tuple[str, str]] = {
    InterventionKind.MAT.value: ("MAT", "blue"),
    InterventionKind.CBT.value: ("CBT", "green"),
    InterventionKind.CONTINGENCY_MANAGEMENT.value: ("Contingency management", "yellow"),
    InterventionKind.PEER_SUPPORT.value: ("Peer support", "orange"),
    InterventionKind.SUPPORT_GROUP.value: ("Support group", "grey"),
    InterventionKind.OTHER.value: ("Other", "grey"),
}
KIND_HINTS = {
    InterventionKind.MAT.value: "medication (methadone, buprenorphine, naltrexone)",
    InterventionKind.CBT.value: "cognitive behavioral therapy",
    InterventionKind.CONTINGENCY_MANAGEMENT.value: "incentives for negative screens",
}
OBJECTIVE_LABELS = {
    ObjectiveStatus.NOT_STARTED.value: "Not started",
    ObjectiveStatus.IN_PROGRESS.value: "In progress",
    ObjectiveStatus.ACHIEVED.value: "Achieved",
    ObjectiveStatus.NOT_ACHIEVED.value: "Not achieved",
    ObjectiveStatus.DISCONTINUED.value: "Discontinued",
}
STATUS_LABELS = {
    PlanStatus.DRAFT.value: ("Draft", "yellow"),
    PlanStatus.ACTIVE.value: ("Active", "green"),
    PlanStatus.CLOSED.value: ("Closed", "grey"),
}
ROLE_LABELS = {
    SignerRole.CLINICIAN.value: "Clinician",
    SignerRole.CLIENT.value: "Client (in person)",
    SignerRole.SUPERVISOR.value: "Supervisor",
}
OUTCOME_LABELS = {
    ReviewOutcome.CONTINUE.value: ("Continue", "The plan goes on as it is; the next review moves on."),
    ReviewOutcome.REVISE.value: ("Revise", "The plan needs changes: edit it after recording the review."),
    ReviewOutcome.CLOSE.value: ("Close", "The plan ends and becomes read-only."),
}
FIELD_LABELS = {
    "description": "Description",
    "client_words": "In the client's words",
    "target_date": "Target date",
    "status": "Status",
    "kind": "Kind",
    "frequency": "Frequency",
    "responsible_user_id": "Responsible",
    "review_interval_days": "Review every (days)",
    "episode_id": "Episode",
}
#: The tree's levels: child list key, singular label, and the fields a row of the form carries.
TREE = {
    "problems": ("goals", "problem", ("id", "description", "source_assessment_id")),
    "goals": ("objectives", "goal", ("id", "description", "client_words")),
    "objectives": ("interventions", "objective", ("id", "description", "target_date", "status")),
    "interventions": (None, "intervention", ("id", "kind", "description", "frequency", "responsible_user_id")),
}
_TREE_NAME = re.compile(r"problems(\.[0-9]{1,3}\.[a-z_]+)+")
_ROW_PATH = re.compile(r"problems\.[0-9]{1,3}(\.(goals|objectives|interventions)\.[0-9]{1,3})*")
_LIST_PATH = re.compile(r"problems(\.[0-9]{1,3}\.(goals|objectives|interventions))*")


@blp.context_processor
def _labels() -> dict[str, Any]:
    return {
        "KIND_LABELS": KIND_LABELS,
        "OBJECTIVE_LABELS": OBJECTIVE_LABELS,
        "STATUS_LABELS": STATUS_LABELS,
        "ROLE_LABELS": ROLE_LABELS,
        "OUTCOME_LABELS": OUTCOME_LABELS,
        "as_date": _as_date,
        "outcomes": [(key, label, hint) for key, (label, hint) in OUTCOME_LABELS.items()],
    }


def _as_date(value: Any) -> date | None:
    """A date kept in the plan's content (ISO text) as a date, for the date filters."""
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


# --- helpers --------------------------------------------------------------------------------------


def _staff(site_id: int) -> dict[int, str]:
    """Active staff of the site who may answer for an intervention (everyone but admins), by name."""
    members = select(site_memberships.c.user_id).where(site_memberships.c.site_id == site_id).scalar_subquery()
    rows = db.session.scalars(
        select(User).where(User.id.in_(members), User.is_active.is_(True), User.role != Role.ADMIN).order_by(User.name)
    ).all()
    return {user.id: user.name for user in rows}


def _names(ids: set[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    return {u.id: u.name for u in db.session.scalars(select(User).where(User.id.in_(wanted)))}


def _plan_client(plan: Plan) -> Client:
    return load_client(plan.client_id, audit_read=True)


def _can_write(user: User) -> bool:
    return has_permission(user, Permission.CLINICAL_WRITE)


# --- the tree as a form ---------------------------------------------------------------------------


def tree_from_form(form: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The posted tree: fields named like the API's error paths (``problems.0.goals.1.description``)."""
    root: dict[str, Any] = {}
    for name, value in form.items():
        if not _TREE_NAME.fullmatch(name):
            continue
        parts = name.split(".")
        node = root
        for key in parts[:-1]:
            node = node.setdefault(key, {})
        node[parts[-1]] = value

    def build(rows: dict[str, Any], list_key: str) -> list[dict[str, Any]]:
        child_key, _label, fields = TREE[list_key]
        result = []
        for index in sorted(rows, key=lambda k: int(k) if k.isdigit() else 0):
            raw = rows[index]
            if not isinstance(raw, dict):
                continue
            item: dict[str, Any] = {}
            for field in fields:
                value = raw.get(field)
                if isinstance(value, str) and value.strip() != "":
                    item[field] = value.strip() if field != "client_words" else value
            if child_key:
                item[child_key] = build(raw.get(child_key) or {}, child_key)
            result.append(item)
        return result

    return build(root.get("problems") or {}, "problems")


def _is_blank(node: dict[str, Any], list_key: str) -> bool:
    child_key = TREE[list_key][0]
    own = [k for k in node if k not in {"id", "kind", "status", child_key}]
    return not own and "id" not in node and not (child_key and node.get(child_key))


def _for_api(tree: list[dict[str, Any]], list_key: str = "problems") -> list[dict[str, Any]]:
    """The typed tree as the API takes it: blank new rows dropped, numbers as numbers."""
    child_key = TREE[list_key][0]
    result = []
    for node in tree:
        if _is_blank(node, list_key):
            continue
        item = {
            k: (as_number(v) if k in {"responsible_user_id", "source_assessment_id"} else v)
            for k, v in node.items()
            if k != child_key
        }
        if child_key:
            item[child_key] = _for_api(node.get(child_key) or [], child_key)
        result.append(item)
    return result


def _rows_at(tree: list[dict[str, Any]], path: str) -> list[dict[str, Any]] | None:
    """The list of rows a path like ``problems.0.goals`` names (None when it names none)."""
    parts = path.split(".")
    rows: Any = tree
    for position in range(1, len(parts), 2):
        index = int(parts[position])
        if not isinstance(rows, list) or index >= len(rows):
            return None
        rows = rows[index].setdefault(parts[position + 1], [])
    return rows if isinstance(rows, list) else None


def _new_row(list_key: str) -> dict[str, Any]:
    child_key = TREE[list_key][0]
    row: dict[str, Any] = {"kind": InterventionKind.OTHER.value} if list_key == "interventions" else {}
    if child_key:
        row[child_key] = []
    return row


def _locate(
    tree: list[dict[str, Any]], node_id: str, list_key: str = "problems", parent: str | None = None
) -> tuple[dict[str, Any], str, str | None] | None:
    """The node with ``node_id``, the list it sits in and its parent's id."""
    child_key = TREE[list_key][0]
    for node in tree:
        if node.get("id") == node_id:
            return node, list_key, parent
        if child_key:
            found = _locate(node.get(child_key) or [], node_id, child_key, node.get("id"))
            if found:
                return found
    return None


def carry_over(tree: list[dict[str, Any]], theirs: list[dict[str, Any]], action: str) -> bool:
    """Take an entry (``carry:<id>``) or a field (``take:<id>.<field>``) of their version into this one."""
    verb, _, target = action.partition(":")
    if verb == "carry":
        return _carry_entry(tree, theirs, target)
    if verb == "take":
        node_id, _, field = target.partition(".")
        found, mine = _locate(theirs, node_id), _locate(tree, node_id)
        if found is None or mine is None or field not in TREE[found[1]][2] or field == "id":
            return False
        value = found[0].get(field)
        mine[0][field] = "" if value is None else str(value)
        return True
    return False


def _carry_entry(tree: list[dict[str, Any]], theirs: list[dict[str, Any]], node_id: str) -> bool:
    """Their entry (with what is under it) added under the same parent in this version."""
    found = _locate(theirs, node_id)
    if found is None or _locate(tree, node_id) is not None:
        return False
    node, list_key, parent_id = found
    if parent_id is None:
        tree.extend(_as_form([node], list_key))
        return True
    parent = _locate(tree, parent_id)
    if parent is None:
        return False
    parent[0].setdefault(list_key, []).extend(_as_form([node], list_key))
    return True


def _carry_actions(changes: Sequence[Any], tree: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> dict[int, str]:
    """The carry-over action offered for each change (by position): what their version has and this one lacks."""
    offered = {}
    for position, change in enumerate(changes):
        if change.change == "removed":
            found = _locate(theirs, change.node_id)
            if found and (found[2] is None or _locate(tree, found[2]) is not None):
                offered[position] = f"carry:{change.node_id}"
        elif change.change == "changed" and change.level != "plan":
            offered[position] = f"take:{change.node_id}.{change.field}"
    return offered


def apply_action(tree: list[dict[str, Any]], action: str, suggestions: Sequence[dict[str, Any]]) -> bool:
    """Add or remove a row (``add:problems.0.goals``, ``remove:problems.0.goals.1``, ``suggest:2``)."""
    verb, _, target = action.partition(":")
    if verb == "add" and _LIST_PATH.fullmatch(target):
        rows = tree if target == "problems" else _rows_at(tree, target)
        if rows is None or len(rows) >= 50:
            return False
        rows.append(_new_row(target.rsplit(".", 1)[-1]))
        return True
    if verb == "remove" and _ROW_PATH.fullmatch(target):
        list_path, _, index = target.rpartition(".")
        rows = tree if list_path == "problems" else _rows_at(tree, list_path)
        if rows is None or int(index) >= len(rows):
            return False
        del rows[int(index)]
        return True
    if verb == "suggest" and target.isdigit() and int(target) < len(suggestions):
        chosen = suggestions[int(target)]
        tree.append(
            {
                "description": chosen["description"],
                "source_assessment_id": str(chosen["source_assessment_id"]),
                "goals": [],
            }
        )
        return True
    return False


def _as_form(tree: list[dict[str, Any]], list_key: str = "problems") -> list[dict[str, Any]]:
    """A stored tree as the form shows it: every value as text."""
    child_key = TREE[list_key][0]
    result = []
    for node in tree:
        item: dict[str, Any] = {k: ("" if v is None else str(v)) for k, v in node.items() if k != child_key}
        if child_key:
            item[child_key] = _as_form(node.get(child_key) or [], child_key)
        result.append(item)
    return result


def _forget_ids(tree: list[dict[str, Any]], keep: set[str], list_key: str = "problems") -> None:
    """Entries the other writer removed come back as new entries (nothing typed is lost)."""
    child_key = TREE[list_key][0]
    for node in tree:
        if node.get("id") and node["id"] not in keep:
            node.pop("id")
        if child_key:
            _forget_ids(node.get(child_key) or [], keep, child_key)


def _with_temporary_ids(
    tree: list[dict[str, Any]], list_key: str = "problems", counter: list[int] | None = None
) -> list[dict[str, Any]]:
    counter = counter if counter is not None else [0]
    child_key = TREE[list_key][0]
    result = []
    for node in tree:
        counter[0] += 1
        item = {k: v for k, v in node.items() if k != child_key and v not in ("", None)}
        item.setdefault("id", f"new-{counter[0]}")
        if child_key:
            item[child_key] = _with_temporary_ids(node.get(child_key) or [], child_key, counter)
        result.append(item)
    return result


# --- the client's plans ---------------------------------------------------------------------------


def _plans_page(client: Client, errors: FormErrors, values: Mapping[str, Any], *, status: int = 200) -> Response:
    user = authenticated_user()
    plans = ops.list_plans(client)
    signed = ops.signatures_by_plan(plans)
    return page(
        "plans/plans.html",
        status=status,
        client=client,
        plans=plans,
        signed=signed,
        required={plan.id: [r.value for r in ops.required_roles(plan)] for plan in plans},
        errors=errors,
        values=values,
        can_write=_can_write(user),
        **banner_context(client, user, current="plan_pages.client_plans"),
    )


@blp.route("/clients/<int:client_id>/plans", methods=["GET"])
@requires(Permission.CLINICAL_READ)
def client_plans(client_id: int) -> Response:
    """The client's plans, newest first: status, version, dates, review due; "New plan"."""
    return _plans_page(load_client(client_id, audit_read=True), FormErrors(), {"from_assessments": "true"})


@blp.route("/clients/<int:client_id>/plans", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
def new_plan(client_id: int) -> Response:
    """Write a draft plan (POST /api/v1/clients/{id}/plans), optionally from the latest assessments."""
    user = authenticated_user()
    client = load_client(client_id)
    values = form_values()
    body: dict[str, Any] = {"from_assessments": values.get("from_assessments") == "true"}
    if "review_interval_days" in values:
        body["review_interval_days"] = as_number(values["review_interval_days"])
    data, errors = load_form(PlanCreateSchema(), body)
    plan = None
    if not errors:
        plan, errors = attempt(ops.create_plan, client, actor=user, **data)
    if plan is None:
        return _plans_page(load_client(client_id, audit_read=True), errors, values, status=422)
    return redirect_to(url_for("plan_pages.edit_plan", plan_id=plan.id))


# --- one plan -------------------------------------------------------------------------------------


def _suggestions(client: Client, plan: Plan | None = None) -> list[dict[str, Any]]:
    found = ops.plan_suggestions(client)
    present: set[Any] = set()
    sources: set[Any] = set()
    if plan is not None:
        present = {(p.get("source_assessment_id"), p.get("description")) for p in plan.content}
        sources = {p.get("source_assessment_id") for p in plan.content if p.get("source_assessment_id")}
    for suggestion in found:
        suggestion["in_plan"] = plan is not None and (
            suggestion["source_assessment_id"] in sources
            or (suggestion["source_assessment_id"], suggestion["description"]) in present
        )
    return found


def _plan_page(
    plan_id: int,
    *,
    errors: FormErrors | None = None,
    values: Mapping[str, Any] | None = None,
    form: str | None = None,
    status: int = 200,
) -> Response:
    user = authenticated_user()
    loaded = load_plan(plan_id, audit_read=True)
    client = _plan_client(loaded)
    signatures = ops.signatures(loaded)
    required = [r.value for r in ops.required_roles(loaded)]
    signed_roles = {s.role.value for s in signatures}
    staff = _staff(loaded.site_id)
    responsible = {
        n.get("responsible_user_id")
        for p in loaded.content
        for g in p.get("goals", [])
        for o in g.get("objectives", [])
        for n in o.get("interventions", [])
    }
    names = {**_names(responsible | {s.user_id for s in signatures} | {loaded.updated_by_id}), **staff}
    return page(
        "plans/plan.html",
        status=status,
        plan=loaded,
        client=client,
        etag=ops.etag(loaded),
        signatures=signatures,
        required=required,
        unsigned=[role for role in required if role not in signed_roles],
        names=names,
        suggestions=_suggestions(client, loaded),
        can_write=_can_write(user) and loaded.status is not PlanStatus.CLOSED,
        is_supervisor=bool(user.is_supervisor),
        is_clinician=user.role is Role.CLINICIAN,
        errors=errors or FormErrors(),
        values=values or {},
        form=form,
        done=request.args.get("done"),
        **banner_context(client, user, current="plan_pages.client_plans"),
    )


@blp.route("/plans/<int:plan_id>", methods=["GET"])
@requires(Permission.CLINICAL_READ)
def plan(plan_id: int) -> Response:
    """The plan tree at its current revision, signatures, review due and the assessments' suggestions."""
    return _plan_page(plan_id)


def _edit_page(
    plan: Plan,
    tree: list[dict[str, Any]],
    *,
    etag: str,
    errors: FormErrors,
    review_interval: str = "",
    theirs: Plan | None = None,
    changes: Sequence[Any] = (),
    carry: Mapping[int, str] | None = None,
    status: int = 200,
) -> Response:
    user = authenticated_user()
    client = _plan_client(plan)
    staff = _staff(plan.site_id)
    return page(
        "plans/plan_edit.html",
        status=status,
        plan=plan,
        client=client,
        tree=tree,
        etag=etag,
        review_interval=review_interval,
        errors=errors,
        labels=_error_labels(errors),
        kinds=[
            (kind, label if kind not in KIND_HINTS else f"{label} — {KIND_HINTS[kind]}")
            for kind, (label, _tone) in KIND_LABELS.items()
        ],
        objective_statuses=list(OBJECTIVE_LABELS.items()),
        staff=list(staff.items()),
        names={**_names({s.user_id for s in ops.signatures(plan)}), **staff},
        suggestions=_suggestions(client, plan),
        theirs=theirs,
        theirs_by=_names({plan.updated_by_id}).get(plan.updated_by_id or 0) if theirs is not None else None,
        changes=changes,
        carry=carry or {},
        **banner_context(client, user, current="plan_pages.client_plans"),
    )


def _error_labels(errors: Mapping[str, Any]) -> dict[str, str]:
    """Error summary labels that say where the field is: "Problem 1, goal 2: Description"."""
    labels = {}
    for key in errors:
        parts = key.split(".")
        if len(parts) < 2 or parts[0] != "problems":
            continue
        where = []
        for position in range(0, len(parts) - 1, 2):
            if position + 1 < len(parts) and parts[position + 1].isdigit():
                where.append(f"{TREE[parts[position]][1]} {int(parts[position + 1]) + 1}")
        field = parts[-1] if not parts[-1].isdigit() else ""
        text = ", ".join(where).capitalize()
        labels[key] = f"{text}: {FIELD_LABELS.get(field, field.replace('_', ' '))}" if field else text
    return labels


@blp.route("/plans/<int:plan_id>/edit", methods=["GET"])
@requires(Permission.CLINICAL_WRITE)
def edit_plan(plan_id: int) -> Response:
    """The whole plan as one form, with the ETag it was read at."""
    plan = load_plan(plan_id, audit_read=True)
    if plan.status is PlanStatus.CLOSED:
        return redirect_to(url_for("plan_pages.plan", plan_id=plan.id))
    return _edit_page(
        plan,
        _as_form(plan.content),
        etag=ops.etag(plan),
        errors=FormErrors(),
        review_interval="" if plan.review_interval_days is None else str(plan.review_interval_days),
    )


@blp.route("/plans/<int:plan_id>/edit", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
def save_plan(plan_id: int) -> Response:
    """Save the plan (PATCH /api/v1/plans/{id} with If-Match), or add or remove a row of the form."""
    user = authenticated_user()
    plan = load_plan(plan_id)
    tree = tree_from_form(request.form)
    etag = request.form.get("etag", "")
    review_interval = request.form.get("review_interval_days", "").strip()
    action = request.form.get("action", "save")
    if plan.status is PlanStatus.CLOSED:
        # Closed (by a review) while the form was open: nothing can be saved, but nothing typed is lost.
        closed = FormErrors(
            {
                "_schema": [
                    "This plan was closed while you were editing it and can no longer be "
                    "changed. Your text is kept below: copy what you need into a new plan."
                ]
            }
        )
        return _edit_page(plan, tree, etag=etag, errors=closed, review_interval=review_interval, status=409)
    if action != "save":
        if action.startswith(("carry:", "take:")):
            carry_over(tree, plan.content, action)
        else:
            apply_action(tree, action, _suggestions(load_client(plan.client_id), plan))
        if request.form.get("conflict") == "1":
            return _conflict_page(plan, tree, review_interval, status=200)
        return _edit_page(plan, tree, etag=etag, errors=FormErrors(), review_interval=review_interval)
    body: dict[str, Any] = {
        "problems": _for_api(tree),
        "review_interval_days": as_number(review_interval) if review_interval else None,
    }
    data, errors = load_form(PlanPatchSchema(), body)
    saved = None
    stale = False
    if not errors:
        try:
            saved, errors = attempt(ops.update_plan, plan, data, actor=user, if_match=etag)
        except StaleDataError:  # two saves of the same version at the same moment: the other one won
            stale = True
    if saved is not None:
        return redirect_to(url_for("plan_pages.plan", plan_id=plan.id, done="saved"))
    if stale or getattr(errors.problem, "code", None) == 412:
        return _conflict_page(load_plan(plan_id), tree, review_interval, status=409)
    return _edit_page(plan, tree, etag=etag, errors=errors, review_interval=review_interval, status=422)


def _conflict_page(current: Plan, tree: list[dict[str, Any]], review_interval: str, *, status: int) -> Response:
    """Someone else saved first: their version beside this one, every typed word kept, and this form
    ready to be saved over theirs with the ETag of what is now shown."""
    _forget_ids(tree, node_ids(current.content))
    mine = _with_temporary_ids(_for_api(tree))
    changes = diff(current.content, mine)
    conflict = FormErrors(
        {
            "_schema": [
                "Someone else saved this plan while you were editing it. Their version is shown beside yours; "
                "your text is kept. Carry over what you need and save again."
            ]
        }
    )
    return _edit_page(
        current,
        tree,
        etag=ops.etag(current),
        errors=conflict,
        review_interval=review_interval,
        theirs=current,
        changes=changes,
        carry=_carry_actions(changes, mine, current.content),
        status=status,
    )


@blp.route("/plans/<int:plan_id>/sign", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
def sign(plan_id: int) -> Response:
    """Sign the current revision as clinician, client (in person, witnessed) or supervisor."""
    user = authenticated_user()
    plan = load_plan(plan_id)
    values = form_values()
    role = values.get("as", "")
    errors = FormErrors()
    if role == SignerRole.CLIENT.value and values.get("attestation") != "yes":
        errors["attestation"] = ["Confirm that the client signed in person in front of you."]
    data, schema_errors = load_form(SignSchema(), {k: v for k, v in values.items() if k in {"as", "signer_name"}})
    errors.update(schema_errors)
    signed = None
    if not errors:
        signed, errors = attempt(
            ops.sign_plan,
            plan,
            actor=user,
            role=data["as_"],
            signer_name=data.get("signer_name"),
            if_match=values.get("etag"),
        )
    if signed is None:
        if "as_" in errors:
            errors["as"] = errors.pop("as_")
        return _plan_page(plan.id, errors=errors, values=values, form=f"sign-{role}", status=422)
    return redirect_to(url_for("plan_pages.plan", plan_id=plan.id, done=f"signed-{role}") + "#signatures")


@blp.route("/plans/<int:plan_id>/reviews", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
def review(plan_id: int) -> Response:
    """Record a review: continue, revise or close; the next review date moves on."""
    user = authenticated_user()
    plan = load_plan(plan_id)
    values = form_values()
    data, errors = load_form(ReviewCreateSchema(), {k: v for k, v in values.items() if k in {"note", "outcome"}})
    done = None
    if not errors:
        done, errors = attempt(ops.review_plan, plan, actor=user, **data)
    if done is None:
        return _plan_page(plan.id, errors=errors, values=values, form="review", status=422)
    return redirect_to(url_for("plan_pages.plan", plan_id=plan.id, done="reviewed") + "#reviews")


@blp.route("/plans/<int:plan_id>/revisions", methods=["GET"])
@requires(Permission.CLINICAL_READ)
def revisions(plan_id: int) -> Response:
    """Every revision, who made it and why, and what changed between two of them."""
    user = authenticated_user()
    plan = load_plan(plan_id)
    client = _plan_client(plan)
    rows = ops.revisions(plan)
    latest = rows[-1].number if rows else 1
    second = _revision_number(request.args.get("to"), latest)
    first = _revision_number(request.args.get("from"), max(second - 1, 1))
    changes = ops.revision_diff(plan, first, second) if first != second else []
    return page(
        "plans/plan_revisions.html",
        plan=plan,
        client=client,
        rows=rows,
        first=first,
        second=second,
        changes=changes,
        names=_names({row.created_by_id for row in rows}),
        **banner_context(client, user, current="plan_pages.client_plans"),
    )


def _revision_number(raw: str | None, default: int) -> int:
    value = as_number(raw or "")
    if raw in (None, ""):
        return default
    if not isinstance(value, int) or value < 1:
        abort_problem(404, "No such revision.")
    return value
