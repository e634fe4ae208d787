"""Settings for clinic, chosen by ``CLINIC_ENV`` and read from the environment.

Every setting is documented in README.md (section Configuration).
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import ClassVar

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = BASE_DIR / "instance"


class ConfigError(RuntimeError):
    """A required setting is missing or invalid."""


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {value!r}") from exc


def _env_int_list(name: str, default: list[int]) -> list[int]:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return list(default)
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError as exc:
        raise ConfigError(f"{name} must be integers separated by commas, got {value!r}") from exc


SMS_BACKENDS = ("console", "file", "twilio")


def _validate_messaging(settings: dict[str, object]) -> None:
    backend = settings.get("SMS_BACKEND")
    if backend not in SMS_BACKENDS:
        raise ConfigError(f"SMS_BACKEND must be one of {', '.join(SMS_BACKENDS)}, got {backend!r}")
    if backend == "twilio":
        missing = [name for name in ("SMS_ACCOUNT_SID", "SMS_AUTH_TOKEN", "SMS_FROM") if not settings.get(name)]
        if missing:
            raise ConfigError(f"SMS_BACKEND=twilio needs {', '.join(missing)}")
    quiet = str(settings.get("REMINDER_QUIET_HOURS", ""))
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d", quiet):
        raise ConfigError(f"REMINDER_QUIET_HOURS must look like 21:00-08:00, got {quiet!r}")
    leads = settings.get("REMINDER_LEAD_TIMES_MINUTES")
    if not isinstance(leads, list) or not all(isinstance(n, int) and 1 <= n <= 20160 for n in leads):
        raise ConfigError("REMINDER_LEAD_TIMES_MINUTES must be minutes between 1 and 20160")


def _validate_tuning(settings: dict[str, object]) -> None:
    work_mem = str(settings.get("REPORT_WORK_MEM", ""))
    # PostgreSQL's memory units; a bad value would fail every report instead of the start-up.
    if not re.fullmatch(r"[1-9]\d{0,6}(kB|MB|GB)", work_mem):
        raise ConfigError(f"REPORT_WORK_MEM must be a size such as 64MB (kB, MB or GB), got {work_mem!r}")
    for name in ("REMINDER_BATCH_SIZE", "REMINDER_SEND_CHUNK"):
        value = settings.get(name)
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a whole number of at least 1, got {value!r}")
    for name in ("SAFETY_ALERT_ESCALATE_HOURS", "SAFETY_ALERT_ESCALATE_CHECK_SECONDS"):
        value = settings.get(name)
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a whole number of at least 1, got {value!r}")


def _anchor_target(value: str) -> str:
    """``file:<path>`` with a relative path resolved against the project root, ``log``, or the default file."""
    value = value.strip() or f"file:{INSTANCE_DIR / 'audit-anchors.jsonl'}"
    if value.startswith("file:"):
        path = Path(value.removeprefix("file:"))
        if str(path) not in ("", "."):
            return f"file:{path if path.is_absolute() else BASE_DIR / path}"
    return value


def _validate_audit(settings: dict[str, object]) -> None:
    if not settings.get("AUDIT_CHAIN_KEY"):
        raise ConfigError("AUDIT_CHAIN_KEY must be set")
    target = str(settings.get("AUDIT_ANCHOR_TARGET", ""))
    if target != "log" and not (target.startswith("file:") and target.removeprefix("file:").strip() not in ("", ".")):
        raise ConfigError(f"AUDIT_ANCHOR_TARGET must be file:<path> or log, got {target!r}")
    hour = settings.get("AUDIT_ANCHOR_HOUR_UTC")
    if not isinstance(hour, int) or not 0 <= hour <= 23:
        raise ConfigError(f"AUDIT_ANCHOR_HOUR_UTC must be an hour from 0 to 23, got {hour!r}")


def _database_url() -> str:
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{INSTANCE_DIR / 'clinic.db'}"
    # Relative SQLite paths are resolved against the project root, not the working directory.
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        relative = url.removeprefix("sqlite:///")
        if relative and relative != ":memory:":
            url = f"sqlite:///{BASE_DIR / relative}"
    # Plain postgresql:// URLs use psycopg 3, the driver the lock file installs.
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgres://")
    return url


class Config:
    """Settings shared by every environment."""

    ENV_NAME = "base"
    TESTING = False
    SECRET_KEY = os.environ.get("SECRET_KEY", "")

    SQLALCHEMY_DATABASE_URI = _database_url()
    #: Connections are recycled hourly; one idle longer than DATABASE_PING_AFTER_IDLE_SECONDS is pinged
    #: before use (clinic/extensions.py), so a busy pool spends no round trip per request on a ping.
    #: ``hide_parameters``: a statement's parameters (client data) never appear in an error's message.
    SQLALCHEMY_ENGINE_OPTIONS: ClassVar[dict[str, object]] = {"pool_recycle": 3600, "hide_parameters": True}
    DATABASE_PING_AFTER_IDLE_SECONDS = _env_int("DATABASE_PING_AFTER_IDLE_SECONDS", 10)
    REDIS_URL = os.environ.get("REDIS_URL", "")

    # Sessions (HIPAA 164.312(a)(2)(iii) automatic logoff).
    AUTH_COOKIE_NAME = "clinic_session"
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = True
    SESSION_IDLE_TIMEOUT = timedelta(minutes=_env_int("SESSION_IDLE_MINUTES", 15))
    SESSION_ABSOLUTE_TIMEOUT = timedelta(hours=_env_int("SESSION_ABSOLUTE_HOURS", 12))
    API_TOKEN_DEFAULT_DAYS = _env_int("API_TOKEN_DEFAULT_DAYS", 90)
    API_TOKEN_MAX_DAYS = 365

    PASSWORD_HASH_PROFILE = "rfc9106_low_memory"  # noqa: S105 - a parameter set name

    # Brute-force protection.
    LOGIN_LOCKOUT_THRESHOLD = 10
    LOGIN_LOCKOUT_WINDOW = timedelta(minutes=15)
    LOGIN_LOCKOUT_DURATION = timedelta(minutes=15)
    LOGIN_RATE_LIMIT = os.environ.get("LOGIN_RATE_LIMIT", "30 per minute")
    RATELIMIT_ENABLED = _env_bool("RATELIMIT_ENABLED", True)
    RATELIMIT_STORAGE_URI = REDIS_URL or "memory://"
    RATELIMIT_HEADERS_ENABLED = True
    #: Number of reverse proxies in front of the app whose X-Forwarded-For is trusted.
    TRUSTED_PROXIES = _env_int("TRUSTED_PROXIES", 0)

    # HTTP security headers.
    HSTS_ENABLED = True
    #: Largest request body in bytes; a larger one is refused (413) before it is read.
    MAX_CONTENT_LENGTH = _env_int("MAX_CONTENT_LENGTH", 1024 * 1024)
    #: Hours the answer to a POST sent with an Idempotency-Key is kept to answer its repeats.
    IDEMPOTENCY_KEY_HOURS = _env_int("IDEMPOTENCY_KEY_HOURS", 24)

    # OpenAPI (flask-smorest).
    API_TITLE = "clinic"
    API_VERSION = "v1"
    OPENAPI_VERSION = "3.1.0"
    OPENAPI_URL_PREFIX = "/"
    OPENAPI_JSON_PATH = "api/v1/openapi.json"
    OPENAPI_SWAGGER_UI_PATH = "api/docs"
    #: Served by clinic from the pinned flask-swagger-ui package (clinic/system/docs_assets.py): no CDN.
    OPENAPI_SWAGGER_UI_URL = os.environ.get("OPENAPI_SWAGGER_UI_URL", "/api/docs/assets/")
    #: No online validator badge: Swagger UI would send the spec's address to validator.swagger.io.
    OPENAPI_SWAGGER_UI_CONFIG: ClassVar[dict[str, object]] = {"validatorUrl": None}
    API_SPEC_OPTIONS: ClassVar[dict[str, object]] = {
        "info": {
            "description": "Case management for outpatient opioid-addiction treatment programs.",
        },
    }

    # Celery: Redis when REDIS_URL is set, otherwise an embedded file-system broker.
    CELERY_BROKER_URL = REDIS_URL or "filesystem://"
    CELERY_DATA_DIR = os.environ.get("CELERY_DATA_DIR", str(INSTANCE_DIR / "broker"))
    HEARTBEAT_INTERVAL_SECONDS = _env_int("HEARTBEAT_INTERVAL_SECONDS", 60)
    #: How often the worker seals new audit events into the hash chain.
    AUDIT_SEAL_INTERVAL_SECONDS = _env_int("AUDIT_SEAL_INTERVAL_SECONDS", 10)
    #: Key of the audit chain's HMAC (docs/security.md): required in production, never stored in the database.
    AUDIT_CHAIN_KEY = os.environ.get("AUDIT_CHAIN_KEY", "")
    #: Retired audit chain keys, separated by commas: they only verify the entries they sealed.
    AUDIT_CHAIN_KEYS = os.environ.get("AUDIT_CHAIN_KEYS", "")
    #: Where the chain's head is anchored: "file:<path>" (appended JSON lines) or "log".
    AUDIT_ANCHOR_TARGET = _anchor_target(os.environ.get("AUDIT_ANCHOR_TARGET", ""))
    #: Hour (UTC) of the daily job that anchors the audit chain's head.
    AUDIT_ANCHOR_HOUR_UTC = _env_int("AUDIT_ANCHOR_HOUR_UTC", 1)

    PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000")

    # Email (SMTP). Without MAIL_SERVER messages are logged instead of sent.
    MAIL_SERVER = os.environ.get("MAIL_SERVER", "")
    MAIL_PORT = _env_int("MAIL_PORT", 25)
    MAIL_USERNAME = os.environ.get("MAIL_USERNAME", "")
    MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD", "")
    MAIL_USE_TLS = _env_bool("MAIL_USE_TLS", False)
    MAIL_DEFAULT_SENDER = os.environ.get("MAIL_DEFAULT_SENDER", "clinic <no-reply@clinic.invalid>")
    MAIL_TIMEOUT_SECONDS = _env_int("MAIL_TIMEOUT_SECONDS", 10)
    STAFF_EMAIL_MAX_ATTEMPTS = _env_int("STAFF_EMAIL_MAX_ATTEMPTS", 8)
    #: A staff email claimed this long ago and not finished was lost with its worker: resend.
    STAFF_EMAIL_STUCK_AFTER_SECONDS = 600
    #: Days a report run's stored result is kept for download.
    REPORT_RUN_RETENTION_DAYS = _env_int("REPORT_RUN_RETENTION_DAYS", 7)
    #: PostgreSQL work_mem for report queries only (their transaction), so big sorts stay in memory.
    REPORT_WORK_MEM = os.environ.get("REPORT_WORK_MEM", "64MB")
    #: Hour (UTC) of the daily job that alerts clinicians of overdue plan reviews.
    PLAN_REVIEW_ALERT_HOUR_UTC = _env_int("PLAN_REVIEW_ALERT_HOUR_UTC", 12)
    #: A safety alert nobody acknowledged within this many hours is sent once more (DOMAIN.md, "Safety alerts").
    SAFETY_ALERT_ESCALATE_HOURS = _env_int("SAFETY_ALERT_ESCALATE_HOURS", 4)
    #: How often beat looks for safety alerts to escalate.
    SAFETY_ALERT_ESCALATE_CHECK_SECONDS = _env_int("SAFETY_ALERT_ESCALATE_CHECK_SECONDS", 300)
    #: Region for phone numbers written without a country code (ISO 3166 alpha-2).
    DEFAULT_PHONE_REGION = os.environ.get("DEFAULT_PHONE_REGION", "US")

    # Text messages (docs/reminders.md): console (log), file (JSON lines) or twilio (its HTTP API).
    SMS_BACKEND = os.environ.get("SMS_BACKEND", "console")
    SMS_FILE_PATH = os.environ.get("SMS_FILE_PATH", str(INSTANCE_DIR / "sms.jsonl"))
    #: Sender number (E.164) or, for Twilio, a Messaging Service SID ("MG...").
    SMS_FROM = os.environ.get("SMS_FROM", "")
    SMS_ACCOUNT_SID = os.environ.get("SMS_ACCOUNT_SID", "")
    #: Authenticates requests to the provider and the signature of its webhooks to clinic.
    SMS_AUTH_TOKEN = os.environ.get("SMS_AUTH_TOKEN", "")
    #: Base URL of the Twilio-compatible REST API.
    SMS_API_URL = os.environ.get("SMS_API_URL", "https://api.twilio.com")
    SMS_TIMEOUT_SECONDS = _env_int("SMS_TIMEOUT_SECONDS", 10)

    # Client reminders (docs/reminders.md).
    REMINDER_LEAD_TIMES_MINUTES = _env_int_list("REMINDER_LEAD_TIMES_MINUTES", [2880, 120])
    #: Default quiet hours "HH:MM-HH:MM" in the client's zone; a client's preferences override them.
    REMINDER_QUIET_HOURS = os.environ.get("REMINDER_QUIET_HOURS", "21:00-08:00")
    #: How often beat claims due reminders and hands them to send tasks.
    REMINDER_DISPATCH_SECONDS = _env_int("REMINDER_DISPATCH_SECONDS", 60)
    #: Claims per dispatch: 1,000 a minute is 60,000 reminders an hour.
    REMINDER_BATCH_SIZE = _env_int("REMINDER_BATCH_SIZE", 1000)
    #: Claims per send task: they share one SMTP connection and a few reads.
    REMINDER_SEND_CHUNK = _env_int("REMINDER_SEND_CHUNK", 20)
    REMINDER_MAX_ATTEMPTS = _env_int("REMINDER_MAX_ATTEMPTS", 6)
    #: Backoff after a transient failure: base * 2**(attempt - 1) seconds, at most the maximum.
    REMINDER_RETRY_BASE_SECONDS = _env_int("REMINDER_RETRY_BASE_SECONDS", 60)
    REMINDER_RETRY_MAX_SECONDS = _env_int("REMINDER_RETRY_MAX_SECONDS", 1800)
    #: A claimed reminder not finished after this long lost its task (worker killed, broker emptied).
    REMINDER_STUCK_AFTER_SECONDS = _env_int("REMINDER_STUCK_AFTER_SECONDS", 600)

    # Medication safety (docs/medications.md; state rules may be stricter). Doses in mg per day,
    # naltrexone XR per injection. Above a usual maximum an override_reason is needed; above an
    # absolute maximum the order is always refused.
    MED_BUPRENORPHINE_USUAL_MAX_MG = _env_int("MED_BUPRENORPHINE_USUAL_MAX_MG", 24)
    MED_BUPRENORPHINE_ABSOLUTE_MAX_MG = _env_int("MED_BUPRENORPHINE_ABSOLUTE_MAX_MG", 32)
    MED_METHADONE_USUAL_MAX_MG = _env_int("MED_METHADONE_USUAL_MAX_MG", 200)
    MED_METHADONE_ABSOLUTE_MAX_MG = _env_int("MED_METHADONE_ABSOLUTE_MAX_MG", 400)
    #: 42 CFR 8.12(h): the first day's methadone.
    MED_METHADONE_FIRST_DAY_MAX_MG = _env_int("MED_METHADONE_FIRST_DAY_MAX_MG", 50)
    MED_NALTREXONE_ORAL_USUAL_MAX_MG = _env_int("MED_NALTREXONE_ORAL_USUAL_MAX_MG", 100)
    MED_NALTREXONE_ORAL_ABSOLUTE_MAX_MG = _env_int("MED_NALTREXONE_ORAL_ABSOLUTE_MAX_MG", 150)
    MED_NALTREXONE_XR_MAX_MG = _env_int("MED_NALTREXONE_XR_MAX_MG", 380)
    #: Days one naltrexone XR injection covers, from the day it is given.
    MED_NALTREXONE_XR_COVERAGE_DAYS = _env_int("MED_NALTREXONE_XR_COVERAGE_DAYS", 28)
    #: Buprenorphine induction: a COWS of at least this, administered this many hours before the first dose.
    MED_INDUCTION_MIN_COWS = _env_int("MED_INDUCTION_MIN_COWS", 8)
    MED_INDUCTION_COWS_WINDOW_HOURS = _env_int("MED_INDUCTION_COWS_WINDOW_HOURS", 24)
    #: Naltrexone washout: days after an opioid-positive screen or the end of buprenorphine, and of methadone.
    MED_NALTREXONE_WASHOUT_DAYS = _env_int("MED_NALTREXONE_WASHOUT_DAYS", 7)
    MED_NALTREXONE_WASHOUT_METHADONE_DAYS = _env_int("MED_NALTREXONE_WASHOUT_METHADONE_DAYS", 14)

    # Overdose prevention (docs/overdose.md).
    #: A client "holds naloxone" with a dispense in this many days up to the day counted (DOMAIN.md).
    NALOXONE_LOOKBACK_DAYS = _env_int("NALOXONE_LOOKBACK_DAYS", 365)
    #: The most units (sprays, syringes) one naloxone dispense may record; more is a typing mistake.
    NALOXONE_MAX_QUANTITY = _env_int("NALOXONE_MAX_QUANTITY", 24)

    # OTP dosing and take-homes (docs/dosing.md; 42 CFR 8.12(i), 21 CFR 1304.24).
    #: Take-home supply by day in treatment (days since the open episode's admission): from the
    #: first day of a pair on, up to its number of daily doses (days 0-14: 7; 15-30: 14; 31 on: 28).
    DOSING_TAKE_HOME_LIMITS: tuple[tuple[int, int], ...] = ((0, 7), (15, 14), (31, 28))
    #: A take-home needs a review of the 8.12(i)(2) criteria recorded within this many days.
    DOSING_TAKE_HOME_REVIEW_VALID_DAYS = _env_int("DOSING_TAKE_HOME_REVIEW_VALID_DAYS", 90)
    #: Consecutive days with no observed dose and no take-home covering them that raise an alert.
    DOSING_MISSED_DOSE_ALERT_DAYS = _env_int("DOSING_MISSED_DOSE_ALERT_DAYS", 3)
    #: How often beat looks for missed doses (each site's local yesterday; one alert per run of days).
    DOSING_MISSED_DOSE_CHECK_SECONDS = _env_int("DOSING_MISSED_DOSE_CHECK_SECONDS", 3600)

    # FHIR bulk export (docs/fhir.md "Bulk export").
    #: Where the worker writes the NDJSON files of bulk exports (one folder per export); the web
    #: process serves them from here, so both must see the same folder.
    FHIR_EXPORT_DIR = os.environ.get("FHIR_EXPORT_DIR", str(INSTANCE_DIR / "fhir-exports"))
    #: Hours an export's files may be downloaded after it completed; then they are deleted.
    FHIR_EXPORT_TTL_HOURS = _env_int("FHIR_EXPORT_TTL_HOURS", 24)
    #: Rows read per batch (``yield_per``): memory is bounded by one batch, whatever the data.
    FHIR_EXPORT_BATCH_SIZE = _env_int("FHIR_EXPORT_BATCH_SIZE", 500)
    #: How long one export may hold its lock: a delivery of its task after this starts it over.
    FHIR_EXPORT_LOCK_SECONDS = _env_int("FHIR_EXPORT_LOCK_SECONDS", 6 * 3600)

    # FHIR export of records (docs/fhir.md).
    #: The FHIR base URL: Bundle entries' fullUrl and clinic's own canonical URLs (its code systems,
    #: the notice's extension) start with it. Empty: PUBLIC_BASE_URL + "/api/v1/fhir".
    FHIR_BASE_URL = os.environ.get("FHIR_BASE_URL", "")
    #: The identifier system of the program's MRNs in exported Patients (a URI the program owns).
    #: Empty: the FHIR base URL + "/sid/mrn".
    FHIR_IDENTIFIER_SYSTEM = os.environ.get("FHIR_IDENTIFIER_SYSTEM", "")

    @classmethod
    def validate(cls, settings: dict[str, object]) -> None:
        """Refuse to start with settings that are unsafe for this environment."""
        _validate_messaging(settings)
        _validate_tuning(settings)
        _validate_audit(settings)


def development_base_url() -> str:
    """Development: links point where ``make run`` serves (``PORT``), unless PUBLIC_BASE_URL is set."""
    return os.environ.get("PUBLIC_BASE_URL") or f"http://127.0.0.1:{_env_int('PORT', 8000)}"


class DevelopmentConfig(Config):
    ENV_NAME = "development"
    SECRET_KEY = os.environ.get("SECRET_KEY") or "development-only-not-secret"
    PUBLIC_BASE_URL = development_base_url()
    #: A fixed key, so that the worker, the web process and the CLI agree across restarts.
    AUDIT_CHAIN_KEY = os.environ.get("AUDIT_CHAIN_KEY") or "development-only-audit-chain-key"
    SESSION_COOKIE_SECURE = False
    HSTS_ENABLED = False


class TestingConfig(Config):
    ENV_NAME = "testing"
    TESTING = True
    SECRET_KEY = os.environ.get("SECRET_KEY") or "testing-only-not-secret"
    AUDIT_CHAIN_KEY = os.environ.get("AUDIT_CHAIN_KEY") or "testing-only-audit-chain-key"
    #: Tests that anchor name a file of their own; the default file belongs to the development database.
    AUDIT_ANCHOR_TARGET = "log"
    SQLALCHEMY_DATABASE_URI = os.environ.get("TEST_SQLALCHEMY_URI", "sqlite://")
    SESSION_COOKIE_SECURE = False
    RATELIMIT_STORAGE_URI = "memory://"
    CELERY_BROKER_URL = "memory://"
    PASSWORD_HASH_PROFILE = "cheapest"  # noqa: S105 - a parameter set name
    #: Tests sign in hundreds of times from one address; the limit itself is tested on its own.
    LOGIN_RATE_LIMIT = "100000 per minute"
    SMS_BACKEND = "console"
    SMS_AUTH_TOKEN = "testing-sms-token"  # noqa: S105 - signs the tests' fake provider webhooks


class ProductionConfig(Config):
    ENV_NAME = "production"

    @classmethod
    def validate(cls, settings: dict[str, object]) -> None:
        super().validate(settings)
        secret = settings.get("SECRET_KEY")
        if not isinstance(secret, str) or len(secret) < 32:
            raise ConfigError("SECRET_KEY must be set to at least 32 random characters in production")
        chain_key = settings.get("AUDIT_CHAIN_KEY")
        if not isinstance(chain_key, str) or len(chain_key) < 32:
            raise ConfigError("AUDIT_CHAIN_KEY must be set to at least 32 random characters in production")
        if chain_key == secret:
            # Whoever learns the session-signing key must not also be able to rewrite the audit chain.
            raise ConfigError("AUDIT_CHAIN_KEY must differ from SECRET_KEY")


CONFIGS: dict[str, type[Config]] = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def config_for(env_name: str | None = None) -> type[Config]:
    """Return the settings class named by ``env_name`` or ``CLINIC_ENV`` (default development)."""
    name = (env_name or os.environ.get("CLINIC_ENV") or "development").strip().lower()
    try:
        return CONFIGS[name]
    except KeyError as exc:
        raise ConfigError(f"CLINIC_ENV must be one of {', '.join(CONFIGS)}, got {name!r}") from exc
