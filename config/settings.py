"""Settings, driven by the environment (12-factor). Every default runs on one machine with no server.

LOWERDIR_DATA_DIR   where the SQLite database, the evidence store and the broker folder live (./var)
DATABASE_URL        sqlite:///… (default, in the data dir) or postgres://…
CELERY_BROKER_URL   filesystem:// (default, a folder in the data dir), redis://…, amqp://…
DJANGO_SECRET_KEY   required when DJANGO_DEBUG is off; a dev key is generated into the data dir otherwise
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DATA_DIR = Path(os.environ.get("LOWERDIR_DATA_DIR") or BASE_DIR / "var").resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DJANGO_DEBUG")


def _secret_key() -> str:
    key = os.environ.get("DJANGO_SECRET_KEY", "")
    if key:
        return key
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is required when DJANGO_DEBUG is off")
    path = DATA_DIR / "dev-secret-key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "cases",
    "scanner",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "cases.middleware.UploadLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'lowerdir.sqlite3'}",
        conn_max_age=env_int("LOWERDIR_DB_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web and worker write at once: WAL, a busy timeout and IMMEDIATE transactions avoid "database is
    # locked" on concurrent writers. The test database is a file too, so a worker process can see it.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-lowerdir.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- auth -------------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "cases:list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- static files and evidence storage ---------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
MEDIA_ROOT = DATA_DIR / "store"
STORAGES = {
    # Evidence goes through the storage API so an S3-compatible backend can be swapped in.
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {
            "location": MEDIA_ROOT,
            "file_permissions_mode": 0o440,
            "directory_permissions_mode": 0o750,
        },
    },
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- uploads -----------------------------------------------------------------------------------------
LOWERDIR_MAX_UPLOAD_BYTES = env_int("LOWERDIR_MAX_UPLOAD_BYTES", 20 * 1024**3)
FILE_UPLOAD_HANDLERS = ["cases.uploads.HashingUploadHandler"]
# Temporary upload files sit beside the store so that keeping one is a rename, not a copy.
FILE_UPLOAD_TEMP_DIR = DATA_DIR / "tmp"
FILE_UPLOAD_TEMP_DIR.mkdir(exist_ok=True)
FILE_UPLOAD_PERMISSIONS = 0o440

# --- work queue ----------------------------------------------------------------------------------------
BROKER_DIR = DATA_DIR / "broker"
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or "filesystem://"
if CELERY_BROKER_URL.startswith("filesystem://"):
    BROKER_DIR.mkdir(exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR),
        "data_folder_out": str(BROKER_DIR),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.25,  # the folder is polled; a second's default delay on every scan is too much
    }
CELERY_RESULT_BACKEND = None  # the database holds scan state
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("LOWERDIR_SCAN_TIME_LIMIT", 6 * 3600)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 60
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("LOWERDIR_QUEUE", "lowerdir")
# The sweeper re-queues scans that no worker is moving (killed worker, lost message, restarted broker).
LOWERDIR_SWEEP_INTERVAL = env_int("LOWERDIR_SWEEP_INTERVAL", 60)
LOWERDIR_SCAN_STALE_AFTER = env_int("LOWERDIR_SCAN_STALE_AFTER", 300)
LOWERDIR_SCAN_MAX_ATTEMPTS = env_int("LOWERDIR_SCAN_MAX_ATTEMPTS", 5)
# Processes per scan. Celery's prefork children cannot fork pools of their own, so scans run their layers
# in-process by default and parallelism comes from worker concurrency.
LOWERDIR_SCAN_JOBS = env_int("LOWERDIR_SCAN_JOBS", 1)
CELERY_BEAT_SCHEDULE = {
    "sweep-stale-scans": {"task": "scanner.tasks.sweep_stale_scans", "schedule": LOWERDIR_SWEEP_INTERVAL},
    "sweep-stale-exports": {
        "task": "cases.postmortem.tasks.sweep_stale_exports",
        "schedule": LOWERDIR_SWEEP_INTERVAL,
    },
}
# Post-mortem export (docs/postmortem.md). A PDF of a case with more rows than this (findings + timeline
# entries + custody events) renders in a Celery task with progress; smaller ones in the request.
LOWERDIR_POSTMORTEM_INLINE_MAX = env_int("LOWERDIR_POSTMORTEM_INLINE_MAX", 500)
# The default TLP (clear, green, amber, amber+strict or red) and classification printed on every page.
LOWERDIR_POSTMORTEM_TLP = os.environ.get("LOWERDIR_POSTMORTEM_TLP", "amber")
LOWERDIR_POSTMORTEM_CLASSIFICATION = os.environ.get("LOWERDIR_POSTMORTEM_CLASSIFICATION", "Confidential")
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")

# --- REST API ----------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "cases.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": os.environ.get("LOWERDIR_THROTTLE_ANON", "60/min"),
        "user": os.environ.get("LOWERDIR_THROTTLE_USER", "6000/min"),
    },
}

# --- security -----------------------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# No inline script or style anywhere: attacker-controlled strings can never become code.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Lowerdir API",
    "DESCRIPTION": "Incident case management for container-image forensics",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # "status" and "severity" name different choice sets on cases, scans and findings: one enum each.
    "ENUM_NAME_OVERRIDES": {
        "CaseStatusEnum": "cases.models.CaseStatus",
        "CaseSeverityEnum": "cases.models.Severity",
        "ScanStatusEnum": "scanner.models.ScanStatus",
        "TriageStatusEnum": "scanner.models.TriageStatus",
        "FindingSeverityEnum": "cases.api.serializers.FINDING_SEVERITIES",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOWERDIR_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Registry pulls and signature verification (issue 8; docs/registry.md). Host lists are comma-separated
# host[:port]. An empty allow-list allows any host that resolves to public addresses only; hosts on the
# insecure list may be reached over plain HTTP and on private/loopback addresses.
LOWERDIR_REGISTRY_ALLOWLIST = env_list("LOWERDIR_REGISTRY_ALLOWLIST")
LOWERDIR_REGISTRY_INSECURE = env_list("LOWERDIR_REGISTRY_INSECURE")
# Per-registry credentials as JSON {"host[:port]": {"username": "...", "password": "..."}}, from a file
# (LOWERDIR_REGISTRY_CREDENTIALS_FILE, e.g. a mounted secret managed by an admin). Never logged.
LOWERDIR_REGISTRY_CREDENTIALS_FILE = os.environ.get("LOWERDIR_REGISTRY_CREDENTIALS_FILE", "")
# trusted_root.json of a private Sigstore; "" = sigstore's embedded production root, used offline
LOWERDIR_SIGSTORE_TRUSTED_ROOT = os.environ.get("LOWERDIR_SIGSTORE_TRUSTED_ROOT", "")
LOWERDIR_SIGNATURE_IDENTITY = os.environ.get("LOWERDIR_SIGNATURE_IDENTITY", "")
LOWERDIR_SIGNATURE_ISSUER = os.environ.get("LOWERDIR_SIGNATURE_ISSUER", "")
LOWERDIR_COSIGN_PUBLIC_KEY = os.environ.get("LOWERDIR_COSIGN_PUBLIC_KEY", "")  # path to a PEM file
LOWERDIR_REQUIRE_SIGNATURE = env_bool("LOWERDIR_REQUIRE_SIGNATURE", False)
