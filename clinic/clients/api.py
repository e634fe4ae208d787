"""HTTP endpoints: clients, episodes of care, consents and the client timeline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask_smorest import Blueprint

from clinic.auth.permissions import Permission, authenticated_user, get_scoped_or_404, require_site_in_scope, requires
from clinic.clients import disclosures
from clinic.clients import operations as ops
from clinic.clients.loaders import load_client
from clinic.clients.models import Client, Consent, ConsentKind, Disclosure, Episode
from clinic.clients.schemas import (
    ClientCreateSchema,
    ClientPageSchema,
    ClientPatchSchema,
    ClientQuerySchema,
    ClientSchema,
    ConsentCreateSchema,
    ConsentListSchema,
    ConsentSchema,
    DischargeSchema,
    DisclosureCreateSchema,
    DisclosureListSchema,
    DisclosureSchema,
    DuplicateArgsSchema,
    EpisodeCreateSchema,
    EpisodeListSchema,
    EpisodeSchema,
    TimelineSchema,
)
from clinic.core.signals import client_dosing, values_from
from clinic.extensions import links

blp = Blueprint(
    "clients", __name__, url_prefix="/api/v1", description="Clients, episodes of care, consents and disclosures"
)


#: What can be done with a client just registered (the links of its 201).
_CLIENT_OPERATIONS = (
    "clients.get_client",
    "clients.update_client",
    "clients.admit",
    "clients.list_episodes",
    "clients.create_consent",
    "clients.list_consents",
    "clients.create_disclosure",
    "clients.list_disclosures",
    "clients.timeline",
    "assessments.create_assessment",
    "assessments.list_assessments",
    "assessments.assessment_trend",
    "plans.create_plan",
    "plans.list_plans",
    "plans.plan_suggestions",
    "plans.list_medications",
    "plans.record_screen",
    "plans.list_screens",
    "notify.get_notification_preferences",
    "notify.put_notification_preferences",
)


@blp.route("/clients", methods=["POST"])
@requires(Permission.CLIENTS_WRITE)
@blp.arguments(ClientCreateSchema)
@blp.arguments(DuplicateArgsSchema, location="query")
@blp.response(201, ClientSchema)
@blp.alt_response(409, description="A likely duplicate; `candidates` lists the matches in the caller's sites")
@blp.doc(**links(201, {"client_id": "$response.body#/id"}, *_CLIENT_OPERATIONS))
@blp.doc(**links(201, {}, "scheduling.create_appointment", body={"client_id": "$response.body#/id"}))
def create_client(body: dict[str, Any], args: dict[str, Any]) -> Client:
    """Register a prospective client; the MRN is assigned by clinic."""
    user = authenticated_user()
    require_site_in_scope(body["site_id"], user)
    return ops.register_client(actor=user, allow_duplicate=args["allow_duplicate"], **body)


@blp.route("/clients", methods=["GET"])
@requires(Permission.CLIENTS_READ)
@blp.arguments(ClientQuerySchema, location="query")
@blp.response(200, ClientPageSchema)
def list_clients(args: dict[str, Any]) -> dict[str, Any]:
    """Search clients by name prefix, MRN or phone, alphabetically."""
    return ops.search_clients(authenticated_user(), **args).as_dict()


@blp.route("/clients/<int:client_id>", methods=["GET"])
@requires(Permission.CLIENTS_READ)
@blp.response(200, ClientSchema)
def get_client(client_id: int) -> dict[str, Any]:
    """One client's registration record; for clinical roles, dosing at an OTP (last dose, days missed)."""
    client = load_client(client_id, audit_read=True)
    dosing = values_from(client_dosing, client, user=authenticated_user())
    return {**{column.key: getattr(client, column.key) for column in Client.__table__.columns}, **dict(*dosing[:1])}


@blp.route("/clients/<int:client_id>", methods=["PATCH"])
@requires(Permission.CLIENTS_WRITE)
@blp.arguments(ClientPatchSchema)
@blp.arguments(DuplicateArgsSchema, location="query")
@blp.response(200, ClientSchema)
def update_client(body: dict[str, Any], args: dict[str, Any], client_id: int) -> Client:
    """Change demographics. The MRN, site and record-keeping fields cannot be changed."""
    return ops.update_client(load_client(client_id), body, allow_duplicate=args["allow_duplicate"])


@blp.route("/clients/<int:client_id>/episodes", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
@blp.arguments(EpisodeCreateSchema)
@blp.response(201, EpisodeSchema)
@blp.doc(**links(201, {"episode_id": "$response.body#/id"}, "clients.discharge"))
def admit(body: dict[str, Any], client_id: int) -> Episode:
    """Admit the client to an episode of care (one open episode at a time)."""
    return ops.admit(load_client(client_id), actor=authenticated_user(), **body)


@blp.route("/clients/<int:client_id>/episodes", methods=["GET"])
@requires(Permission.CLINICAL_READ)
@blp.response(200, EpisodeListSchema)
def list_episodes(client_id: int) -> dict[str, Sequence[Episode]]:
    """The client's episodes of care, newest first."""
    return {"items": ops.list_episodes(load_client(client_id))}


@blp.route("/episodes/<int:episode_id>/discharge", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
@blp.arguments(DischargeSchema)
@blp.response(200, EpisodeSchema)
def discharge(body: dict[str, Any], episode_id: int) -> Episode:
    """Discharge the client from the episode with a TEDS reason."""
    episode = get_scoped_or_404(Episode, episode_id, authenticated_user())
    return ops.discharge(
        episode,
        actor=authenticated_user(),
        discharged_on=body["discharged_on"],
        reason_code=body["reason_code"],
        note=body.get("note"),
    )


@blp.route("/clients/<int:client_id>/consents", methods=["POST"])
@requires(Permission.CLIENTS_WRITE)
@blp.arguments(ConsentCreateSchema)
@blp.response(201, ConsentSchema)
@blp.doc(**links(201, {"consent_id": "$response.body#/id"}, "clients.revoke_consent"))
def create_consent(body: dict[str, Any], client_id: int) -> Consent:
    """Record a communication consent or a 42 CFR 2.31 disclosure consent (clinicians)."""
    kind: ConsentKind = body.pop("kind")
    return ops.record_consent(load_client(client_id), actor=authenticated_user(), kind=kind, fields=body)


@blp.route("/clients/<int:client_id>/consents", methods=["GET"])
@requires(Permission.CLIENTS_READ)
@blp.response(200, ConsentListSchema)
def list_consents(client_id: int) -> dict[str, Sequence[Consent]]:
    """The client's consents (intake coordinators see communication consents only)."""
    return {"items": ops.visible_consents(load_client(client_id), authenticated_user())}


@blp.route("/consents/<int:consent_id>/revoke", methods=["POST"])
@requires(Permission.CLIENTS_WRITE)
@blp.response(200, ConsentSchema)
def revoke_consent(consent_id: int) -> Consent:
    """Revoke a consent; it no longer applies from the next request."""
    user = authenticated_user()
    return ops.revoke_consent(ops.get_consent_or_404(consent_id, user), actor=user)


@blp.route("/clients/<int:client_id>/disclosures", methods=["POST"])
@requires(Permission.CLINICAL_WRITE)
@blp.arguments(DisclosureCreateSchema)
@blp.response(201, DisclosureSchema)
@blp.alt_response(403, description="No live consent of this client covers that recipient and purpose")
def create_disclosure(body: dict[str, Any], client_id: int) -> Disclosure:
    """Record a disclosure made under a consent (refused when the consent does not cover it)."""
    return disclosures.record_disclosure(load_client(client_id), actor=authenticated_user(), **body)


@blp.route("/clients/<int:client_id>/disclosures", methods=["GET"])
@requires(Permission.CLINICAL_READ)
@blp.response(200, DisclosureListSchema)
def list_disclosures(client_id: int) -> dict[str, Any]:
    """The accounting of disclosures: date, recipient, description, purpose and consent of each."""
    return {"items": disclosures.accounting(load_client(client_id))}


@blp.route("/clients/<int:client_id>/timeline", methods=["GET"])
@requires(Permission.CLIENTS_READ)
@blp.response(200, TimelineSchema)
def timeline(client_id: int) -> dict[str, Any]:
    """Everything that happened to the client, in time order (clinical entries for clinicians only)."""
    return {"items": ops.client_timeline(load_client(client_id), authenticated_user())}
