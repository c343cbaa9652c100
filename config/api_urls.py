"""``/api/``: the integrator REST API and its documentation.

Extension point: each app serves its endpoints from its own ``<app>/api/urls.py``; the apps in
``API_APPS`` are included under ``/api/v1/`` as soon as that module exists (sis, syncing and
notifications add theirs without touching this file). Their views subclass the bases in
``gateway.inbound.views`` to get authentication, scopes, throttling, district scoping,
idempotency, ETags and the FERPA read log.
"""

from __future__ import annotations

from importlib.util import find_spec

from django.urls import include, path, re_path
from django.views.decorators.csp import csp_override
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerSplitView,
)

from core.api import api_not_found

API_APPS = ["attendance", "sis", "syncing", "notifications"]

# The documentation pages run Swagger UI / ReDoc from our static files (drf-spectacular-sidecar);
# Swagger UI's start-up script is a second request (the split view), so no inline script runs.
# ReDoc styles itself inline and parses the schema in a worker.
_DOCS_CSP = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'", "'unsafe-inline'"],
    "font-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "worker-src": ["'self'", "blob:"],
    "connect-src": ["'self'"],
}

urlpatterns = [
    *[
        path("v1/", include(f"{app}.api.urls"))
        for app in API_APPS
        if find_spec(f"{app}.api") is not None and find_spec(f"{app}.api.urls") is not None
    ],
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path(
        "docs/",
        csp_override(_DOCS_CSP)(SpectacularSwaggerSplitView.as_view(url_name="api-schema")),
        name="api-docs",
    ),
    path(
        "redoc/",
        csp_override(_DOCS_CSP)(SpectacularRedocView.as_view(url_name="api-schema")),
        name="api-redoc",
    ),
    # Anything else under /api/ answers in the API's error shape.
    re_path(r"^.*$", api_not_found),
]
