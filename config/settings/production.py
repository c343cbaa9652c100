"""Production: every secret and host comes from the environment, with no defaults."""

from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int, env_list, env_str, env_url
from config.settings.base import *  # noqa: F403

DEBUG = False
SECRET_KEY = env_str("SECRET_KEY")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS")
DATABASE_URL = env_url("DATABASE_URL", schemes=("postgres", "postgresql", "pgsql"))
REDIS_URL = env_url("REDIS_URL", schemes=("redis", "rediss"))
# Every link we send out is built on it (portal links in messages, staff invitations and
# password resets, sync alerts) and so is the URL Twilio signs its callbacks over: the
# development default would send families to 127.0.0.1 and refuse every signed callback.
PUBLIC_BASE_URL = env_url("PUBLIC_BASE_URL", schemes=("https",))

SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
if env_bool("TRUST_X_FORWARDED_PROTO", False):
    # Only behind a proxy that overwrites this header; otherwise a client could forge HTTPS.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 3600, minimum=300)
# Keys that protect stored secrets have no safe default: refuse to start without them.
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS")
API_KEY_PEPPER = env_str("API_KEY_PEPPER")


def _refuse_development(name: str, value: str, development: tuple[str, ...]) -> str:
    """Stop start-up when a setting names something that only pretends to send."""
    if value in development:
        raise ImproperlyConfigured(
            f"Environment variable {name} must name a provider that sends: {value!r} only "
            "prints or keeps messages (development and tests). See docs/operations.md."
        )
    return value


# Messages to families and administrators must leave the building. The development defaults
# print them (console) or keep them in memory (test), and a forgotten variable would mark
# every message "sent" while nobody received it.
NOTIFY_SMS_PROVIDER = _refuse_development(
    "SMS_PROVIDER", env_str("SMS_PROVIDER"), ("console", "test")
)
NOTIFY_EMAIL_PROVIDER = _refuse_development(
    "EMAIL_PROVIDER", env_str("EMAIL_PROVIDER"), ("console", "test")
)
EMAIL_BACKEND = _refuse_development(
    "EMAIL_BACKEND",
    env_str("EMAIL_BACKEND"),
    tuple(
        f"django.core.mail.backends.{name}.EmailBackend"
        for name in ("console", "locmem", "dummy", "filebased")
    ),
)
