"""clinic: case management for outpatient opioid-addiction treatment programs."""

from __future__ import annotations

import importlib
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from config import config_for


def create_app(env_name: str | None = None, overrides: dict[str, Any] | None = None) -> Flask:
    """Build the application: settings, extensions, blueprints; nothing else."""
    settings = config_for(env_name)
    app = Flask(__name__, static_folder=None, instance_relative_config=False)
    app.config.from_object(settings)
    if overrides:
        app.config.update(overrides)
    settings.validate(app.config)
    if app.config["TRUSTED_PROXIES"]:
        proxies = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)  # type: ignore[method-assign]

    from clinic.console import init_console
    from clinic.console.errors import as_page
    from clinic.core.celery import celery_init_app
    from clinic.core.http import init_request_cycle
    from clinic.extensions import api, configure_engine, db, init_limiter, migrate

    import_models()
    connect_receivers()
    db.init_app(app)
    configure_engine(app)
    migrate.init_app(app, db, directory=str(_migrations_dir()), render_as_batch=True)
    init_limiter(app)

    from clinic.auth.sessions import init_login

    init_login(app)
    from clinic.auth.permissions import enforce_before_request

    app.before_request(enforce_before_request)
    api.init_app(app)
    _document_security(api)
    init_request_cycle(app, present_error=as_page)
    init_console(app)
    celery_init_app(app)
    _register_blueprints(app, api)
    _register_cli(app)
    return app


def import_models() -> None:
    """Import every domain's models so the metadata (and Alembic) sees all tables."""
    import clinic.assessments.models
    import clinic.audit.models
    import clinic.auth.models
    import clinic.clients.models
    import clinic.dosing.models
    import clinic.fhir.models
    import clinic.intake.models
    import clinic.notify.models
    import clinic.overdose.models
    import clinic.plans.models
    import clinic.reports.models
    import clinic.scheduling.models
    import clinic.system.models  # noqa: F401


def connect_receivers() -> None:
    """Import every module that connects receivers to the domain signals (clinic.core.signals)."""
    import clinic.assessments.operations
    import clinic.clients.operations
    import clinic.dosing.operations
    import clinic.intake.operations
    import clinic.notify.panels
    import clinic.notify.reminders
    import clinic.overdose.operations
    import clinic.overdose.summary
    import clinic.plans.medications
    import clinic.plans.operations
    import clinic.plans.screens
    import clinic.plans.summary
    import clinic.scheduling.groups
    import clinic.scheduling.operations  # noqa: F401


def _migrations_dir() -> Any:
    from config import BASE_DIR

    return BASE_DIR / "migrations"


def _register_blueprints(app: Flask, api: Any) -> None:
    from clinic.assessments.api import blp as assessments_blp
    from clinic.audit.api import blp as audit_blp
    from clinic.auth.api import blp as auth_blp
    from clinic.auth.directory import blp as directory_blp
    from clinic.auth.permissions import public
    from clinic.clients.api import blp as clients_blp
    from clinic.dosing.api import blp as dosing_blp
    from clinic.fhir.api import blp as fhir_blp
    from clinic.fhir.bulk_api import blp as fhir_bulk_blp
    from clinic.intake.api import blp as intake_blp
    from clinic.notify.api import blp as notify_blp
    from clinic.notify.link_pages import blp as reminder_links_blp
    from clinic.overdose.api import blp as overdose_blp
    from clinic.plans.api import blp as plans_blp
    from clinic.reports.api import blp as reports_blp
    from clinic.scheduling.api import blp as scheduling_blp
    from clinic.system.api import blp as system_blp
    from clinic.system.docs_assets import blp as docs_assets_blp

    for blueprint in (
        system_blp, auth_blp, directory_blp, intake_blp, clients_blp, assessments_blp, plans_blp, reports_blp,
        scheduling_blp, notify_blp, audit_blp, dosing_blp, overdose_blp, fhir_blp, fhir_bulk_blp,
    ):
        api.register_blueprint(blueprint)
    # The page a reminder's link opens is a web page for clients, not part of the API.
    app.register_blueprint(reminder_links_blp)
    # The staff console: each domain's pages beside its API.
    for module in _CONSOLE_PAGES:
        app.register_blueprint(importlib.import_module(module).blp)
    # Swagger UI's files for the docs page, from a pinned package rather than a CDN.
    app.register_blueprint(docs_assets_blp)
    # The spec and its documentation page are public.
    for endpoint, view in list(app.view_functions.items()):
        if endpoint.startswith("api-docs."):
            app.view_functions[endpoint] = public(_plain_function(view))


#: The console's page modules, one per domain (each a clinic.console.ConsoleBlueprint named ``blp``).
_CONSOLE_PAGES = (
    "clinic.auth.pages",
    "clinic.auth.admin_pages",
    "clinic.intake.pages",
    "clinic.clients.pages",
    "clinic.scheduling.pages",
    "clinic.scheduling.booking_pages",
    "clinic.notify.pages",
    "clinic.today.pages",
    "clinic.assessments.pages",
    "clinic.plans.pages",
    "clinic.plans.medication_pages",
    "clinic.plans.screen_pages",
    "clinic.dosing.pages",
    "clinic.overdose.pages",
    "clinic.reports.pages",
    "clinic.system.audit_pages",
)


def _plain_function(view: Any) -> Any:
    """Wrap a bound method so it can carry a permission declaration."""
    from functools import wraps

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return view(*args, **kwargs)

    return wrapper


def _register_cli(app: Flask) -> None:
    from clinic.audit.cli import audit_cli
    from clinic.auth.cli import users_cli
    from clinic.demo.cli import demo_cli

    app.cli.add_command(users_cli)
    app.cli.add_command(audit_cli)
    app.cli.add_command(demo_cli)


def _document_security(api: Any) -> None:
    from clinic.core.schemas import ProblemSchema

    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})
    api.spec.components.security_scheme("cookieAuth", {"type": "apiKey", "in": "cookie", "name": "clinic_session"})
    from clinic.reports.schemas import ReportDocumentSchema

    api.spec.components.schema("ReportDocument", schema=ReportDocumentSchema)
    del ProblemSchema
