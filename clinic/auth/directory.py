# mypy: disable-error-code="untyped-decorator"
# (flask-smorest is untyped: the same exemption as every api module has in pyproject.toml)
"""The directory: the caller's sites and the clinicians who work there, and each site's zone.

What intake needs to book an appointment (ids, names, zones) without an administrator's rights:
limited to the caller's own sites, and without emails or other sites a clinician works at.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from flask import request
from flask_login import current_user
from flask_smorest import Blueprint
from marshmallow import fields
from sqlalchemy import select

from clinic.auth.models import Role, Site, User, site_memberships
from clinic.auth.permissions import Permission, authenticated_user, requires
from clinic.core.schemas import StrictSchema, WallClockSchema
from clinic.extensions import db, links

blp = Blueprint("directory", __name__, url_prefix="/api/v1", description="Sites and clinicians of the caller's sites")


# --- the directory -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DirectoryClinician:
    id: int
    name: str
    #: The caller's sites the clinician works at (never the others).
    site_ids: list[int]
    is_supervisor: bool


@dataclass(frozen=True)
class Directory:
    sites: Sequence[Site]
    clinicians: list[DirectoryClinician]


def directory_of(user: User) -> Directory:
    """The caller's sites, and the active clinicians of those sites, each by name."""
    own = set(user.site_ids)
    if not own:
        return Directory(sites=[], clinicians=[])
    sites = db.session.scalars(select(Site).where(Site.id.in_(own)).order_by(Site.name, Site.id)).all()
    members = (
        select(site_memberships.c.user_id).where(site_memberships.c.site_id.in_(own)).scalar_subquery()
    )
    clinicians = db.session.scalars(
        select(User)
        .where(User.id.in_(members), User.role == Role.CLINICIAN, User.is_active.is_(True))
        .order_by(User.name, User.id)
    ).all()
    return Directory(
        sites=sites,
        clinicians=[
            DirectoryClinician(
                id=c.id,
                name=c.name,
                site_ids=[site_id for site_id in c.site_ids if site_id in own],
                is_supervisor=c.is_supervisor,
            )
            for c in clinicians
        ],
    )


class DirectorySiteSchema(StrictSchema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    display_name = fields.String(required=True)
    timezone = fields.String(required=True, metadata={"description": "IANA zone; local times of the site are in it."})
    is_otp = fields.Boolean(required=True)


class DirectoryClinicianSchema(StrictSchema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    site_ids = fields.List(
        fields.Integer(), required=True, metadata={"description": "The caller's sites this clinician works at."}
    )
    is_supervisor = fields.Boolean(required=True)


class DirectorySchema(StrictSchema):
    sites = fields.List(fields.Nested(DirectorySiteSchema), required=True)
    clinicians = fields.List(fields.Nested(DirectoryClinicianSchema), required=True)


#: Where to look for free time first (the link of the answer).
_FIRST_SITE_AND_CLINICIAN = {"site_id": "$response.body#/sites/0/id", "clinician_id": "$response.body#/clinicians/0/id"}


@blp.route("/directory", methods=["GET"])
@requires(Permission.SELF)
@blp.response(200, DirectorySchema)
@blp.doc(**links(200, _FIRST_SITE_AND_CLINICIAN, "scheduling.get_availability"))
def get_directory() -> Directory:
    """The caller's sites and their active clinicians (no emails): what is needed to book."""
    return directory_of(authenticated_user())


# --- local times of a site -------------------------------------------------------------------------


def site_zone(site_id: object) -> str | None:
    """The zone of the site a request names (a raw body or query value), if it is one of the caller's."""
    if isinstance(site_id, bool) or not isinstance(site_id, int | str):
        return None
    try:
        ident = int(site_id)
    except ValueError:
        return None
    if not current_user.is_authenticated or ident not in current_user.site_ids:
        return None
    site = db.session.get(Site, ident)
    return site.timezone if site is not None else None


class SiteWallClockSchema(WallClockSchema):
    """Offset-less times are read in the zone of the request's ``site_id`` (one of the caller's sites)."""

    def wall_clock_zone(self, data: Mapping[str, Any]) -> str | None:
        return site_zone(data.get("site_id"))


class RowWallClockSchema(WallClockSchema):
    """Offset-less times are read in the zone of the site of the row the path names (``PATCH /x/{id}``).

    A row of another site, or none, gives no zone: the times then need their offset, so the
    answer is the same whether or not the row exists.
    """

    #: The model of the row the path names (it has a ``site_id``), and the path argument with its id.
    row_model: ClassVar[Any]
    row_argument: ClassVar[str]

    def wall_clock_zone(self, data: Mapping[str, Any]) -> str | None:
        ident = (request.view_args or {}).get(self.row_argument)
        if not isinstance(ident, int):
            return None
        return site_zone(db.session.scalar(select(self.row_model.site_id).where(self.row_model.id == ident)))
