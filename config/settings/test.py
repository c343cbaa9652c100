"""Settings for the test suite: real PostgreSQL and Redis on localhost by default (override with
TEST_DATABASE_URL / TEST_REDIS_URL)."""

import os

# The suite must exercise the real services, so these are set before base reads them.
os.environ["DATABASE_URL"] = os.environ.get(
    "TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/attendance"
)
os.environ["REDIS_URL"] = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.pop("CELERY_BROKER_URL", None)
os.environ.pop("CELERY_RESULT_BACKEND", None)

from config.settings.base import *  # noqa: F403
from config.settings.base import CACHES

DEBUG = False
# Hashing passwords with PBKDF2 in every fixture would dominate the suite's run time.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CACHES["default"]["KEY_PREFIX"] = "sas-test"
# Serve static files straight from the apps (no collectstatic) outside production.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
