"""Base classes for every integrator API view (attendance, and later sis, syncing,
notifications): authentication, scopes, per-credential throttling, district scoping,
idempotent ``POST``, ETags on details and the FERPA read log.

A view subclasses :class:`IntegratorListView`, :class:`IntegratorDetailView` or
:class:`IntegratorAPIView`, sets ``required_scopes`` and ``district_path``, and nests its
``InputSerializer``/``OutputSerializer``.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import orjson
from django.db.models import Model, QuerySet
from django.http import HttpResponse, QueryDict
from django_filters.filters import Filter, QuerySetRequestMixin
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import generics, status
from rest_framework.exceptions import NotAuthenticated
from rest_framework.filters import OrderingFilter, SearchFilter
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from attendance.services_access_log import access_log_record
from gateway.inbound.idempotency import (
    StoredResponse,
    idempotency_begin,
    idempotency_complete,
    request_fingerprint,
)
from gateway.inbound.permissions import HasScope
from gateway.inbound.principal import ApiPrincipal
from gateway.inbound.schema import IntegratorAutoSchema
from gateway.inbound.throttling import PrincipalRateThrottle
from gateway.models import IdempotencyRecord

IDEMPOTENCY_HEADER = "Idempotency-Key"


class _Replay(Exception):
    def __init__(self, stored: StoredResponse) -> None:
        self.stored = stored


class IntegratorAPIView(APIView):
    """Every request: authenticate (API key or OAuth token) → scope check → per-credential
    throttle → (POST with ``Idempotency-Key``) claim or replay → handler."""

    schema = IntegratorAutoSchema()
    # JSON only: one body format to document, validate and fingerprint.
    parser_classes = [JSONParser]
    permission_classes = [HasScope]
    throttle_classes = [PrincipalRateThrottle]
    # Method → scope; a method not listed is refused.
    required_scopes: ClassVar[dict[str, str]] = {}
    # Path from the view's model to its district id, e.g. "district_id", "school__district_id".
    district_path: ClassVar[str] = "district_id"

    @property
    def principal(self) -> ApiPrincipal:
        auth = self.request.auth
        if not isinstance(auth, ApiPrincipal):  # pragma: no cover - HasScope ran first
            raise NotAuthenticated()
        return auth

    def scope_to_district(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """Keep the rows of the caller's district: another district's ids answer 404."""
        return queryset.filter(**{self.district_path: self.principal.district_id})

    # --- idempotency ---------------------------------------------------------------------

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        """Read the raw body before authentication can consume it (needed for the idempotency
        fingerprint), then run DRF's checks, then claim the Idempotency-Key."""
        key = request.headers.get(IDEMPOTENCY_HEADER)
        raw_body = request._request.body if request.method == "POST" and key is not None else b""
        super().initial(request, *args, **kwargs)
        if request.method != "POST" or key is None:
            return
        outcome = idempotency_begin(
            owner=self.principal.owner,
            key=key.strip(),
            method="POST",
            path=request.path,
            fingerprint=request_fingerprint(method="POST", path=request.path, body=raw_body),
        )
        if isinstance(outcome, StoredResponse):
            raise _Replay(outcome)
        self._idempotency_record: IdempotencyRecord | None = outcome

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, _Replay):
            response = Response(exc.stored.body, status=exc.stored.status)
            response["Idempotent-Replayed"] = "true"
            return response
        return super().handle_exception(exc)

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        record = getattr(self, "_idempotency_record", None)
        if record is not None:
            self._idempotency_record = None
            idempotency_complete(record=record, status=response.status_code, body=response.data)
        return super().finalize_response(request, response, *args, **kwargs)

    # --- FERPA -----------------------------------------------------------------------------

    # The students logged for this request so far (None: none), kept with a cached page.
    logged_student_ids: tuple[int, ...] | None = None

    def log_student_access(self, student_ids: Iterable[int]) -> None:
        """Record that the caller was shown these students (FERPA §99.32 read log)."""
        shown = set(student_ids)
        self.logged_student_ids = tuple(sorted(shown.union(self.logged_student_ids or ())))
        match = self.request.resolver_match
        principal = self.principal
        access_log_record(
            district_id=principal.district_id,
            client_kind=principal.kind,
            client_id=principal.client_id,
            client_label=principal.label,
            endpoint=match.route if match is not None else self.request.path,
            method=str(self.request.method),
            student_ids=shown,
            query={
                key: self.request.query_params.getlist(key) for key in self.request.query_params
            },
        )


class _ReadMixin:
    """What list and detail views share: the district-scoped queryset and the FERPA hook."""

    # Return the ids of the students a row shows; None for rows that hold no student data.
    student_ids_of: ClassVar[Any] = None

    def base_queryset(self) -> QuerySet[Any]:
        raise NotImplementedError

    def get_queryset(self) -> QuerySet[Any]:
        if getattr(self, "swagger_fake_view", False):
            # Schema generation: no credentials, only the model matters.
            return self.base_queryset().none()
        return self.scope_to_district(self.base_queryset())  # type: ignore[attr-defined]

    def _log_rows(self, rows: Sequence[Model]) -> None:
        extract = type(self).student_ids_of
        if extract is None:
            return
        ids: set[int] = set()
        for row in rows:
            ids.update(extract(row))
        self.log_student_access(ids)  # type: ignore[attr-defined]


class _ReusedFilterForm:
    """Mixed into a filter set class by :class:`IntegratorFilterBackend`: copies its filters
    shallowly and builds its form class once, where django-filter deep-copies every filter
    and builds a new form class on every request (together ~1 ms of a 100-row page). Only
    used for filter sets none of whose filters depend on the request."""

    base_filters: ClassVar[dict[str, Filter]]
    _form_class: ClassVar[type[Any] | None] = None

    def __init__(
        self,
        data: Any = None,
        queryset: QuerySet[Any] | None = None,
        *,
        request: Any = None,
        prefix: str | None = None,
    ) -> None:
        # django_filters.filterset.BaseFilterSet.__init__, with copy.copy for deepcopy: a
        # filter's own state (model, parent) is set here; its configuration is read-only.
        if queryset is None:
            queryset = self._meta.model._default_manager.all()  # type: ignore[attr-defined]
        self.is_bound = data is not None
        self.data = data or QueryDict()
        self.queryset = queryset
        self.request = request
        self.form_prefix = prefix
        self.filters = {name: copy.copy(f) for name, f in self.base_filters.items()}
        for filter_ in self.filters.values():
            filter_.model = queryset.model
            filter_.parent = self
            if filter_.method is not None:
                # A ``method=`` filter holds a FilterMethod bound to its filter: rebind it to
                # this copy (deepcopy did that implicitly), or it looks for the wrong parent.
                filter_.method = filter_.method

    def get_form_class(self) -> type[Any]:
        cls = type(self)
        if cls._form_class is None:
            # The fields are built from the filters alone (no request), so one class serves.
            cls._form_class = super().get_form_class()  # type: ignore[misc]
        return cls._form_class


_reusable: dict[type[Any], type[Any]] = {}


class IntegratorFilterBackend(DjangoFilterBackend):
    """django-filter's backend, with each filter set's per-request set-up done once."""

    def get_filterset_class(self, view: Any, queryset: QuerySet[Any] | None = None) -> Any:
        filterset_class = super().get_filterset_class(view, queryset)
        if filterset_class is None:
            return None
        reused = _reusable.get(filterset_class)
        if reused is None:
            depends_on_request = any(
                isinstance(f, QuerySetRequestMixin) for f in filterset_class.base_filters.values()
            )
            reused = (
                filterset_class
                if depends_on_request
                else type(filterset_class.__name__, (_ReusedFilterForm, filterset_class), {})
            )
            _reusable[filterset_class] = reused
        return reused


@dataclass(frozen=True, slots=True)
class CachedPage:
    """A rendered 200 page of a list and the students it shows (None: no student data), so
    that serving it again still writes the FERPA access log row."""

    body: bytes
    student_ids: tuple[int, ...] | None


class PageSlot(Protocol):
    def store(self, page: CachedPage) -> None:
        """Keep the page just computed (failures are swallowed: it is only a cache)."""


class PageCache(Protocol):
    """A shared cache of rendered list pages (``attendance.api.cache.RosterPageCache``)."""

    def fetch(self, view: IntegratorListView) -> CachedPage | PageSlot | None:
        """Called after authentication, scopes and throttling, before the list is read.
        Return the current page for this request (same district, endpoint, query, host), or
        a slot to store the page about to be computed, or None when nothing may be cached
        now (e.g. the cache is unreachable): the view then computes as if uncached."""


class IntegratorListView(_ReadMixin, IntegratorAPIView, generics.ListAPIView):
    """A cursor-paginated, filterable, orderable list of one district's rows."""

    filter_backends = [IntegratorFilterBackend, SearchFilter, OrderingFilter]
    ordering_fields: ClassVar[list[str]] = ["id", "updated_at"]
    ordering = ["id"]
    search_fields: ClassVar[list[str]] = []

    # Fast path for hot lists whose output fields are plain columns: rows are read with
    # ``values()`` and rendered as they come (no model instances, no per-field serializer
    # calls: ~10x cheaper on a 100-row page). ``use_fast_path()`` may turn it off per request.
    fast_fields: ClassVar[tuple[str, ...]] = ()

    def use_fast_path(self) -> bool:
        return bool(self.fast_fields)

    # Rendered pages served again while the data behind them is unchanged (roster lists; see
    # docs/api.md, "Roster page cache"). None: every request reads the database.
    page_cache: ClassVar[PageCache | None] = None

    def fast_rows(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Complete the fast path's rows before they are rendered as they are (e.g. nest
        related rows read in one more query each). The default adds nothing."""
        return rows

    # Returns a plain HttpResponse for pages served through the cache: they are bytes already,
    # and DRF's finalize_response takes any HttpResponse.
    def list(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:  # type: ignore[override]
        slot: PageSlot | None = None
        if self.page_cache is not None:
            found = self.page_cache.fetch(self)
            if isinstance(found, CachedPage):
                if found.student_ids is not None:
                    self.log_student_access(found.student_ids)
                return self._rendered(found.body)
            slot = found
        queryset = self.filter_queryset(self.get_queryset())
        fast = self.use_fast_path()
        if fast:
            queryset = queryset.values(*self.fast_fields)
        page = self.paginate_queryset(queryset)
        rows = list(page) if page is not None else list(queryset)
        data = self.fast_rows(rows) if fast else self.get_serializer(rows, many=True).data
        self._log_rows(rows)
        response = self.get_paginated_response(data)
        if slot is None:
            return response
        # Rendered here, once, with the renderer DRF chose, so the stored bytes are exactly
        # what this response would have carried.
        rendered = request.accepted_renderer.render(
            response.data, request.accepted_media_type, self.get_renderer_context()
        )
        body = rendered.encode() if isinstance(rendered, str) else rendered
        # Hits log the students this request logged (whatever _log_rows does in a subclass).
        slot.store(CachedPage(body, self.logged_student_ids))
        return self._rendered(body)

    def _rendered(self, body: bytes) -> HttpResponse:
        """A 200 with an already rendered body and the Content-Type DRF's Response would set
        (DRF still adds Allow and Vary in finalize_response)."""
        renderer = self.request.accepted_renderer
        content_type = renderer.media_type
        if renderer.charset:
            content_type = f"{content_type}; charset={renderer.charset}"
        return HttpResponse(body, content_type=content_type)


def etag_for(data: Any) -> str:
    payload = orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str)
    return '"' + hashlib.sha256(payload).hexdigest()[:32] + '"'


def etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    candidates = [part.strip() for part in header.split(",")]
    return "*" in candidates or any(c.removeprefix("W/") == etag for c in candidates)


class IntegratorDetailView(_ReadMixin, IntegratorAPIView, generics.RetrieveAPIView):
    """One row of the caller's district, with a strong ``ETag`` over its representation;
    ``If-None-Match`` with a current tag answers 304 without a body."""

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        instance = self.get_object()
        data = self.get_serializer(instance).data
        self._log_rows([instance])
        etag = etag_for(data)
        if etag_matches(request.headers.get("If-None-Match"), etag):
            response = Response(status=status.HTTP_304_NOT_MODIFIED)
        else:
            response = Response(data)
        response["ETag"] = etag
        return response
