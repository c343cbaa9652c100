"""What needs an administrator now: the "Needs attention" panel on the admin's home page.

Apps register `Attention` entries in their ``admin.py``, beside the model admins the counts go
through (core imports no other app).
Each entry names a model and the changelist query parameters that select the rows needing
someone — held sync runs, open conflicts, messages that could not be delivered. The count shown
is what the entry's link opens: the model admin's own queryset for this user (their district or
school scoping included), narrowed by the same parameters the changelist will apply.

State kept outside the database (the gateway's circuit breakers, in Redis) comes from a
*source* instead: a function of the request that returns its lines itself
(:func:`attention_register_source`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.admin.utils import prepare_lookup_value
from django.db.models import Count, Min, Model, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.timesince import timesince

Level = Literal["error", "warning"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Attention:
    """One kind of row an administrator should act on.

    ``params`` are changelist query parameters: field lookups (``status__exact``,
    ``status__in`` with comma-separated values) or the parameter of one of the model admin's
    ``SimpleListFilter`` classes. ``recent`` keeps only rows whose ``date_field`` is that
    recent (a failure from last month is history, not a task); ``show_oldest`` says how long
    the oldest row has waited, by the same field.
    """

    model: type[Model]
    singular: str  # "sync run held for review"
    plural: str  # "sync runs held for review"
    params: Mapping[str, str]
    level: Level = "warning"
    recent: dt.timedelta | None = None
    date_field: str = "created_at"
    show_oldest: bool = False


@dataclass(frozen=True)
class AttentionLine:
    """One line of the panel: "<count> <label>", linking to those rows."""

    level: Level
    count: int | None  # None: the line says it could not count
    label: str  # already singular or plural for the count
    url: str
    oldest: dt.datetime | None = None

    @classmethod
    def counted(
        cls,
        count: int,
        singular: str,
        plural: str,
        *,
        level: Level,
        url: str,
        oldest: dt.datetime | None = None,
    ) -> AttentionLine:
        """A line of ``count`` things, labelled in the singular or plural to match."""
        label = singular if count == 1 else plural
        return cls(level=level, count=count, label=label, url=url, oldest=oldest)

    @property
    def oldest_age(self) -> str:
        """When the oldest row came, as people say it ("3 days ago", "just now")."""
        if self.oldest is None:
            return ""
        if timezone.now() - self.oldest < dt.timedelta(minutes=1):
            return "just now"
        return f"{timesince(self.oldest)} ago"


AttentionSource = Callable[[HttpRequest], Iterable[AttentionLine]]


_REGISTERED: list[Attention] = []
_SOURCES: list[AttentionSource] = []


def attention_register(*entries: Attention) -> None:
    """Add entries to the panel, in the order given; an entry already there is not added again."""
    for entry in entries:
        if entry not in _REGISTERED:
            _REGISTERED.append(entry)


def attention_register_source(source: AttentionSource) -> AttentionSource:
    """Add a function that returns its own lines for a request (only those worth showing: it
    decides what the user may see). Usable as a decorator."""
    if source not in _SOURCES:
        _SOURCES.append(source)
    return source


def attention_lines(
    request: HttpRequest, *, site: admin.AdminSite | None = None, include_empty: bool = False
) -> list[AttentionLine]:
    """The panel's lines for this user, errors first: each registered entry whose model admin
    the user may view and that has rows (one aggregate query each), then each source's lines.
    ``include_empty`` keeps the entries with no rows (to check every link opens its list).

    A count or a source that fails becomes a line saying so (and a logged exception): the home
    page is every administrator's way in, and one broken count must neither take it down nor
    quietly drop what it should have shown."""
    site = site or admin.site
    now = timezone.now().replace(second=0, microsecond=0)  # a stable, readable link
    lines: list[AttentionLine] = []
    for entry in _REGISTERED:
        model_admin = site._registry.get(entry.model)
        if model_admin is None or not model_admin.has_view_permission(request):
            continue
        opts = entry.model._meta
        url = reverse(
            f"{site.name}:{opts.app_label}_{opts.model_name}_changelist",
            current_app=site.name,
        )
        try:
            line = _entry_line(entry, model_admin, request, url, now)
        except Exception:  # the home page must render: see the docstring
            logger.exception("attention count failed", extra={"line": entry.plural})
            label = f"{entry.plural}: could not count (see the logs)"
            line = AttentionLine(level="error", count=None, label=label, url=url)
        if line.count != 0 or include_empty:  # None: it could not count
            lines.append(line)
    for source in _SOURCES:
        try:
            lines.extend(source(request))
        except Exception:  # the home page must render: see the docstring
            logger.exception("attention source failed", extra={"source": source.__name__})
            lines.append(AttentionLine("error", None, "one check could not run (see the logs)", ""))
    lines.sort(key=lambda line: line.level != "error")
    return lines


def _entry_line(
    entry: Attention,
    model_admin: admin.ModelAdmin[Any],
    request: HttpRequest,
    url: str,
    now: dt.datetime,
) -> AttentionLine:
    """One entry's line: its rows counted as its changelist will list them."""
    params = dict(entry.params)
    if entry.recent is not None:
        params[f"{entry.date_field}__gte"] = (now - entry.recent).isoformat()
    queryset = _changelist_rows(model_admin, request, params)
    totals = queryset.aggregate(count=Count("pk"), oldest=Min(entry.date_field))
    return AttentionLine.counted(
        totals["count"],
        entry.singular,
        entry.plural,
        level=entry.level,
        url=f"{url}?{urlencode(params)}",
        oldest=totals["oldest"] if entry.show_oldest else None,
    )


def _changelist_rows(
    model_admin: admin.ModelAdmin[Any], request: HttpRequest, params: dict[str, str]
) -> QuerySet[Any]:
    """The rows the changelist shows for ``params``, filtered as Django's ChangeList does:
    a list filter class by its own ``queryset``, anything else as a field lookup."""
    queryset = model_admin.get_queryset(request)
    filter_classes = {
        spec.parameter_name: spec
        for spec in model_admin.get_list_filter(request)
        if isinstance(spec, type) and issubclass(spec, admin.SimpleListFilter)
    }
    lookups: dict[str, Any] = {}
    for key, value in params.items():
        spec = filter_classes.get(key)
        if spec is None:
            lookups[key] = prepare_lookup_value(key, value)
            continue
        narrowed = spec(request, {key: [value]}, model_admin.model, model_admin).queryset(
            request, queryset
        )
        if narrowed is not None:  # Django's ChangeList keeps the queryset on None too
            queryset = narrowed
    return queryset.filter(**lookups)
