"""Shared cache of the roster list pages (``roster:read`` lists: districts, schools, terms,
sections, students, guardians, enrollments).

A page costs ~7 ms of server CPU to compute and nothing about it changes until roster data of
its district does, so rendered pages are kept in Redis and served again while they are current:

- Each district has a roster **generation**: a random token in Redis, replaced whenever any
  roster row of the district is written (ORM saves and deletes through signals, m2m changes,
  and the set-based writers of :mod:`attendance.bulk`, which the sync engine uses, through
  :data:`attendance.signals.rows_written`). It is replaced at once (so the writing transaction
  never reads its own old pages) and again after the commit (so a page computed from the
  pre-commit data meanwhile is never served later).
- A page is stored under (district, scheme and host, path, normalised query string including
  the cursor, the caller's relevant scopes, media type) together with the generation read
  *before* the page was computed and the ids of the students it shows. It is served only while
  its generation is still the district's, and for at most ``API_LIST_CACHE_SECONDS`` (the
  staleness bound should an invalidation ever be missed: a write behind the ORM's and
  attendance.bulk's back, or one made while Redis was unreachable).
- Redis unreachable: nothing is cached or served from the cache; pages are computed as without
  it. A failed invalidation is logged.

The generation and the page travel in one round trip (``MGET``); the FERPA access log row is
still written for every page served from the cache.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Iterable
from operator import itemgetter
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Model
from django.db.models.signals import m2m_changed, post_delete, post_save
from prometheus_client import Counter
from redis.exceptions import RedisError

from attendance.models import (
    Course,
    District,
    Enrollment,
    Guardian,
    School,
    Section,
    SectionEnrollment,
    Staff,
    Student,
    StudentGuardian,
    Term,
)
from attendance.signals import rows_written
from gateway.inbound.views import CachedPage

if TYPE_CHECKING:
    from gateway.inbound.views import IntegratorListView

logger = logging.getLogger("sas.api.cache")

LOOKUPS = Counter(
    "sas_api_list_cache_lookups",
    "Roster list pages by cache outcome: hit, miss (computed and stored), bypass (Redis "
    "unreachable or caching off: computed, not stored).",
    ["result"],
)
_HIT, _MISS, _BYPASS = (LOOKUPS.labels(r) for r in ("hit", "miss", "bypass"))

# Every model a roster list shows, with the ORM path from it to its district. Writing any of
# them replaces the district's generation: coarse (a guardian edit also drops the school
# pages), but a district's roster changes in bursts (a sync, an office edit) and pages are
# recomputed on demand, so precision would buy little and risk a missed dependency.
ROSTER_MODELS: dict[type[Model], str] = {
    District: "pk",
    School: "district_id",
    Term: "district_id",
    Course: "district_id",
    Staff: "district_id",
    Student: "district_id",
    Guardian: "district_id",
    Section: "school__district_id",
    Enrollment: "student__district_id",
    SectionEnrollment: "student__district_id",
    StudentGuardian: "student__district_id",
}


def _redis() -> Any:
    """The client behind the default cache when it is Redis (django-redis), else None."""
    if settings.CACHES["default"]["BACKEND"] != "django_redis.cache.RedisCache":
        return None
    from django_redis import get_redis_connection

    return get_redis_connection("default")


def _generation_key(district_id: int) -> str:
    return cache.make_key(f"api-roster:gen:{district_id}")


# --- Invalidation ------------------------------------------------------------------------------


def roster_generation_bump(district_ids: Iterable[int | None]) -> None:
    """Give each district a new roster generation: every cached page of it stops being
    served. Never raises (a cache failure must not fail the write that changed the roster)."""
    ids = {pk for pk in district_ids if pk is not None}
    client = _redis()
    if not ids or client is None:
        return
    try:
        pipe = client.pipeline(transaction=False)
        for pk in sorted(ids):
            # A fresh random token, not a counter: a generation key lost to eviction or a
            # flush can never come back with a value an old page still carries.
            pipe.set(_generation_key(pk), secrets.token_hex(8))
        pipe.execute()
    except (RedisError, OSError):
        logger.warning(
            "roster cache generation not bumped; cached pages may be stale for up to "
            "API_LIST_CACHE_SECONDS",
            extra={"district_ids": sorted(ids)},
        )


def roster_changed(district_ids: Iterable[int | None]) -> None:
    """Roster rows of these districts were written in the current transaction."""
    ids = {pk for pk in district_ids if pk is not None}
    if not ids:
        return
    if connection.in_atomic_block:
        # Now, so that this transaction's own later reads never get a page from before the
        # write (another reader may now cache a pre-commit page under the new generation:
        # the bump after the commit retires it).
        roster_generation_bump(ids)
    transaction.on_commit(lambda: roster_generation_bump(ids), robust=True)


def _district_of(instance: Model) -> int | None:
    if isinstance(instance, District):
        return instance.pk
    district_id = getattr(instance, "district_id", None)
    if district_id is not None:
        return int(district_id)
    # Reached through a parent (section → school, enrollments and links → student): use the
    # parent already loaded on the instance, else read its district (the row may be gone
    # in a cascade; then the parent's own delete announces the district).
    name, parent_model = (
        ("school", School) if isinstance(instance, Section) else ("student", Student)
    )
    field = instance._meta.get_field(name)
    if field.is_cached(instance):  # type: ignore[union-attr]
        return int(getattr(instance, name).district_id)
    parent_id = getattr(instance, f"{name}_id")
    return parent_model.objects.filter(pk=parent_id).values_list("district_id", flat=True).first()


def _instance_written(sender: type[Model], instance: Model, **kwargs: Any) -> None:
    roster_changed([_district_of(instance)])


def _links_changed(sender: Any, instance: Model, action: str, **kwargs: Any) -> None:
    if action in {"post_add", "post_remove", "post_clear"}:
        roster_changed([_district_of(instance)])


def _rows_written(
    sender: type[Model], ids: list[int], district_id: int | None = None, **kwargs: Any
) -> None:
    path = ROSTER_MODELS.get(sender)
    if path is None:
        return
    if district_id is not None:  # the writer declared it (attendance.signals.rows_of_district)
        roster_changed([district_id])
        return
    districts = (
        sender._default_manager.filter(pk__in=ids)
        .order_by()
        .values_list(path, flat=True)
        .distinct()
    )
    roster_changed(districts)


def connect_receivers() -> None:
    """Called once from ``AttendanceConfig.ready``: every process (web, Celery, commands)
    must invalidate, not only those that serve the API."""
    for model in ROSTER_MODELS:
        uid = f"api-roster-cache:{model._meta.label}"
        post_save.connect(_instance_written, sender=model, dispatch_uid=uid)
        post_delete.connect(_instance_written, sender=model, dispatch_uid=uid)
        rows_written.connect(_rows_written, sender=model, dispatch_uid=uid)
    for through in (Staff.schools.through, Guardian.students.through):
        m2m_changed.connect(
            _links_changed, sender=through, dispatch_uid=f"api-roster-cache:m2m:{through}"
        )


# --- Pages -------------------------------------------------------------------------------------


def _page_key(view: IntegratorListView) -> tuple[int, str]:
    request = view.request._request
    principal = view.principal
    # Parameter order does not change the page (filters read a QueryDict, and DRF rebuilds
    # the next/previous links with the parameters sorted by name), but the order of repeated
    # values of one parameter may: a stable sort by name keeps it.
    query = urlencode(
        sorted(
            parse_qsl(request.META.get("QUERY_STRING", ""), keep_blank_values=True),
            key=itemgetter(0),
        )
    )
    scopes = sorted(principal.scopes & set(view.required_scopes.values()))
    identity = "\n".join(
        [
            # The next/previous links are absolute URLs built from the request.
            str(request.scheme),
            request.get_host(),
            request.path,
            query,
            " ".join(scopes),
            str(view.request.accepted_media_type),
        ]
    )
    digest = hashlib.sha256(identity.encode()).hexdigest()[:40]
    district_id = principal.district_id
    return district_id, cache.make_key(f"api-roster:page:{district_id}:{digest}")


def _encode(generation: bytes, page: CachedPage) -> bytes:
    ids = b"-" if page.student_ids is None else ",".join(map(str, page.student_ids)).encode()
    return b"\n".join([generation, ids, page.body])


def _decode(value: bytes, generation: bytes) -> CachedPage | None:
    stored, _, rest = value.partition(b"\n")
    if stored != generation:
        return None
    ids, _, body = rest.partition(b"\n")
    if ids == b"-":
        return CachedPage(body, None)
    return CachedPage(body, tuple(int(i) for i in ids.split(b",")) if ids else ())


class _Slot:
    def __init__(self, client: Any, key: str, generation: bytes, ttl: int) -> None:
        self.client, self.key, self.generation, self.ttl = client, key, generation, ttl

    def store(self, page: CachedPage) -> None:
        try:
            self.client.set(self.key, _encode(self.generation, page), ex=self.ttl)
        except (RedisError, OSError):
            logger.warning("roster page not cached (Redis unreachable)")


class RosterPageCache:
    """The :class:`gateway.inbound.views.PageCache` of the roster lists."""

    def fetch(self, view: IntegratorListView) -> CachedPage | _Slot | None:
        ttl = settings.API_LIST_CACHE_SECONDS
        client = _redis() if ttl > 0 else None
        if client is None:
            _BYPASS.inc()
            return None
        district_id, key = _page_key(view)
        generation_key = _generation_key(district_id)
        try:
            generation, value = client.mget(generation_key, key)
            if generation is None:
                # No generation yet (first read, or the key was evicted): start one. If a
                # writer set one meanwhile, its value is unknown here: do not cache this time.
                generation = secrets.token_hex(8).encode()
                if not client.set(generation_key, generation, nx=True):
                    _BYPASS.inc()
                    return None
        except (RedisError, OSError):
            _BYPASS.inc()
            return None
        page = _decode(value, generation) if value is not None else None
        if page is not None:
            _HIT.inc()
            return page
        _MISS.inc()
        return _Slot(client, key, generation, ttl)


roster_page_cache = RosterPageCache()
