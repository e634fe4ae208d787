"""HTTP endpoints: instruments, assessments, amendments and score trends."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from clinic.assessments import operations as ops
from clinic.assessments.definitions import instruments
from clinic.assessments.models import Assessment
from clinic.assessments.schemas import (
    AmendSchema,
    AssessmentCreateSchema,
    AssessmentPageSchema,
    AssessmentPatchSchema,
    AssessmentQuerySchema,
    AssessmentSchema,
    InstrumentSchema,
    TrendQuerySchema,
    TrendSchema,
)
from clinic.auth.permissions import Permission, authenticated_user, get_scoped_or_404, requires
from clinic.clients.loaders import load_client
from clinic.extensions import links

blp = Blueprint("assessments", __name__, url_prefix="/api/v1", description="Instruments and assessments")


def load_assessment(assessment_id: int, *, audit_read: bool = False) -> Assessment:
    return get_scoped_or_404(Assessment, assessment_id, authenticated_user(), audit_read=audit_read)


#: What can be done with an assessment just recorded or amended (the links of its 201).
_ASSESSMENT_OPERATIONS = (
    "assessments.get_assessment",
    "assessments.update_assessment",
    "assessments.sign_assessment",
    "assessments.amend_assessment",
)


@blp.route("/instruments", methods=["GET"])
@requires(Permission.CLINICAL_READ)
@blp.response(200, InstrumentSchema(many=True))
def list_instruments() -> list[dict[str, Any]]:
    """Every instrument clinic scores: items, allowed answers, bands and flags."""
    return [instrument.describe() for instrument in instruments().values()]


@blp.route("/clients/<int:client_id>/assessments", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
@blp.arguments(AssessmentCreateSchema)
@blp.response(201, AssessmentSchema)
@blp.doc(**links(201, {"assessment_id": "$response.body#/id"}, *_ASSESSMENT_OPERATIONS))
def create_assessment(body: dict[str, Any], client_id: int) -> Assessment:
    """Record a draft assessment; clinic computes the total, severity and flags."""
    return ops.administer(load_client(client_id), actor=authenticated_user(), **body)


@blp.route("/clients/<int:client_id>/assessments", methods=["GET"])
@requires(Permission.CLINICAL_READ)
@blp.arguments(AssessmentQuerySchema, location="query")
@blp.response(200, AssessmentPageSchema)
def list_assessments(args: dict[str, Any], client_id: int) -> dict[str, Any]:
    """The client's assessments, newest first, with scores."""
    return ops.list_for_client(load_client(client_id), **args).as_dict()


@blp.route("/clients/<int:client_id>/assessments/trend", methods=["GET"])
@requires(Permission.CLINICAL_READ)
@blp.arguments(TrendQuerySchema, location="query")
@blp.response(200, TrendSchema)
def assessment_trend(args: dict[str, Any], client_id: int) -> dict[str, Any]:
    """Signed scores of one instrument over time and the change from the first."""
    return ops.trend(load_client(client_id), args["instrument"])


@blp.route("/assessments/<int:assessment_id>", methods=["GET"])
@requires(Permission.CLINICAL_READ)
@blp.response(200, AssessmentSchema)
def get_assessment(assessment_id: int) -> Assessment:
    """One assessment (any revision)."""
    return load_assessment(assessment_id, audit_read=True)


@blp.route("/assessments/<int:assessment_id>", methods=["PATCH"])
@requires(Permission.CLINICAL_WRITE)
@blp.arguments(AssessmentPatchSchema)
@blp.response(200, AssessmentSchema)
@blp.alt_response(409, description="The assessment is signed and cannot change")
def update_assessment(body: dict[str, Any], assessment_id: int) -> Assessment:
    """Correct a draft; signed assessments are immutable."""
    return ops.update_draft(load_assessment(assessment_id), body, actor=authenticated_user())


@blp.route("/assessments/<int:assessment_id>/sign", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
@blp.response(200, AssessmentSchema)
def sign_assessment(assessment_id: int) -> Assessment:
    """Sign a draft; from then on it cannot change."""
    return ops.sign(load_assessment(assessment_id), actor=authenticated_user())


@blp.route("/assessments/<int:assessment_id>/amend", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
@blp.arguments(AmendSchema)
@blp.response(201, AssessmentSchema)
@blp.doc(**links(201, {"assessment_id": "$response.body#/id"}, *_ASSESSMENT_OPERATIONS))
def amend_assessment(body: dict[str, Any], assessment_id: int) -> Assessment:
    """Amend a signed assessment: a new draft version with a reason, linked to the original."""
    return ops.amend(load_assessment(assessment_id), actor=authenticated_user(), **body)
