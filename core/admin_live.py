"""Admin pages that follow progress on their own."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse


class LiveProgressMixin:
    """Put before a ``ModelAdmin`` class. An object's page reloads itself every
    :attr:`live_refresh_seconds` while :meth:`still_moving` says so (a plain
    ``<meta http-equiv="refresh">``, no script), so an administrator watching a sync or a bulk
    send sees it move and end. Only for pages with nothing to type into while moving: a reload
    drops unsaved input."""

    change_form_template = "admin/object_page.html"
    live_refresh_seconds = 5

    def still_moving(self, obj: Any) -> bool:
        """Whether ``obj`` is still changing by itself (running, sending)."""
        raise NotImplementedError

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> HttpResponse:
        moving = obj is not None and self.still_moving(obj)
        context["live_refresh_seconds"] = self.live_refresh_seconds if moving else None
        return super().render_change_form(  # type: ignore[misc]  # a ModelAdmin's, after us
            request, context, add, change, form_url, obj
        )
