"""The bulk export (FHIR Bulk Data Access ``$export``): the request, the worker's NDJSON files, status, expiry.

An administrator kicks an export off (:func:`request_export`); the worker (:func:`run_export`,
through ``clinic.fhir.tasks``) walks every registered :class:`~clinic.fhir.sources.Source` that
produces a requested type, reads its rows in batches (``yield_per``) and writes each resource as
one line of its type's NDJSON file, so memory holds one batch whatever the size of the clinic.
The files live in a folder of their own under ``FHIR_EXPORT_DIR``, named by random tokens; the
job row says which file holds which type. docs/fhir.md ("Bulk export") tells the whole flow.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from flask import current_app
from sqlalchemy import delete, select, update

from clinic.audit.models import Outcome
from clinic.audit.operations import record, record_for_clients
from clinic.auth.models import Site, User
from clinic.core import unit_of_work
from clinic.core.celery import send_after_commit
from clinic.core.time import utcnow
from clinic.extensions import db
from clinic.fhir.labels import NOTICE, NOTICE_EXTENSION_PATH, fhir_base, labelled
from clinic.fhir.models import ExportStatus, FhirExport
from clinic.fhir.sources import Scope, Source, batches, ordered_sources
from clinic.fhir.validate import InvalidResourceError, check

log = logging.getLogger(__name__)

TASK = "clinic.fhir.tasks.run_export"
#: What the files hold (Bulk Data: NDJSON, one resource per line).
NDJSON = "application/fhir+ndjson"
#: ``_outputFormat`` values the Bulk Data IG makes equivalent to NDJSON.
OUTPUT_FORMATS = frozenset({NDJSON, "application/ndjson", "ndjson"})
#: Kick-off parameters of the IG that clinic does not support: refused, or ignored when lenient.
UNSUPPORTED_PARAMETERS = ("_elements", "patient", "includeAssociatedData", "_typeFilter")
#: The file of resources that could not be exported (Bulk Data's ``error`` array).
ERROR_TYPE = "OperationOutcome"
_PROGRESS = "progress.json"

#: A FHIR ``instant``: date, time to the second, and a zone (the R4 datatype's regular expression).
_INSTANT = re.compile(
    r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]{1,9})?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
)


class OutcomeError(Exception):
    """A refusal answered as a FHIR OperationOutcome (the Bulk Data IG's errors), naming the parameter."""

    def __init__(self, status: int, code: str, diagnostics: str, *, expression: str | None = None) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.code = code
        self.diagnostics = diagnostics
        self.expression = expression

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.code, self.diagnostics, expression=self.expression)


def operation_outcome(
    code: str, diagnostics: str, *, severity: str = "error", expression: str | None = None
) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression is not None:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


# --- What can be exported ------------------------------------------------------------------------


def exported_types() -> list[str]:
    """Every resource type the registered sources produce, in the order a client's Bundle lists them."""
    seen: dict[str, None] = {}
    for source in ordered_sources():
        for resource_type in source.produces:
            seen.setdefault(resource_type)
    return list(seen)


# --- Kick-off ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportRequest:
    site_id: int | None
    types: list[str]
    since: datetime | None


def prefer_tokens(header: str | None) -> set[str]:
    """The preferences of a ``Prefer`` header (RFC 7240), lower-cased: ``respond-async``, ``handling=lenient``."""
    tokens = set()
    for part in (header or "").split(","):
        for preference in part.split(";"):
            token = preference.strip().lower().replace(" ", "")
            if token:
                tokens.add(token)
    return tokens


def parse_request(args: dict[str, Any], *, prefer: str | None) -> ExportRequest:
    """The kick-off's parameters checked as the Bulk Data IG asks; a 400 OperationOutcome names the bad one."""
    tokens = prefer_tokens(prefer)
    if "respond-async" not in tokens:
        raise OutcomeError(
            400, "required", "An export runs asynchronously: send `Prefer: respond-async`.", expression="Prefer"
        )
    lenient = "handling=lenient" in tokens
    for name in UNSUPPORTED_PARAMETERS:
        if args.get(name) is not None and not lenient:
            raise OutcomeError(
                400,
                "not-supported",
                f"`{name}` is not supported; send `Prefer: handling=lenient` to have it ignored.",
                expression=name,
            )
    output_format = args.get("_outputFormat")
    if output_format is not None and output_format not in OUTPUT_FORMATS:
        raise OutcomeError(400, "not-supported", f"`_outputFormat` must be {NDJSON}.", expression="_outputFormat")
    return ExportRequest(
        site_id=_site_id(args.get("site_id")),
        types=_types(args.get("_type"), lenient=lenient),
        since=_since(args.get("_since")),
    )


def _site_id(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 9:
        raise OutcomeError(400, "invalid", "`site_id` must be a site's id.", expression="site_id")
    site_id = int(value)
    if db.session.get(Site, site_id) is None:
        raise OutcomeError(404, "not-found", "No such site.", expression="site_id")
    return site_id


def _types(value: str | None, *, lenient: bool) -> list[str]:
    known = exported_types()
    if value is None:
        return known
    asked = [part.strip() for part in value.split(",")]
    if any(not part for part in asked):
        raise OutcomeError(400, "invalid", "`_type` is a comma-separated list of resource types.", expression="_type")
    unknown = [part for part in asked if part not in known]
    if unknown and not lenient:
        raise OutcomeError(
            400,
            "not-supported",
            f"clinic does not export {', '.join(unknown)}; it exports {', '.join(known)}.",
            expression="_type",
        )
    wanted = [resource_type for resource_type in known if resource_type in asked]
    if not wanted:
        raise OutcomeError(
            400,
            "not-supported",
            f"None of the types asked for is exported; clinic exports {', '.join(known)}.",
            expression="_type",
        )
    return wanted


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    # An unencoded "+" of the zone arrives as a space in a query string.
    text = value.strip().replace(" ", "+") if re.search(r"T.* \d\d:\d\d$", value) else value
    if not _INSTANT.fullmatch(text):
        raise OutcomeError(
            400,
            "invalid",
            "`_since` must be a FHIR instant with a time zone, such as 2026-01-31T00:00:00Z.",
            expression="_since",
        )
    # Python reads at most microseconds: a longer fraction is cut to six digits.
    text = re.sub(r"\.([0-9]+)", lambda digits: "." + digits.group(1)[:6].ljust(6, "0"), text)
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise OutcomeError(400, "invalid", "`_since` is not a valid instant.", expression="_since") from None


def request_export(user: User, request: ExportRequest, *, request_url: str) -> FhirExport:
    """Store the export; the worker runs it once the request has committed."""
    job = FhirExport(
        id=secrets.token_urlsafe(32),
        requested_by_id=user.id,
        site_id=request.site_id,
        types=request.types,
        since=request.since,
        request_url=request_url,
        status=ExportStatus.ACCEPTED,
        files=[],
        created_at=utcnow(),
        expires_at=utcnow() + _ttl(),
    )
    db.session.add(job)
    db.session.flush()
    send_after_commit(TASK, job.id)
    record(
        "fhir_export.request", resource="fhir_export", resource_id=job.id, user_id=user.id, details=_scope_details(job)
    )
    return job


def _ttl() -> timedelta:
    return timedelta(hours=int(current_app.config["FHIR_EXPORT_TTL_HOURS"]))


def _scope_details(job: FhirExport) -> dict[str, Any]:
    return {
        "export_id": job.id,
        "site_id": job.site_id,
        "types": list(job.types),
        "since": None if job.since is None else job.since.isoformat(),
    }


# --- The requester's view of an export -----------------------------------------------------------


def own_export_or_404(export_id: str, user: User) -> FhirExport:
    """The caller's own export, while it may still be seen; anyone else's (audited) and a gone one: 404."""
    job = db.session.get(FhirExport, export_id) if len(export_id) <= 64 else None
    if job is not None and job.requested_by_id != user.id:
        record(
            "access.denied",
            resource="fhir_export",
            resource_id=job.id,
            outcome=Outcome.DENIED,
            user_id=user.id,
            details={"reason": "another user's export"},
        )
        job = None
    if job is None or job.status is ExportStatus.CANCELLED or job.expires_at <= utcnow():
        raise OutcomeError(404, "not-found", "No such export (or it expired, or was cancelled).")
    return job


def progress(job: FhirExport) -> str:
    """What the worker has done so far, for ``X-Progress``."""
    if job.status is ExportStatus.ACCEPTED:
        return "accepted, waiting for a worker"
    try:
        state = json.loads((folder_of(job.id) / _PROGRESS).read_text())
    except (OSError, ValueError):
        return "starting"
    return f"{state['resources']} resources written; reading {state['source']} ({state['step']} of {state['steps']})"


def manifest(job: FhirExport, url_of: Callable[[str], str]) -> dict[str, Any]:
    """The Bulk Data completion manifest; ``url_of(file_id)`` is a file's download URL."""
    transaction_time = job.transaction_time or job.created_at

    def item(entry: dict[str, Any]) -> dict[str, Any]:
        return {"type": entry["type"], "url": url_of(entry["id"]), "count": entry["count"]}

    return {
        "transactionTime": transaction_time.isoformat(),
        "request": job.request_url,
        "requiresAccessToken": True,
        "output": [item(entry) for entry in job.files if entry["type"] != ERROR_TYPE],
        "error": [item(entry) for entry in job.files if entry["type"] == ERROR_TYPE],
        # The 42 CFR 2.32 notice travels with the files (every resource in them is labelled too).
        "extension": {fhir_base() + NOTICE_EXTENSION_PATH: NOTICE},
    }


def file_to_serve(job: FhirExport, file_id: str) -> tuple[Path, dict[str, Any]]:
    """A completed export's file on disk and its entry; the download is audited."""
    entry = next((entry for entry in job.files if entry["id"] == file_id), None)
    if job.status is not ExportStatus.COMPLETED or entry is None or not (folder_of(job.id) / entry["name"]).is_file():
        raise OutcomeError(404, "not-found", "No such file (or it expired).")
    path = folder_of(job.id) / entry["name"]
    record(
        "fhir_export.download",
        resource="fhir_export",
        resource_id=job.id,
        user_id=job.requested_by_id,
        details={"type": entry["type"], "file": file_id, "count": entry["count"]},
    )
    return path, entry


def cancel_export(job: FhirExport) -> None:
    """Cancel a pending export, or discard a finished one: its files are deleted once this commits."""
    job.status = ExportStatus.CANCELLED
    job.finished_at = job.finished_at or utcnow()
    job.files = []
    record("fhir_export.cancel", resource="fhir_export", resource_id=job.id, user_id=job.requested_by_id)
    folder = folder_of(job.id)
    # A running worker notices its folder is gone at its next batch and stops.
    unit_of_work.after_commit(lambda: shutil.rmtree(folder, ignore_errors=True))


# --- Files on disk ------------------------------------------------------------------------------


def export_root() -> Path:
    return Path(current_app.config["FHIR_EXPORT_DIR"])


def folder_of(export_id: str) -> Path:
    # The id is a token of URL-safe characters made by us; a path never comes from a request.
    return export_root() / export_id


# --- The worker ---------------------------------------------------------------------------------


class _CancelledError(Exception):
    """The export's folder disappeared: it was cancelled or expired while it ran."""


def run_export(export_id: str) -> str:
    """Run one export (the worker's side, under the export's lock); a second delivery writes nothing twice.

    Returns what happened: ``completed``, ``cancelled``, ``failed`` or ``skipped`` (nothing to do).
    """
    job = db.session.get(FhirExport, export_id)
    if job is None or job.status not in (ExportStatus.ACCEPTED, ExportStatus.RUNNING):
        return "skipped"
    # RUNNING here means an earlier delivery died part-way (the caller holds the lock): start over.
    job.status = ExportStatus.RUNNING
    job.started_at = utcnow()
    job.files = []
    # The claim is committed on its own, so that the status URL says "running" during the export.
    unit_of_work.commit()
    folder = folder_of(export_id)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        job = db.session.get_one(FhirExport, export_id)
        transaction_time = utcnow()
        writer = _Writer(folder, types=list(job.types))
        clients = _ClientSet()
        scope = Scope(site_id=job.site_id, since=job.since)
        writer.write(scope, clients, batch=int(current_app.config["FHIR_EXPORT_BATCH_SIZE"]))
        if not folder.is_dir():
            raise _CancelledError
        # Every client whose record is in the files, one event each, written in chunks.
        record_for_clients(
            "fhir.bulk_export",
            resource="fhir_export",
            client_ids=clients,
            details=_scope_details(job),
            user_id=job.requested_by_id,
        )
        done = db.session.execute(
            update(FhirExport)
            .where(FhirExport.id == export_id, FhirExport.status == ExportStatus.RUNNING)
            .values(
                status=ExportStatus.COMPLETED,
                transaction_time=transaction_time,
                files=writer.entries(),
                resource_count=writer.total,
                finished_at=utcnow(),
                expires_at=utcnow() + _ttl(),
            )
        )
        if not done.rowcount:  # type: ignore[attr-defined]
            raise _CancelledError
    except _CancelledError:
        unit_of_work.rollback()
        shutil.rmtree(folder, ignore_errors=True)
        return "cancelled"
    except Exception as exc:
        log.exception("FHIR bulk export %s failed", export_id)
        unit_of_work.rollback()
        shutil.rmtree(folder, ignore_errors=True)
        db.session.execute(
            update(FhirExport)
            .where(FhirExport.id == export_id, FhirExport.status == ExportStatus.RUNNING)
            .values(status=ExportStatus.FAILED, error=type(exc).__name__, files=[], finished_at=utcnow())
        )
        return "failed"
    (folder / _PROGRESS).unlink(missing_ok=True)
    return "completed"


class _ClientSet:
    """The clients seen, one bit per client id: flat memory (12 kB for 100,000 clients), ids in order."""

    def __init__(self) -> None:
        self.bits = bytearray()

    def add(self, client_id: int) -> None:
        index, bit = divmod(client_id, 8)
        if index >= len(self.bits):
            self.bits.extend(bytes(index - len(self.bits) + 1))
        self.bits[index] |= 1 << bit

    def __iter__(self) -> Iterator[int]:
        for index, byte in enumerate(self.bits):
            if byte:
                for bit in range(8):
                    if byte >> bit & 1:
                        yield index * 8 + bit


@dataclass
class _File:
    id: str
    type: str
    name: str
    handle: IO[bytes]
    count: int = 0
    size: int = 0

    def write(self, resource: dict[str, Any]) -> bytes:
        line = json.dumps(resource, ensure_ascii=False, separators=(",", ":"), default=_json_value).encode() + b"\n"
        self.handle.write(line)
        self.count += 1
        self.size += len(line)
        return line


def _json_value(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


class _Writer:
    """One NDJSON file per requested type, written source by source, batch by batch."""

    def __init__(self, folder: Path, *, types: list[str]) -> None:
        self.folder = folder
        self.types = types
        self.files: dict[str, _File] = {}
        self.total = 0

    def write(self, scope: Scope, clients: _ClientSet, *, batch: int) -> None:
        sources = [source for source in ordered_sources() if set(source.produces) & set(self.types)]
        with ExitStack() as stack:
            for resource_type in [*self.types, ERROR_TYPE]:
                name = f"{secrets.token_urlsafe(16)}.ndjson"
                handle = stack.enter_context((self.folder / name).open("wb"))
                self.files[resource_type] = _File(secrets.token_urlsafe(16), resource_type, name, handle)
            for step, source in enumerate(sources, start=1):
                self._progress(source, step, len(sources))
                for rows in batches(source, scope, batch_size=batch):
                    if not self.folder.is_dir():
                        raise _CancelledError
                    for row in rows:
                        for resource in source.to_fhir(row):
                            self._one(resource, clients)
                    self._progress(source, step, len(sources))
        for entry in self.files.values():
            if not entry.count:
                (self.folder / entry.name).unlink()

    def _one(self, resource: dict[str, Any], clients: _ClientSet) -> None:
        file = self.files.get(str(resource.get("resourceType")))
        if file is None:  # a type the source also makes, not asked for
            return
        try:
            check(resource)
        except InvalidResourceError as invalid:
            # Bulk Data's error file: an OperationOutcome per resource left out, the export goes on. It
            # names the client's resource and may quote its values, so it is labelled as the record is.
            self.files[ERROR_TYPE].write(labelled(operation_outcome("invariant", str(invalid))))
            return
        line = file.write(resource)
        self.total += 1
        client_id = client_of(resource, line)
        if client_id is not None:
            clients.add(client_id)

    def _progress(self, source: Source, step: int, steps: int) -> None:
        state = {"resources": self.total, "source": source.name, "step": step, "steps": steps}
        partial = self.folder / f".{_PROGRESS}"
        try:
            partial.write_text(json.dumps(state))
            partial.replace(self.folder / _PROGRESS)
        except FileNotFoundError:  # the folder was deleted: the next batch stops
            pass

    def entries(self) -> list[dict[str, Any]]:
        return [
            {"id": f.id, "type": f.type, "name": f.name, "count": f.count, "bytes": f.size}
            for f in self.files.values()
            if f.count
        ]


#: Ids are ``patient-<client id>`` and references to them relative (clinic.fhir.sources, "Resource ids").
_PATIENT_ID = re.compile(r"patient-([0-9]+)")
_PATIENT_REFERENCE = re.compile(rb'"reference":"Patient/patient-([0-9]+)"')


def client_of(resource: dict[str, Any], line: bytes) -> int | None:
    """The client a resource is about: the Patient's own id, or the patient its JSON ``line`` references."""
    if resource.get("resourceType") == "Patient":
        found = _PATIENT_ID.fullmatch(str(resource.get("id")))
        return int(found.group(1)) if found else None
    referenced = _PATIENT_REFERENCE.search(line)
    return int(referenced.group(1)) if referenced else None


# --- Expiry --------------------------------------------------------------------------------------


def expire_exports() -> list[str]:
    """Delete expired exports (rows and files, the files once the deletion is committed); returns their ids."""
    now = utcnow()
    expired = list(db.session.scalars(select(FhirExport.id).where(FhirExport.expires_at <= now)))
    if expired:
        db.session.execute(delete(FhirExport).where(FhirExport.id.in_(expired)))
        folders = [folder_of(export_id) for export_id in expired]

        def delete_files() -> None:
            for folder in folders:
                shutil.rmtree(folder, ignore_errors=True)

        unit_of_work.after_commit(delete_files)
    _forget_orphan_folders(now)
    return expired


def _forget_orphan_folders(now: datetime) -> None:
    """Folders no export row names (a worker killed mid-way after its row expired): deleted after a day."""
    root = export_root()
    if not root.is_dir():
        return
    known = set(db.session.scalars(select(FhirExport.id)))
    cutoff = (now - timedelta(days=1)).timestamp()
    for child in root.iterdir():
        if child.is_dir() and child.name not in known and child.stat().st_mtime < cutoff:
            shutil.rmtree(child, ignore_errors=True)


def exports_to_requeue(*, accepted_for_seconds: int = 120) -> list[str]:
    """Exports whose task was lost: accepted a while ago and not begun, or running past their lock."""
    now = utcnow()
    lock = timedelta(seconds=int(current_app.config["FHIR_EXPORT_LOCK_SECONDS"]))
    waiting = (FhirExport.status == ExportStatus.ACCEPTED) & (
        FhirExport.created_at < now - timedelta(seconds=accepted_for_seconds)
    )
    stuck = (FhirExport.status == ExportStatus.RUNNING) & (FhirExport.started_at < now - lock)
    stale = waiting | stuck
    return list(db.session.scalars(select(FhirExport.id).where(stale, FhirExport.expires_at > now)))
