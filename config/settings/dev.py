"""Local development and the first-run demo (``make run``): SQLite and an embedded broker unless
DATABASE_URL / REDIS_URL say otherwise."""

from config.env import env_bool
from config.settings.base import *  # noqa: F403

DEBUG = env_bool("DEBUG", True)
# Serve static files straight from the apps (no collectstatic) outside production.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
