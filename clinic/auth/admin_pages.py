"""Console pages for administrators: sites and users.

Each page mirrors an endpoint of clinic.auth.api: the same permission, the same operation, the
same schema. ``/admin`` lists the sites and the accounts as ``GET /sites`` and ``GET /users`` page
them (by id, keyset "Next"); the forms create and change them as ``POST``/``PATCH`` do, and a
password reset is the API's ``PATCH /users/{id}`` with ``password``. A refusal of the operation
(an email taken, a password too common, an administrator taking away their own rights) is shown
on the form, beside the field it concerns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode
from zoneinfo import available_timezones

from flask import Response, request, url_for
from marshmallow import ValidationError

from clinic.auth import operations as ops
from clinic.auth.models import Role, Site, User
from clinic.auth.permissions import Permission, authenticated_user, requires
from clinic.auth.schemas import (
    ListArgsSchema,
    SitePatchSchema,
    SiteSchema,
    UserCreateSchema,
    UserPatchSchema,
)
from clinic.console import (
    ConsoleBlueprint,
    FormErrors,
    as_number,
    attempt,
    form_values,
    load_form,
    page,
    redirect_to,
)
from clinic.core.errors import APIError, abort_problem
from clinic.core.pagination import MAX_LIMIT

blp = ConsoleBlueprint("admin_pages", __name__)

#: How each role is named on the pages, and what it may do (the radios' hints).
ROLES: tuple[tuple[str, str, str], ...] = (
    (
        Role.CLINICIAN.value,
        "Clinician",
        "Sees and records the care of the clients of their sites: charts, assessments, plans, medications, "
        "appointments.",
    ),
    (
        Role.INTAKE.value,
        "Intake coordinator",
        "Logs calls, registers clients and books appointments at their sites; no clinical records.",
    ),
    (
        Role.ADMIN.value,
        "Administrator",
        "Manages sites and staff accounts, reads reports and the audit trail; sees no individual client records.",
    ),
)
ROLE_NAMES = {value: label for value, label, _hint in ROLES}

#: The zones of the United States and its territories first, by name; then every other IANA zone.
US_ZONES: tuple[tuple[str, str], ...] = (
    ("America/New_York", "America/New_York (Eastern)"),
    ("America/Chicago", "America/Chicago (Central)"),
    ("America/Denver", "America/Denver (Mountain)"),
    ("America/Phoenix", "America/Phoenix (Mountain, no daylight saving)"),
    ("America/Los_Angeles", "America/Los_Angeles (Pacific)"),
    ("America/Anchorage", "America/Anchorage (Alaska)"),
    ("Pacific/Honolulu", "Pacific/Honolulu (Hawaii)"),
    ("America/Puerto_Rico", "America/Puerto_Rico (Atlantic)"),
    ("Pacific/Guam", "Pacific/Guam (Chamorro)"),
    ("Pacific/Pago_Pago", "Pacific/Pago_Pago (Samoa)"),
)

#: What a form says when a field is left empty (in place of the schema's "Missing data…").
_EMPTY_SITE = {"name": "Enter the site's name.", "timezone": "Choose the site's time zone.",
               "display_name": "Enter the name clients see."}
_EMPTY_USER = {"name": "Enter their full name.", "email": "Enter their email address.", "role": "Choose a role.",
               "password": "Enter a password."}

SITE_LABELS = {"name": "Name", "timezone": "Time zone", "display_name": "Name clients see",
               "is_otp": "Opioid treatment program", "requires_supervisor_signature": "Supervisor signature"}
USER_LABELS = {"name": "Full name", "email": "Email address", "role": "Role", "site_ids": "Sites",
               "is_supervisor": "Clinical supervisor", "password": "Password", "is_active": "Account status"}

#: Refusals that keep administrator rights: the reason is the form's own message, not only the field's.
_ADMIN_RIGHTS_PROBLEMS = frozenset({"own-admin-rights", "last-admin"})


# --- helpers -------------------------------------------------------------------------------------


def _zone_options(current: str | None) -> tuple[list[tuple[str, str]], list[str]]:
    """(the US zones with their names, every other zone): the time zone select's two groups."""
    us = {zone for zone, _label in US_ZONES}
    others = {zone for zone in available_timezones() if "/" in zone or zone == "UTC"} - us
    if current and current not in us:
        others.add(current)
    return list(US_ZONES), sorted(others)


def _all_sites() -> list[Site]:
    """Every site by name, for the sites checkboxes (read a page at a time, as the API lists them)."""
    sites: list[Site] = []
    cursor: str | None = None
    while True:
        chunk = ops.list_sites(limit=MAX_LIMIT, cursor=cursor)
        sites.extend(chunk.items)
        cursor = chunk.next_cursor
        if cursor is None:
            return sorted(sites, key=lambda site: (site.name.lower(), site.id))


def _list_args(prefix: str) -> dict[str, Any]:
    """``limit`` and ``<prefix>_cursor`` of the query, validated as the API's list arguments."""
    raw = {"limit": request.args.get("limit"), "cursor": request.args.get(f"{prefix}_cursor")}
    try:
        loaded: dict[str, Any] = ListArgsSchema().load({k: v for k, v in raw.items() if v not in (None, "")})
    except ValidationError as error:
        messages = FormErrors.from_validation(error)
        abort_problem(422, "The list's page is not valid.", errors={
            (f"{prefix}_cursor" if key == "cursor" else key): value for key, value in messages.items()
        })
    return loaded


def _friendly(errors: FormErrors, values: Mapping[str, Any], empty: Mapping[str, str]) -> FormErrors:
    """A field left empty says what to enter (GOV.UK style) rather than the schema's words.

    An item of a list (``site_ids.0``) is the list's field: its message is shown beside the checkboxes.
    """
    by_field = FormErrors()
    for key, messages in errors.items():
        shown = by_field.setdefault(key.split(".", 1)[0], [])
        shown.extend(message for message in messages if message not in shown)
    errors = by_field
    for field, message in empty.items():
        if field in errors and not str(values.get(field, "") or "").strip():
            errors[field] = [message]
    return errors


def _attempt(operation: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, FormErrors, int]:
    """``attempt``, with the status to answer and, for a refusal that keeps administrator rights, its reason.

    The reason ("You cannot take away your own administrator rights; another administrator can.")
    becomes the form's own message, so the page says why and what to do.
    """
    reasons: list[str] = []
    status: list[int] = []

    def run() -> Any:
        try:
            return operation(*args, **kwargs)
        except APIError as error:
            status.append(error.code or 422)
            if error.problem in _ADMIN_RIGHTS_PROBLEMS and error.detail:
                reasons.append(error.detail)
            raise

    result, errors = attempt(run)
    if errors and reasons:
        errors = FormErrors({"_schema": reasons, **{k: v for k, v in errors.items() if k != "_schema"}})
    return result, errors, (status[0] if errors and status else 422)


def _user_url(user_id: int, **notice: str) -> str:
    return url_for("admin_pages.user", user_id=user_id) + ("?" + urlencode(notice) if notice else "")


def _site_url(site_id: int, **notice: str) -> str:
    return url_for("admin_pages.site", site_id=site_id) + ("?" + urlencode(notice) if notice else "")


# --- home ----------------------------------------------------------------------------------------


@blp.route("/admin", methods=["GET"])
@requires(Permission.SITES_MANAGE, Permission.USERS_MANAGE)
def admin() -> Response:
    """The administrator's home: the sites and the staff accounts, each a page at a time by id."""
    site_args, user_args = _list_args("sites"), _list_args("users")
    sites = ops.list_sites(**site_args)
    users = ops.list_users(**user_args)

    def next_url(prefix: str, cursor: str | None) -> str | None:
        if cursor is None:
            return None
        query = {key: value for key, value in request.args.items() if key != f"{prefix}_cursor"}
        query[f"{prefix}_cursor"] = cursor
        return url_for("admin_pages.admin") + "?" + urlencode(query) + f"#{prefix}"

    def first_url(prefix: str) -> str | None:
        if not request.args.get(f"{prefix}_cursor"):
            return None
        query = {key: value for key, value in request.args.items() if key != f"{prefix}_cursor"}
        return url_for("admin_pages.admin") + ("?" + urlencode(query) if query else "") + f"#{prefix}"

    return page(
        "admin/home.html",
        site_rows=sites.items, site_count=ops.count_sites(), sites_next=next_url("sites", sites.next_cursor),
        sites_first=first_url("sites"),
        user_rows=users.items, user_count=ops.count_users(), users_next=next_url("users", users.next_cursor),
        users_first=first_url("users"),
        role_names=ROLE_NAMES,
    )


# --- sites ---------------------------------------------------------------------------------------


def _site_form(*, site: Site | None, values: Mapping[str, Any], errors: FormErrors, status: int = 200) -> Response:
    us_zones, other_zones = _zone_options(values.get("timezone"))
    return page(
        "admin/site.html", status=status, site=site, values=values, errors=errors, labels=SITE_LABELS,
        us_zones=us_zones, other_zones=other_zones,
        notice=request.args.get("done") if request.method == "GET" else None,
    )


def _site_values() -> dict[str, Any]:
    """The posted site form, the two checkboxes as true or false (an unticked box is not sent)."""
    values = form_values(drop_empty=False)
    values = {key: value for key, value in values.items() if key in ("name", "timezone", "display_name")}
    for flag in ("is_otp", "requires_supervisor_signature"):
        values[flag] = flag in request.form
    return values


@blp.route("/admin/sites/new", methods=["GET"])
@requires(Permission.SITES_MANAGE)
def new_site() -> Response:
    return _site_form(site=None, values={"timezone": "America/New_York"}, errors=FormErrors())


@blp.route("/admin/sites", methods=["POST"])
@requires(Permission.SITES_MANAGE)
def create_site() -> Response:
    values = _site_values()
    sent = {key: value for key, value in values.items() if not (isinstance(value, str) and not value.strip())}
    data, errors = load_form(SiteSchema(), sent)
    status = 422
    if not errors:
        site, errors, status = _attempt(ops.create_site, **data)
    if errors:
        return _site_form(site=None, values=values, errors=_friendly(errors, values, _EMPTY_SITE), status=status)
    return redirect_to(_site_url(site.id, done="created"))


@blp.route("/admin/sites/<int:site_id>", methods=["GET"])
@requires(Permission.SITES_MANAGE)
def site(site_id: int) -> Response:
    row = ops.get_site_or_404(site_id)
    values = {key: getattr(row, key) for key in ("name", "timezone", "display_name", "is_otp",
                                                 "requires_supervisor_signature")}
    return _site_form(site=row, values=values, errors=FormErrors())


@blp.route("/admin/sites/<int:site_id>", methods=["POST"])
@requires(Permission.SITES_MANAGE)
def update_site(site_id: int) -> Response:
    row = ops.get_site_or_404(site_id)
    values = _site_values()
    data, errors = load_form(SitePatchSchema(), values)
    status = 422
    if not errors:
        # Only what the form changed, so the audit trail names the fields that were changed.
        changes = {key: value for key, value in data.items()
                   if (value.strip() if isinstance(value, str) else value) != getattr(row, key)}
        if not changes:
            return redirect_to(_site_url(row.id, done="unchanged"))
        _result, errors, status = _attempt(ops.update_site, row, changes)
    if errors:
        return _site_form(site=row, values=values, errors=_friendly(errors, values, _EMPTY_SITE), status=status)
    return redirect_to(_site_url(row.id, done="saved"))


# --- users ---------------------------------------------------------------------------------------


def _user_values(*, with_password: bool) -> dict[str, Any]:
    """The posted user form: the sites as ids, the supervisor box as true or false."""
    values = form_values(lists=("site_ids",), drop_empty=False)
    fields = ("name", "email", "role") + (("password",) if with_password else ())
    kept: dict[str, Any] = {key: value for key, value in values.items() if key in fields}
    kept["site_ids"] = [as_number(item) for item in values.get("site_ids", [])]
    kept["is_supervisor"] = "is_supervisor" in request.form
    return kept


def _user_form_context(values: Mapping[str, Any]) -> dict[str, Any]:
    return {"roles": ROLES, "site_options": [(site.id, site.name) for site in _all_sites()],
            "values": values, "labels": USER_LABELS}


@blp.route("/admin/users/new", methods=["GET"])
@requires(Permission.USERS_MANAGE)
def new_user() -> Response:
    return page("admin/new_user.html", errors=FormErrors(), **_user_form_context({"site_ids": []}))


@blp.route("/admin/users", methods=["POST"])
@requires(Permission.USERS_MANAGE)
def create_user() -> Response:
    values = _user_values(with_password=True)
    sent = {key: value for key, value in values.items() if not (isinstance(value, str) and not value.strip())}
    data, errors = load_form(UserCreateSchema(), sent)
    status = 422
    if not errors:
        user, errors, status = _attempt(ops.create_user, **data)
    if errors:
        shown = {key: value for key, value in values.items() if key != "password"}  # a password is never echoed
        return page("admin/new_user.html", status=status, errors=_friendly(errors, values, _EMPTY_USER),
                    **_user_form_context(shown))
    return redirect_to(_user_url(user.id, done="created"))


def _user_page(
    row: User,
    *,
    values: Mapping[str, Any] | None = None,
    errors: FormErrors | None = None,
    password_errors: FormErrors | None = None,
    refusal: str | None = None,
    status: int = 200,
) -> Response:
    current = {"name": row.name, "email": row.email, "role": row.role.value, "site_ids": row.site_ids,
               "is_supervisor": row.is_supervisor}
    zone = row.sites[0].timezone if row.sites else None
    return page(
        "admin/user.html", status=status, user=row, zone=zone, errors=errors or FormErrors(),
        password_errors=password_errors or FormErrors(), refusal=refusal, role_names=ROLE_NAMES,
        is_self=row.id == authenticated_user().id,
        notice=request.args.get("done") if request.method == "GET" else None,
        **_user_form_context(values if values is not None else current),
    )


@blp.route("/admin/users/<int:user_id>", methods=["GET"])
@requires(Permission.USERS_MANAGE)
def user(user_id: int) -> Response:
    return _user_page(ops.get_user_or_404(user_id))


@blp.route("/admin/users/<int:user_id>", methods=["POST"])
@requires(Permission.USERS_MANAGE)
def update_user(user_id: int) -> Response:
    row = ops.get_user_or_404(user_id)
    values = _user_values(with_password=False)
    data, errors = load_form(UserPatchSchema(), values)
    status = 422
    if not errors:
        current = {"name": row.name, "email": row.email, "role": row.role, "site_ids": sorted(row.site_ids),
                   "is_supervisor": row.is_supervisor}
        wanted = {**data, "site_ids": sorted(set(data["site_ids"]))}
        if "email" in wanted:
            wanted["email"] = ops.normalise_email(wanted["email"])
        if "name" in wanted:
            wanted["name"] = wanted["name"].strip()
        # Only what the form changed: the audit trail names those fields, and an unchanged role is no demotion.
        changes = {key: data[key] for key, value in wanted.items() if current.get(key) != value}
        if not changes:
            return redirect_to(_user_url(row.id, done="unchanged"))
        _result, errors, status = _attempt(ops.update_user, row, changes, actor=authenticated_user())
    if errors:
        return _user_page(row, values=values, errors=_friendly(errors, values, _EMPTY_USER), status=status)
    return redirect_to(_user_url(row.id, done="saved"))


@blp.route("/admin/users/<int:user_id>/active", methods=["POST"])
@requires(Permission.USERS_MANAGE)
def set_active(user_id: int) -> Response:
    """Disable (every session and token ends at once) or enable the account: ``PATCH {is_active}``."""
    row = ops.get_user_or_404(user_id)
    wanted = request.form.get("is_active")
    if wanted not in ("true", "false"):
        abort_problem(422, "Choose to disable or enable the account.", errors={"is_active": ["Not true or false."]})
    active = wanted == "true"
    if active == row.is_active:
        return redirect_to(_user_url(row.id, done="unchanged"))
    _result, errors, status = _attempt(ops.update_user, row, {"is_active": active}, actor=authenticated_user())
    if errors:
        reason = " ".join(errors.get("_schema") or [m for messages in errors.values() for m in messages])
        return _user_page(row, refusal=reason, status=status)
    return redirect_to(_user_url(row.id, done="enabled" if active else "disabled"))


@blp.route("/admin/users/<int:user_id>/password", methods=["POST"])
@requires(Permission.USERS_MANAGE)
def reset_password(user_id: int) -> Response:
    """Set a new password (``PATCH {password}``): the policy applies, every session and token ends."""
    row = ops.get_user_or_404(user_id)
    values = {"password": request.form.get("password", "")}
    sent = values if values["password"] else {}
    data, errors = load_form(UserPatchSchema(), sent)
    if not errors and "password" not in data:
        errors = FormErrors({"password": ["Enter a password."]})
    status = 422
    if not errors:
        _result, errors, status = _attempt(ops.update_user, row, {"password": data["password"]},
                                           actor=authenticated_user())
    if errors:
        return _user_page(row, password_errors=_friendly(errors, values, {"password": "Enter a new password."}),
                          status=status)
    return redirect_to(_user_url(row.id, done="password"))
