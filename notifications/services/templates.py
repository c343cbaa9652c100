"""Choosing and rendering templates.

Lookup order for (category, channel, language): the district's template → the shared one →
the built-in default; then the same again in the district's default language, then English.
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.db.models import Q
from django.template import Context, Engine
from django.template import Template as DjangoTemplate

from attendance.models import District
from notifications.default_templates import DEFAULTS
from notifications.links import MARK, as_sent
from notifications.models import Template
from notifications.segments import SmsLength, sms_clean, sms_length

# Autoescape off: SMS and plain-text e-mail are not HTML. Templates are written by district
# administrators, not by guardians.
_engine = Engine(autoescape=False)
_CACHE_SECONDS = 30.0
_cache: dict[tuple[int | None, str, str, str], tuple[float, tuple[str, str, str] | None]] = {}
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str
    language: str
    source: str  # "district", "shared" or "built-in"
    length: SmsLength | None = None


def templates_cache_clear() -> None:
    with _cache_lock:
        _cache.clear()


def _stored(
    district_id: int | None, code: str, channel: str, language: str
) -> tuple[str, str, str] | None:
    key = (district_id, code, channel, language)
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and now - hit[0] < _CACHE_SECONDS:
            return hit[1]
    scope = Q(district__isnull=True)
    if district_id is not None:
        scope |= Q(district_id=district_id)
    rows = list(
        Template.objects.filter(scope, category__code=code, channel=channel, language=language)
        .filter(active=True)
        .values_list("district_id", "subject", "body")
    )
    found: tuple[str, str, str] | None = None
    for row_district, subject, body in sorted(rows, key=lambda r: r[0] is None):
        found = (subject, body, "district" if row_district else "shared")
        break
    if found is None and (code, channel, language) in DEFAULTS:
        subject, body = DEFAULTS[(code, channel, language)]
        found = (subject, body, "built-in")
    with _cache_lock:
        _cache[key] = (now, found)
    return found


def template_find(
    *, district: District | None, code: str, channel: str, language: str
) -> tuple[str, str, str, str] | None:
    """(subject, body, language used, source) for the best template, or None."""
    languages = [language]
    fallback = district.default_language if district else "en"
    for extra in (fallback, "en"):
        if extra not in languages:
            languages.append(extra)
    for candidate in languages:
        found = _stored(district.pk if district else None, code, channel, candidate)
        if found is not None:
            return found[0], found[1], candidate, found[2]
    return None


@functools.lru_cache(maxsize=1024)
def _compiled(source: str) -> DjangoTemplate:
    """Compiled once per process: parsing dominated rendering a fan-out. Keyed by the text,
    so an edited template is a new entry (compiled templates are safe to share between
    threads, as Django's cached loader does)."""
    return _engine.from_string(source)


def template_render_text(
    *, subject: str, body: str, channel: str, context: dict[str, Any]
) -> tuple[str, str]:
    ctx = Context(context, autoescape=False)
    rendered_subject = _compiled(subject).render(ctx).strip() if subject else ""
    rendered_body = _compiled(body).render(ctx).strip()
    if channel == "sms":
        rendered_body = sms_clean(rendered_body)
    return " ".join(rendered_subject.split()), rendered_body


def message_render(
    *,
    district: District | None,
    code: str,
    channel: str,
    language: str,
    context: dict[str, Any],
) -> Rendered | None:
    found = template_find(district=district, code=code, channel=channel, language=language)
    if found is None:
        return None
    subject, body, used, source = found
    rendered_subject, rendered_body = template_render_text(
        subject=subject, body=body, channel=channel, context={"portal_link": MARK, **context}
    )
    length = sms_length(as_sent(rendered_body)) if channel == "sms" else None
    return Rendered(rendered_subject, rendered_body, used, source, length)
