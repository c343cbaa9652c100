"""Settings shared by every environment. Every value that differs between deployments is read
from the environment through :mod:`config.env`, which fails loudly on a bad value."""

from __future__ import annotations

from pathlib import Path

import dj_database_url

from config.env import env_bool, env_int, env_list, env_str, env_url

BASE_DIR = Path(__file__).resolve().parent.parent.parent
# Local state for the no-services mode (SQLite file, embedded broker folders, static files).
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))

SECRET_KEY = env_str("SECRET_KEY", "dev-only-insecure-key-change-me")
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS", [])
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# Where providers (Twilio, ESPs) reach us; callback URLs and signed links are built from it.
PUBLIC_BASE_URL = env_url("PUBLIC_BASE_URL", "http://127.0.0.1:8000", schemes=("http", "https"))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "oauth2_provider",
    "django_celery_beat",
    "simple_history",
    "core",
    "attendance",
    "sis",
    "gateway",
    "syncing",
    "notifications",
    "portal",
]

MIDDLEWARE = [
    "core.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Data stores -------------------------------------------------------------------------------
# With no DATABASE_URL the project runs on a local SQLite file, so a first run needs no services.
DATABASE_URL = env_url("DATABASE_URL", None, schemes=("postgres", "postgresql", "pgsql", "sqlite"))
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0)
        )
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "db.sqlite3"),
            # Web, worker and beat share the file: wait for locks instead of failing at once.
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Four unique constraints count NULL as a value of their key (NULLS NOT DISTINCT: one field
    # or safety policy for all connections or schools, one preference for all students or
    # categories, one active default template). SQLite cannot index that, and Django would warn
    # at every start of `make run` (models.W047). The rules still hold on it: model validation,
    # which the admin's forms run, checks them (tests/config/test_sqlite_checks.py), and the one
    # service creating such rows (a portal preference) gets or creates it in a transaction, which
    # SQLite runs one writer at a time. On PostgreSQL, as in production, the indexes enforce them.
    SILENCED_SYSTEM_CHECKS = ["models.W047"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_url("REDIS_URL", None, schemes=("redis", "rediss"))
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "sas"),
            "OPTIONS": {
                "SOCKET_CONNECT_TIMEOUT": 2,
                "SOCKET_TIMEOUT": 2,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Auth and i18n -----------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("es", "Español")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("TIME_ZONE", "America/Chicago")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Security headers (tightened further in production) ---------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True

from django.utils.csp import CSP  # noqa: E402  (kept beside the setting it serves)

SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    # Inline style attributes in the Django 6.0 admin need this; scripts stay nonce-only.
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}

# --- REST API ----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Student Attendance System API",
    "DESCRIPTION": "Rosters, attendance, syncs and notifications for integrators.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The documentation pages load Swagger UI and ReDoc from our static files, not a CDN: no
    # third-party request from our pages, and the docs work where the CDN is unreachable.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Celery ------------------------------------------------------------------------------------
# How long the broker waits for an ack before handing an unacknowledged message to another
# worker. Every task time limit, countdown and ETA must stay below it, or the task runs twice
# (docs/operations.md; checked by tests/core/test_celery.py). The one exception is a sync run
# (SYNC_RUN_TIME_LIMIT_SECONDS below), whose second copy cannot run.
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=60)
# How many times one message may be delivered before it is recorded as poisoned and dropped.
CELERY_MAX_DELIVERIES = env_int("CELERY_MAX_DELIVERIES", 3, minimum=1, maximum=20)
CELERY_BROKER_URL = env_url(
    "CELERY_BROKER_URL", REDIS_URL, schemes=("redis", "rediss", "amqp", "filesystem", "memory")
)
if CELERY_BROKER_URL is None:
    # Embedded broker: kombu's filesystem transport needs no server at all.
    CELERY_BROKER_URL = "filesystem://"
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # Without this kombu writes its exchange table to ./control in the working directory.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
CELERY_RESULT_BACKEND = env_url(
    "CELERY_RESULT_BACKEND", REDIS_URL, schemes=("redis", "rediss", "db+postgresql", "cache")
)
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# A task still running when the visibility timeout passes would be handed to a second worker,
# so the hard limit stays below it (the soft limit leaves time to save a checkpoint).
CELERY_TASK_TIME_LIMIT = int(CELERY_VISIBILITY_TIMEOUT * 0.9)
CELERY_TASK_SOFT_TIME_LIMIT = int(CELERY_VISIBILITY_TIMEOUT * 0.8)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Beat writes a task's last run back after every message it sends (one small UPDATE each),
# not every three minutes: the admin's periodic tasks then show when each was last sent, and
# the home page's "beat has not sent on time" line clears as soon as a restarted beat sends.
CELERY_BEAT_SYNC_EVERY = 1

# --- Logging -----------------------------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "core.logging.RequestIdFilter"},
        "redact": {"()": "core.logging.RedactingFilter"},
    },
    "formatters": {"json": {"()": "core.logging.JsonFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["request_id", "redact"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django logs the full path of 4xx/5xx requests; our middleware logs a redacted line.
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "WARNING"},
    },
}

# --- OAuth 2.0 for integrators (django-oauth-toolkit) ------------------------------------------
# Scopes are explicit: a client gets only what its application allows, never a default
# all-scope. Tokens are short-lived and stored hashed; the RFC 9700 compliant behaviours are on.
API_SCOPES = {
    "roster:read": "Read schools, sections, students, guardians and enrollments",
    "attendance:read": "Read attendance records and participation grades",
    "attendance:write": "Record attendance",
    "sync:read": "Read SIS connections, sync runs and conflicts",
    "sync:run": "Start roster syncs",
    "conflicts:resolve": "Resolve sync conflicts",
    "notifications:read": "Read notifications, deliveries and bulk notices",
    "notifications:send": "Create, start and cancel bulk notices",
}
OAUTH2_PROVIDER = {
    "SCOPES": API_SCOPES,
    "DEFAULT_SCOPES": [],
    "ACCESS_TOKEN_EXPIRE_SECONDS": env_int(
        "OAUTH_ACCESS_TOKEN_SECONDS", 3600, minimum=60, maximum=3600
    ),
    "REFRESH_TOKEN_EXPIRE_SECONDS": 24 * 3600,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https"],
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_SCHEME": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_MATCHING": True,
    "COMPLIANT_BCP_RFC9700_PKCE_REQUIRED": True,
}

# --- Integrator API and inbound credentials (gateway.inbound, attendance.api) ------------------
# API keys are stored as HMAC-SHA256(pepper, key): the pepper lives outside the database, so a
# leaked table holds no usable keys. Set API_KEY_PEPPER in every real deployment.
API_KEY_PEPPER = env_str("API_KEY_PEPPER", "dev-only-api-key-pepper-" + SECRET_KEY)
# Named so migrations can refer to the (swappable) application model, as DOT documents.
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"
OAUTH2_PROVIDER["OAUTH2_VALIDATOR_CLASS"] = "gateway.inbound.oauth.DistrictOAuth2Validator"
REST_FRAMEWORK.update(
    {
        "DEFAULT_AUTHENTICATION_CLASSES": [
            "gateway.inbound.authentication.ApiKeyAuthentication",
            "gateway.inbound.authentication.OAuthTokenAuthentication",
        ],
        "DEFAULT_PERMISSION_CLASSES": ["gateway.inbound.permissions.HasScope"],
        "DEFAULT_RENDERER_CLASSES": ["gateway.inbound.rendering.FastJSONRenderer"],
        "DEFAULT_PAGINATION_CLASS": "gateway.inbound.rendering.ApiCursorPagination",
        "UNAUTHENTICATED_TOKEN": None,
    }
)
SPECTACULAR_SETTINGS.update(
    {
        "COMPONENT_SPLIT_REQUEST": True,
        "SCHEMA_PATH_PREFIX": r"/api/v1",
        # Several resources have a "status": one named enum each.
        "ENUM_NAME_OVERRIDES": {
            "AttendanceStatusEnum": "attendance.models.AttendanceStatus",
            "SyncRunStatusEnum": "syncing.models.RunStatus",
            "ConflictStatusEnum": "syncing.models.ConflictStatus",
            "NotificationStatusEnum": "notifications.models.NotificationStatus",
            "DeliveryStatusEnum": "notifications.models.DeliveryStatus",
        },
    }
)
# Inbound throttling (django-ratelimit on the shared cache), keyed by credential or user, not by
# address alone: a whole school shares one NAT address.
RATELIMIT_USE_CACHE = "default"
API_RATE_LIMIT = env_str("API_RATE_LIMIT", "1200/m")  # per API key / OAuth client
OAUTH_TOKEN_RATE_LIMIT = env_str("OAUTH_TOKEN_RATE_LIMIT", "20/m")  # per client_id
ADMIN_LOGIN_RATE_LIMIT = env_str("ADMIN_LOGIN_RATE_LIMIT", "5/5m")  # per username
ADMIN_LOGIN_ADDRESS_RATE_LIMIT = env_str("ADMIN_LOGIN_ADDRESS_RATE_LIMIT", "60/5m")  # per address
# Password reset e-mails per address asked for (and per client address, as the login).
PASSWORD_RESET_RATE_LIMIT = env_str("PASSWORD_RESET_RATE_LIMIT", "3/h")
MIDDLEWARE.append("gateway.inbound.throttling.RatelimitedMiddleware")
# Idempotency-Key records are kept this long (Stripe, Checkout.com and Telnyx keep 24 h).
API_IDEMPOTENCY_TTL_HOURS = env_int("API_IDEMPOTENCY_TTL_HOURS", 24, minimum=1, maximum=24 * 7)
# FERPA read audit: rows older than this are purged by `manage.py purge_api_access_log`.
API_ACCESS_LOG_RETENTION_DAYS = env_int("API_ACCESS_LOG_RETENTION_DAYS", 1095, minimum=1)
# Roster list pages are cached in Redis per district and invalidated when roster data changes;
# this TTL bounds how stale a page can be if an invalidation is ever missed (0: no caching).
API_LIST_CACHE_SECONDS = env_int("API_LIST_CACHE_SECONDS", 30, minimum=0, maximum=600)

# --- Notifications (notifications/; see docs/notifications.md) --------------------------------
# Providers: "console" (development default), "twilio", "sns", "test" for SMS; "email" sends
# through EMAIL_BACKEND (anymail ESP, SMTP, console), "console" and "test" also work for e-mail.
NOTIFY_SMS_PROVIDER = env_str("SMS_PROVIDER", "console")
NOTIFY_EMAIL_PROVIDER = env_str("EMAIL_PROVIDER", "email")
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 20, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "attendance@example.org")
NOTIFY_EMAIL_MESSAGE_ID_DOMAIN = env_str("NOTIFY_EMAIL_MESSAGE_ID_DOMAIN", "attendance.invalid")
# django-anymail: ESP settings by anymail's own names (e.g. ANYMAIL_POSTMARK_SERVER_TOKEN);
# WEBHOOK_SECRET ("user:pass", comma-separated for rotation) guards the tracking webhooks.
ANYMAIL = {
    "WEBHOOK_SECRET": env_list("ANYMAIL_WEBHOOK_SECRET", []),
    "POSTMARK_SERVER_TOKEN": env_str("ANYMAIL_POSTMARK_SERVER_TOKEN", ""),
    "POSTMARK_API_URL": env_str("ANYMAIL_POSTMARK_API_URL", "https://api.postmarkapp.com/"),
    "SENDGRID_API_KEY": env_str("ANYMAIL_SENDGRID_API_KEY", ""),
    "MAILGUN_API_KEY": env_str("ANYMAIL_MAILGUN_API_KEY", ""),
    "MAILGUN_SENDER_DOMAIN": env_str("ANYMAIL_MAILGUN_SENDER_DOMAIN", ""),
}
TWILIO_ACCOUNT_SID = env_str("TWILIO_ACCOUNT_SID", "")
TWILIO_AUTH_TOKEN = env_str("TWILIO_AUTH_TOKEN", "")
# During an Auth Token rotation, callbacks signed with the previous token still verify.
TWILIO_AUTH_TOKEN_PREVIOUS = env_str("TWILIO_AUTH_TOKEN_PREVIOUS", "")
TWILIO_MESSAGING_SERVICE_SID = env_str("TWILIO_MESSAGING_SERVICE_SID", "")
TWILIO_FROM_NUMBER = env_str("TWILIO_FROM_NUMBER", "")
TWILIO_API_BASE_URL = env_url(
    "TWILIO_API_BASE_URL", "https://api.twilio.com", schemes=("http", "https")
)
# Per sender, in segments per second (US long code 1, toll-free 3, short code 100); 0 = no limit.
TWILIO_SEGMENTS_PER_SECOND = env_int("TWILIO_SEGMENTS_PER_SECOND", 1, minimum=0) or None
AWS_SNS_ENDPOINT_URL = env_str("AWS_SNS_ENDPOINT_URL", "")
AWS_SNS_REGION = env_str("AWS_SNS_REGION", env_str("AWS_DEFAULT_REGION", "us-east-1"))
SNS_SEGMENTS_PER_SECOND = env_int("SNS_SEGMENTS_PER_SECOND", 20, minimum=0) or None
# Attendance messages wait this long so a correction (or more periods) can still change them.
NOTIFY_ATTENDANCE_HOLD_SECONDS = env_int("NOTIFY_ATTENDANCE_HOLD_SECONDS", 600, minimum=0)
# Only attendance this recent notifies (a SIS backfill of last month must not text anyone).
NOTIFY_ATTENDANCE_MAX_AGE_DAYS = env_int("NOTIFY_ATTENDANCE_MAX_AGE_DAYS", 1, minimum=0)
NOTIFY_DIGEST_HOUR = env_int("NOTIFY_DIGEST_HOUR", 18, minimum=0, maximum=23)
NOTIFY_CHRONIC_ABSENCE_COUNT = env_int("NOTIFY_CHRONIC_ABSENCE_COUNT", 3, minimum=1)
NOTIFY_CHRONIC_ABSENCE_PERCENT = env_int("NOTIFY_CHRONIC_ABSENCE_PERCENT", 10, minimum=1)
# After a permanent SMS failure, try the guardian's e-mail (and vice versa).
NOTIFY_FALLBACK_CHANNEL = env_bool("NOTIFY_FALLBACK_CHANNEL", True)
NOTIFY_MAX_ATTEMPTS = env_int("NOTIFY_MAX_ATTEMPTS", 6, minimum=1, maximum=20)
NOTIFY_HELP_TEXT = env_str(
    "NOTIFY_HELP_TEXT",
    "School attendance alerts. Msg freq varies. Reply STOP to opt out, START to opt back in. "
    "Contact your school office for help.",
)

# --- Outbound gateway: rate limits, circuit breakers, retries, metrics (gateway/) --------------
# Shared limiter/breaker state lives here (defaults to REDIS_URL; without either, each process
# keeps its own). Short timeouts: during a Redis outage the gateway falls back to per-process
# state for GATEWAY_REDIS_RETRY_SECONDS instead of stalling every outbound call.
GATEWAY_REDIS_URL = env_url("GATEWAY_REDIS_URL", REDIS_URL, schemes=("redis", "rediss"))
GATEWAY_REDIS_TIMEOUT = env_int("GATEWAY_REDIS_TIMEOUT_MS", 500, minimum=50, maximum=10000) / 1000
GATEWAY_REDIS_RETRY_SECONDS = 1.0
GATEWAY_KEY_PREFIX = env_str("GATEWAY_KEY_PREFIX", "gw")
# Per-deployment policy overrides by provider kind, e.g. {"infinite_campus": {"max_in_flight": 3}}
# (fields of gateway.routes.RoutePolicy); a connection's own limits override these.
GATEWAY_PROVIDER_POLICIES: dict[str, dict[str, object]] = {}
# /metrics answers only with "Authorization: Bearer <METRICS_TOKEN>"; unset, it is a 404.
METRICS_TOKEN = env_str("METRICS_TOKEN", "") or None

# --- Parent portal (portal/; see docs/portal.md) -----------------------------------------------
# One-time codes: 6 digits, short-lived, few tries; links in messages are single use.
PORTAL_CODE_TTL_SECONDS = env_int("PORTAL_CODE_TTL_SECONDS", 600, minimum=60, maximum=3600)
PORTAL_CODE_MAX_ATTEMPTS = env_int("PORTAL_CODE_MAX_ATTEMPTS", 5, minimum=1, maximum=10)
PORTAL_MESSAGE_LINK_TTL_HOURS = env_int("PORTAL_MESSAGE_LINK_TTL_HOURS", 72, minimum=1)
# Portal sessions end after this much inactivity, and in any case after the maximum.
PORTAL_SESSION_IDLE_SECONDS = env_int("PORTAL_SESSION_IDLE_SECONDS", 1800, minimum=60)
PORTAL_SESSION_MAX_SECONDS = env_int("PORTAL_SESSION_MAX_SECONDS", 8 * 3600, minimum=300)
# Sign-in throttles (django-ratelimit on the shared cache): per contact, per browser session
# and, generously, per address (families behind one carrier NAT share addresses).
PORTAL_SIGNIN_CONTACT_RATE = env_str("PORTAL_SIGNIN_CONTACT_RATE", "5/15m")
PORTAL_SIGNIN_SESSION_RATE = env_str("PORTAL_SIGNIN_SESSION_RATE", "10/15m")
PORTAL_SIGNIN_ADDRESS_RATE = env_str("PORTAL_SIGNIN_ADDRESS_RATE", "100/15m")
PORTAL_CODE_CHECK_RATE = env_str("PORTAL_CODE_CHECK_RATE", "20/15m")
# Shown to guardians who opted out by replying STOP (the number they text START to).
PORTAL_SMS_SENDER_DISPLAY = env_str("PORTAL_SMS_SENDER_DISPLAY", "")

# --- SIS connections and connectors (sis/; see docs/connectors.md, docs/sandbox.md) -----------
# Fernet keys that encrypt SIS credentials and cached tokens, comma-separated, newest first.
# Separate from SECRET_KEY. Unset outside production: a fixed development key is used; the
# production settings refuse to run without them. Rotate: add a key in front, run
# `manage.py rotate_encryption_keys`, then drop the old key.
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS", [])
# Grand Bend sample district for `manage.py sis_sandbox --dataset grand-bend` (only that option
# reads it).
SIS_SANDBOX_GRAND_BEND_PATH = env_str(
    "SIS_SANDBOX_GRAND_BEND_PATH", str(BASE_DIR.parent / "shared" / "datasets" / "grand-bend")
)

# --- Roster sync (syncing/) ----------------------------------------------------------------------
# Changes applied per atomic batch (each batch advances the run's checkpoint).
SYNC_BATCH_SIZE = env_int("SYNC_BATCH_SIZE", 2000, minimum=1)
# Threads (database sessions) applying one entity's creates at once (PostgreSQL only).
SYNC_APPLY_THREADS = env_int("SYNC_APPLY_THREADS", 2, minimum=1)
# Quarantined records a run may have and still apply: max(minimum, percent of records fetched).
SYNC_ERROR_BUDGET_PERCENT = env_int("SYNC_ERROR_BUDGET_PERCENT", 5, minimum=0, maximum=100)
SYNC_ERROR_BUDGET_MIN = env_int("SYNC_ERROR_BUDGET_MIN", 10, minimum=0)
# Days a finished run keeps its staged changes and page records, and a closed quarantined record
# its payload (they hold SIS record values); `manage.py purge_sync_runs`, scheduled daily,
# deletes them after that. Run counts stay.
SYNC_RUN_DETAIL_RETENTION_DAYS = env_int("SYNC_RUN_DETAIL_RETENTION_DAYS", 30, minimum=1)
# Seconds a signed SIS event (X-Sync-Timestamp) may be away from our clock; the same signed
# request seen again within twice that is a duplicate.
SYNC_WEBHOOK_TOLERANCE_SECONDS = env_int("SYNC_WEBHOOK_TOLERANCE_SECONDS", 300, minimum=10)
# How long one sync run may execute in a worker before Celery stops it (the soft limit; the hard
# limit follows five minutes later). Deliberately above the broker's visibility timeout: a large
# district on a slow SIS syncs for longer than an hour, and the copy of the task the broker hands
# out again meanwhile finds the connection's sync lock taken and leaves the run to its worker.
SYNC_RUN_TIME_LIMIT_SECONDS = env_int("SYNC_RUN_TIME_LIMIT_SECONDS", 6 * 3600, minimum=600)
