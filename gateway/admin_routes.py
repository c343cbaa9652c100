"""Admin pages for outbound routes: limiter and breaker state, reset and force-open.

The gateway keeps no database rows for routes (the registry and all state are in Redis), so
these are custom views added to the default admin site at ``/admin/gateway/routes/`` and
listed in the admin index under "Gateway". Superusers see every route; district
administrators see the routes of their districts. Other staff get 403.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path, reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from attendance.models import Membership, MembershipRole
from core.attention import AttentionLine, attention_register_source
from gateway.breaker import OPEN, breaker_force_open, breaker_reset, breaker_snapshot_read
from gateway.limiter import limiter_state_read
from gateway.redis_state import RedisUnavailable
from gateway.registry import RouteInfo, route_get, routes_list


def _district_admin_memberships(request: HttpRequest) -> QuerySet[Membership]:
    return Membership.objects.filter(
        user_id=request.user.pk or 0, role=MembershipRole.DISTRICT_ADMIN, district__active=True
    )


def _admin_districts(request: HttpRequest) -> set[int] | None:
    """Districts whose routes the user may manage; None means all (superuser)."""
    user = request.user
    if user.is_superuser:
        return None
    districts = set(_district_admin_memberships(request).values_list("district_id", flat=True))
    if not districts:
        raise PermissionDenied
    return districts


def may_view_routes(request: HttpRequest) -> bool:
    user = request.user
    if not (user.is_active and user.is_staff):
        return False
    if user.is_superuser:
        return True
    return _district_admin_memberships(request).exists()


def _visible(info: RouteInfo, districts: set[int] | None) -> bool:
    return districts is None or info.route.district_id in districts


def _route_or_404(request: HttpRequest, name: str) -> RouteInfo:
    districts = _admin_districts(request)
    info = route_get(name)
    if info is None or not _visible(info, districts):
        raise Http404("No such route")
    return info


def _when(stamp: float | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(stamp, tz=dt.UTC) if stamp else None


def _row(info: RouteInfo) -> dict[str, Any]:
    snap, failures = breaker_snapshot_read(info.route)
    policy = info.route.policy
    return {
        "info": info,
        "name": info.route.name,
        "limiter": limiter_state_read(info.route),
        "breaker": snap,
        "opened_at": _when(snap.opened_at),
        "failures": [
            {"at": _when(float(str(item.get("at", 0)))), "reason": item.get("reason", "")}
            for item in failures
        ],
        "last_seen": _when(info.last_seen),
        "max_in_flight_now": policy.max_in_flight_at(),
        "policy": policy.to_dict(),
    }


def routes_view(request: HttpRequest) -> HttpResponse:
    districts = _admin_districts(request)
    error = ""
    rows: list[dict[str, Any]] = []
    try:
        rows = [_row(info) for info in routes_list() if _visible(info, districts)]
    except RedisUnavailable:
        error = "Shared gateway state (Redis) is unreachable; no route state to show."
    context = {
        **admin.site.each_context(request),
        "title": "Outbound routes",
        "rows": rows,
        "error": error,
        "now": timezone.now(),
    }
    return TemplateResponse(request, "admin/gateway/routes.html", context)


def route_view(request: HttpRequest, name: str) -> HttpResponse:
    try:
        row = _row(_route_or_404(request, name))
    except RedisUnavailable as exc:
        raise Http404("Shared gateway state is unreachable") from exc
    context = {
        **admin.site.each_context(request),
        "title": f"Outbound route {name}",
        "row": row,
        "now": timezone.now(),
    }
    return TemplateResponse(request, "admin/gateway/route_detail.html", context)


_ACTIONS: dict[str, tuple[Callable[..., None], str]] = {
    "reset": (breaker_reset, "Breaker of {name} reset: closed, failures forgotten."),
    "force_open": (breaker_force_open, "Breaker of {name} forced open until reset."),
}


@require_POST
def route_action_view(request: HttpRequest, name: str, action: str) -> HttpResponse:
    if action not in _ACTIONS:
        raise Http404("No such action")
    info = _route_or_404(request, name)
    operation, done = _ACTIONS[action]
    try:
        operation(info.route)
    except RedisUnavailable:
        messages.error(request, "Shared gateway state (Redis) is unreachable; nothing changed.")
    else:
        messages.success(request, done.format(name=name))
    return HttpResponseRedirect(reverse("admin:gateway_route", args=[name]))


@attention_register_source
def _refusing_routes(request: HttpRequest) -> list[AttentionLine]:
    """The home page's line for routes whose breaker is open (forced open included): every
    call on them is refused until it closes, so syncs or messages through them fail."""
    if not may_view_routes(request):
        return []
    districts = _admin_districts(request)
    try:
        refusing = sum(
            1
            for info in routes_list()
            if _visible(info, districts) and breaker_snapshot_read(info.route)[0].state == OPEN
        )
    except RedisUnavailable:
        return []  # the routes page says so, and /readyz reports Redis
    if not refusing:
        return []
    return [
        AttentionLine.counted(
            refusing,
            "outbound route refusing calls (circuit breaker open)",
            "outbound routes refusing calls (circuit breakers open)",
            level="error",
            url=reverse("admin:gateway_routes"),
        )
    ]


# -- wiring into the default admin site --------------------------------------------------------
# The admin has no hook for model-less pages, so the site's get_urls and get_app_list are
# wrapped once: our URLs go first, and the index (and nav sidebar) gets a "Gateway" entry.
def _gateway_urls() -> list[URLPattern | URLResolver]:
    view = admin.site.admin_view
    return [
        path("gateway/routes/", view(routes_view), name="gateway_routes"),
        path("gateway/routes/<str:name>/", view(route_view), name="gateway_route"),
        path(
            "gateway/routes/<str:name>/<str:action>/",
            view(route_action_view),
            name="gateway_route_action",
        ),
    ]


def _install() -> None:
    site = admin.site
    if getattr(site, "_gateway_routes_installed", False):
        return
    original_get_urls = site.get_urls
    original_get_app_list = site.get_app_list

    def get_urls() -> list[URLPattern | URLResolver]:
        return _gateway_urls() + original_get_urls()

    def get_app_list(request: HttpRequest, app_label: str | None = None) -> list[Any]:
        app_list = original_get_app_list(request, app_label)
        if app_label not in (None, "gateway") or not may_view_routes(request):
            return app_list
        entry = {
            "name": "Outbound routes",
            "object_name": "OutboundRoute",
            "admin_url": reverse("admin:gateway_routes"),
            "add_url": None,
            "view_only": True,
            "perms": {"view": True},
        }
        for app in app_list:
            if app["app_label"] == "gateway":
                app["models"].append(entry)
                return app_list
        app_list.append(
            {
                "name": "Gateway",
                "app_label": "gateway",
                "app_url": reverse("admin:gateway_routes"),
                "has_module_perms": True,
                "models": [entry],
            }
        )
        return app_list

    site.get_urls = get_urls  # type: ignore[method-assign]
    site.get_app_list = get_app_list  # type: ignore[method-assign]
    site._gateway_routes_installed = True  # type: ignore[attr-defined]


_install()
