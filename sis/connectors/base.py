"""The connector base class: it owns the workflow, a connector fills in a few hooks.

Workflow of ``fetch(entity, since=...)``:

1. **Auth**: :meth:`Connector.request` adds credentials to every call (hook
   :meth:`~Connector.request_token` for OAuth 2.0 token connectors, or
   :meth:`~Connector.request_auth` for per-request signing such as OAuth 1.0a). Tokens are
   shared through a :class:`~sis.connectors.tokens.TokenStore`; a 401 makes exactly one
   re-authentication and one retry.
2. **Paging**: the hook :meth:`~Connector.fetch_raw` lists raw pages, usually through
   :meth:`Connector.paginate`, which stops on an empty or short page or at the reported total and
   detects a page served twice.
3. **Error classification**: 401/403/404/other 4xx become permanent
   :class:`~sis.connectors.errors.ConnectorError` subclasses with the SIS's own message (hook
   :meth:`~Connector.error_message`); throttling and 5xx are transient (the gateway retries).
4. **Mapping**: the hook :meth:`~Connector.map_record` turns one raw item into canonical records
   (:mod:`sis.connectors.records`), keeping the raw payload. An item that fails to map is put in
   the page's ``quarantined`` list with the reason; the fetch goes on.

Every outbound call goes through ``gateway.client.request`` on the connection's route.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any, ClassVar
from urllib.parse import urljoin

import orjson
import requests
from requests.auth import AuthBase

from core.read_ahead import read_ahead
from gateway import client as gateway
from gateway.errors import RateLimited
from sis.connectors.columns import ColumnStore, MemoryColumnStore
from sis.connectors.errors import (
    AuthenticationFailed,
    ConfigurationError,
    ConnectorError,
    MalformedRecord,
    NotFound,
    PermissionDenied,
    RepeatedPage,
    TransientConnectorError,
    UnsupportedOperation,
)
from sis.connectors.options import NoOptions, options_parse
from sis.connectors.records import Entity, GradeWrite, Page, Quarantined, Record, as_utc
from sis.connectors.tokens import MemoryTokenStore, Token, TokenStore


class Capability(StrEnum):
    READ_ROSTER = "read_roster"
    READ_GUARDIANS = "read_guardians"
    DELTA = "delta"
    PUSH_EVENTS = "push_events"
    WRITE_DEMOGRAPHICS = "write_demographics"
    WRITE_GRADES = "write_grades"
    WRITE_ATTENDANCE = "write_attendance"


def parse_json(response: requests.Response) -> Any:
    """The response body as JSON (``ValueError`` when it is not). orjson: a 1,000-record page
    parses three times faster than with ``response.json()``, and a big district's sync reads
    a million records."""
    return orjson.loads(response.content)


@dataclass
class ConnectorConfig:
    """Everything a connector needs, decoupled from the database (see
    :func:`sis.services.sis_connection_connector` for building one from a SISConnection)."""

    key: str  # stable id of the connection: names its gateway route and token cache
    base_url: str = ""
    token_url: str = ""
    client_id: str = field(default="", repr=False)
    client_secret: str = field(default="", repr=False)
    vendor: str = "generic"
    options: dict[str, Any] = field(default_factory=dict)
    extra_secrets: dict[str, str] = field(default_factory=dict, repr=False)
    rate_per_second: float | None = None
    max_concurrency: int | None = None
    capabilities: frozenset[str] | None = None  # None: everything the connector declares
    token_store: TokenStore | None = None
    #: where gradebook columns the connector created are remembered (None: this process only)
    column_store: ColumnStore | None = None


@dataclass
class RawPage:
    """One page as the SIS sent it, before mapping."""

    items: list[Any]
    total: int | None = None  # what the SIS reports for the whole listing, when it does
    has_next: bool | None = None  # from a Link header or similar; None when unknown


class Connector:
    """Base class of every SIS connector. Subclasses set the class attributes and hooks."""

    #: the provider key stored on SISConnection.provider
    key: ClassVar[str] = ""
    label: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    #: the entities :meth:`fetch` can list, in a dependency-friendly order
    entities: ClassVar[tuple[Entity, ...]] = ()
    #: a frozen dataclass of this connector's options (validated by ``options_parse``)
    Options: ClassVar[type] = NoOptions
    #: whether :meth:`read_grade` can read a written grade back. False for a SIS that offers
    #: no such read (PowerTeacher Pro): the write-back sender then ends a grade the SIS took
    #: as "accepted, not verifiable" instead of "verified", and re-sends an abandoned one (a
    #: grade write must therefore be a replace)
    grades_verifiable: ClassVar[bool] = True
    #: raw pages :meth:`fetch` lets a thread of its own fetch ahead of the one it is mapping
    #: (0: no thread). The SIS then builds the next page while we map this one instead of
    #: idling until we ask (docs/benchmarks.md, fourteenth look). Listing requests stay one at
    #: a time, in order. 0 for sources that never wait (a file already on disk)
    raw_pages_ahead: ClassVar[int] = 1
    #: whether :meth:`request_token` is used (OAuth 2.0 client credentials)
    uses_tokens: bool = True

    def __init__(self, config: ConnectorConfig) -> None:
        self.config = config
        self.options: Any = options_parse(self.Options, config.options)
        self.enabled_capabilities = frozenset(
            Capability(c) for c in (config.capabilities or self.capabilities)
        )
        unknown = self.enabled_capabilities - self.capabilities
        if unknown:
            raise ConfigurationError(
                f"{self.label or self.key} cannot {', '.join(sorted(unknown))}."
            )
        self.token_store: TokenStore = config.token_store or MemoryTokenStore()
        self.column_store: ColumnStore = config.column_store or MemoryColumnStore()
        self._token: Token | None = None
        #: the SIS's clock (its ``Date`` header) at the first answer this connector received,
        #: or None: whatever the SIS changes later carries a later modification time, so the
        #: engine never starts the next delta after it (a record edited at the SIS while a run
        #: was reading other records would otherwise be skipped by every delta)
        self.first_answer_at: dt.datetime | None = None
        self.route = gateway.Route(provider=self.key, key=config.key, policy=self.route_policy())
        #: counters a caller or test may read (token requests made by this instance, calls)
        self.stats = {"token_requests": 0, "calls": 0, "reauthentications": 0}
        self.validate_config()

    # ----------------------------------------------------------------- hooks -------------------

    def validate_config(self) -> None:
        """Check the connection settings beyond the typed options (URLs, credentials present);
        raise :class:`ConfigurationError` with a message an administrator can act on."""
        if not self.config.base_url:
            raise ConfigurationError("The connection has no base URL.")

    def route_policy(self) -> gateway.RoutePolicy:
        """The gateway policy for this connection's route: rate and concurrency limits."""
        return gateway.RoutePolicy(
            rate_per_second=self.config.rate_per_second,
            max_in_flight=self.config.max_concurrency,
        )

    def request_token(self) -> Token:
        """Ask the SIS for a new access token (only for ``uses_tokens`` connectors).

        Called at most once at a time per connection across workers (the base class holds the
        token store's lock). Use :meth:`request` with ``authenticated=False``. A refusal must
        raise :class:`AuthenticationFailed` with a clear message.
        """
        raise NotImplementedError

    def request_auth(self) -> AuthBase | None:
        """Credentials for connectors that sign each request instead of using tokens (e.g.
        OAuth 1.0a). Return a ``requests`` auth object, or ``None``."""
        return None

    def fetch_raw(self, entity: Entity, *, since: str | None) -> Iterator[RawPage]:
        """Yield the raw pages listing ``entity`` (changed after ``since`` when given and the
        connector has the ``delta`` capability). Usually built with :meth:`paginate`."""
        raise NotImplementedError

    def map_record(self, entity: Entity, item: Any) -> Iterable[Record]:
        """Map one raw item of ``entity`` to canonical records (usually one; several when one
        payload holds several, e.g. a student's enrollments). Keep ``item`` as ``raw``. Raise
        :class:`MalformedRecord` (or let KeyError/TypeError/ValueError out) for a bad item: it
        is quarantined, not fatal."""
        raise NotImplementedError

    def is_delta(self, entity: Entity, *, since: str | None) -> bool:
        """Whether a fetch of ``entity`` returns changes only (records not in it are unchanged)
        rather than the complete listing (records not in it are gone)."""
        return since is not None

    def count_raw(self, entity: Entity) -> int | None:
        """How many ``entity`` items the SIS reports (``/count``, ``X-Total-Count``), or None."""
        return None

    def fetch_one_raw(self, entity: Entity, source_id: str) -> Any | None:
        """Fetch one raw item by its source id for a targeted re-fetch; None if it is gone."""
        raise UnsupportedOperation(f"{self.label or self.key} cannot re-fetch one {entity}.")

    def source_id_of(self, item: Any) -> str | None:
        """The source id of a raw item, for quarantine reports (best effort, never raises)."""
        if isinstance(item, dict):
            for name in ("sourcedId", "id", "dcid"):
                if item.get(name) not in (None, ""):
                    return str(item[name])
        return None

    def error_message(self, response: requests.Response) -> str:
        """The SIS's own error message from an error response (no secrets, no student data)."""
        return f"HTTP {response.status_code}"

    def throttle_wait(self, response: requests.Response) -> float | None:
        """Seconds the SIS asks us to wait when ``response`` is a vendor-specific throttle
        answer (not a plain 429, which the gateway handles); None when it is not one."""
        return None

    # ----------------------------------------------------------------- write-back hooks --------

    def write_fields(
        self, entity: Entity, source_id: str, values: dict[str, Any], *, idempotency_key: str
    ) -> None:
        """Write field values of one record to the SIS (the ``write_demographics`` capability
        for students). ``values`` uses the canonical record's field names (``last_name``,
        ``birth_date`` as an ISO date, ...). Sending the same ``idempotency_key`` and values
        again must not write twice (an update to the same values, or a key the SIS dedupes).
        Raise a permanent :class:`ConnectorError` when the SIS refuses (a field it does not let
        us write, a record it does not know) and a transient error when it may pass. The write
        is verified afterwards by reading the record back with :meth:`fetch_one`."""
        raise UnsupportedOperation(f"{self.label or self.key} cannot write {entity} fields.")

    def write_grade(self, grade: GradeWrite, *, idempotency_key: str) -> None:
        """Write one participation grade to the SIS gradebook (``write_grades``): create or
        replace the column ``grade.line_item_id`` and the cell ``grade.result_id``. Same
        contract as :meth:`write_fields` for errors and idempotency."""
        raise UnsupportedOperation(f"{self.label or self.key} cannot write grades.")

    def read_grade(self, grade: GradeWrite) -> float | None:
        """The score the SIS now holds for ``grade``'s cell (None when it has none): how a
        grade write is verified."""
        raise UnsupportedOperation(f"{self.label or self.key} cannot read grades back.")

    # ----------------------------------------------------------------- public API --------------

    def fetch(self, entity: Entity | str, *, since: str | None = None) -> Iterator[Page]:
        """Stream pages of canonical records of ``entity``; ``since`` (ISO-8601 UTC) asks for
        changes only and needs the ``delta`` capability."""
        entity = Entity(entity)
        if entity not in self.entities:
            raise UnsupportedOperation(f"{self.label or self.key} does not provide {entity}.")
        if since is not None:
            self.require(Capability.DELTA)
        raw_pages: Iterator[RawPage] = iter(self.fetch_raw(entity, since=since))
        if self.raw_pages_ahead > 0:
            raw_pages = read_ahead(raw_pages, depth=self.raw_pages_ahead, name=f"{self.key}-pages")
        try:
            for number, raw_page in enumerate(raw_pages):
                records, quarantined = self._map_items(entity, raw_page.items)
                yield Page(
                    entity,
                    records,
                    quarantined,
                    number=number,
                    total=raw_page.total,
                    delta=self.is_delta(entity, since=since),
                )
        finally:
            # Whatever ends the listing (a mapping error the loop does not catch, a caller that
            # stops early), the page thread stops now, not when the generator is collected.
            close = getattr(raw_pages, "close", None)
            if close is not None:
                close()

    def _map_items(
        self, entity: Entity, items: list[Any]
    ) -> tuple[list[Record], list[Quarantined]]:
        """A page's items mapped; an item that fails to map is reported, not raised."""
        records: list[Record] = []
        quarantined: list[Quarantined] = []
        for item in items:
            try:
                records.extend(self.map_record(entity, item))
            except (MalformedRecord, KeyError, TypeError, ValueError, AttributeError) as exc:
                quarantined.append(
                    Quarantined(
                        entity=entity,
                        reason=_reason(exc),
                        raw=item,
                        source_id=self.source_id_of(item),
                    )
                )
        return records, quarantined

    def fetch_item(self, entity: Entity | str, source_id: str) -> list[Record] | None:
        """Re-fetch the SIS item that ``source_id`` names and return every ``entity`` record it
        maps to (a student's item: all its enrollment spans), for targeted runs. None if the
        SIS no longer has the item. A malformed item raises :class:`MalformedRecord`."""
        entity = Entity(entity)
        item = self.fetch_one_raw(entity, source_id)
        if item is None:
            return None
        try:
            return list(self.map_record(entity, item))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedRecord(_reason(exc)) from exc

    def fetch_one(self, entity: Entity | str, source_id: str) -> Record | None:
        """Re-fetch one record (a write-back's read-back). None if the SIS no longer has it.
        A malformed item raises :class:`MalformedRecord`."""
        mapped = self.fetch_item(entity, source_id) or []
        matching = [r for r in mapped if r.source_id == source_id] or mapped
        return matching[0] if matching else None

    def count(self, entity: Entity | str) -> int | None:
        return self.count_raw(Entity(entity))

    def authenticate(self) -> None:
        """Make sure we hold valid credentials (fetches a token when needed)."""
        if self.uses_tokens:
            self._valid_token()
        else:
            self.check_credentials()

    def check_credentials(self) -> None:
        """For connectors without tokens: prove the credentials work (hook; default: count
        the first entity)."""
        if self.entities:
            self.count_raw(self.entities[0])

    def test(self) -> dict[str, int | None]:
        """Authenticate and report, per entity, the count the SIS gives (None if unknown)."""
        self.authenticate()
        return {str(entity): self.count_raw(entity) for entity in self.entities}

    def require(self, capability: Capability) -> None:
        if capability not in self.enabled_capabilities:
            raise UnsupportedOperation(
                f"{self.label or self.key} connection does not have the {capability} capability."
            )

    # ----------------------------------------------------------------- HTTP --------------------

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return urljoin(self.config.base_url.rstrip("/") + "/", path.lstrip("/"))

    def request(
        self,
        method: str,
        path: str,
        *,
        path_template: str | None = None,
        authenticated: bool = True,
        retry_writes: bool = False,
        throttle_retries: int = 3,
        **kwargs: Any,
    ) -> requests.Response:
        """One call through the gateway with auth, one re-auth on 401, throttle waits and
        error classification. Returns only 2xx/3xx responses; raises otherwise."""
        url = self.url(path)
        template = path_template or path
        reauthenticated = False
        throttled = 0
        while True:
            token: Token | None = None
            call_kwargs = dict(kwargs)
            if authenticated:
                if self.uses_tokens:
                    token = self._valid_token()
                    call_kwargs["auth"] = _Bearer(token)
                else:
                    call_kwargs["auth"] = self.request_auth()
            self.stats["calls"] += 1
            response = gateway.request(
                self.route,
                method,
                url,
                path_template=template,
                retry_writes=retry_writes,
                **call_kwargs,
            )
            if response.status_code == 401 and token is not None and not reauthenticated:
                # The token died early (revoked, server restarted, clock skew): exactly one
                # re-authentication and one retry.
                reauthenticated = True
                self.stats["reauthentications"] += 1
                self._token = None
                self.token_store.discard(token)
                continue
            wait = self.throttle_wait(response) if response.status_code >= 400 else None
            if wait is not None:
                throttled += 1
                if wait > self.route.policy.max_wait or throttled > throttle_retries:
                    # Tell the gateway, so every worker on this route waits, not just us.
                    block = getattr(gateway, "route_block", None)
                    if block is not None:
                        block(self.route, wait)
                    raise RateLimited(f"{self.route.name} throttled by the SIS", retry_after=wait)
                time.sleep(wait)
                continue
            if response.status_code >= 400:
                self.raise_for_response(response)
            if self.first_answer_at is None and authenticated:
                # The SIS's own clock (a token endpoint may be another server, with another).
                self.first_answer_at = _answer_date(response)
            return response

    def raise_for_response(self, response: requests.Response) -> None:
        status = response.status_code
        message = self.error_message(response)
        label = self.label or self.key
        if status == 401:
            raise AuthenticationFailed(
                f"{label} refused the credentials (HTTP 401): {message}", status=status
            )
        if status == 403:
            raise PermissionDenied(
                f"{label} denied access to {response.request.path_url.split('?')[0]} "
                f"(HTTP 403): {message}",
                status=status,
            )
        if status == 404:
            raise NotFound(
                f"{label} has no {response.request.path_url.split('?')[0]} (HTTP 404): {message}",
                status=status,
            )
        if status == 429:
            raise RateLimited(f"{self.route.name} throttled", retry_after=None)
        if status >= 500:
            raise TransientConnectorError(f"{label} failed (HTTP {status}): {message}")
        raise ConnectorError(
            f"{label} rejected the request (HTTP {status}): {message}", status=status
        )

    def get_json(self, path: str, **kwargs: Any) -> Any:
        response = self.request("GET", path, **kwargs)
        try:
            return parse_json(response)
        except ValueError as exc:
            # A truncated or garbled body: the page as a whole is unreadable, try again later.
            raise TransientConnectorError(
                f"{self.label or self.key} sent an unreadable body for {path}"
            ) from exc

    # ----------------------------------------------------------------- tokens ------------------

    def _valid_token(self) -> Token:
        token = self._token
        if token is not None and token.fresh():
            return token
        token = self.token_store.load()
        if token is None or not token.fresh():
            with self.token_store.lock():
                # Another worker may have refreshed while we waited for the lock.
                token = self.token_store.load()
                if token is None or not token.fresh():
                    self.stats["token_requests"] += 1
                    token = self.request_token()
                    self.token_store.save(token)
        self._token = token
        return token

    # ----------------------------------------------------------------- paging ------------------

    def paginate(
        self,
        get_page: Callable[[int, int], RawPage],
        *,
        page_size: int,
        total: int | None = None,
        max_pages: int | None = None,
    ) -> Iterator[RawPage]:
        """Page through one listing. ``get_page(index, offset)`` fetches page ``index`` (from 0)
        starting at item ``offset``. Stops on an empty page, a short page (when no total is
        known), when the reported total is reached, or when the page says there is no next.

        A page identical to the previous one is requested again once; if it comes back the
        same, :class:`RepeatedPage` is raised (the server ignores the paging parameters).
        """
        index = 0
        offset = 0
        previous: tuple[Any, ...] | None = None
        while max_pages is None or index < max_pages:
            page = get_page(index, offset)
            fingerprint = _fingerprint(page.items)
            if page.items and fingerprint == previous:
                page = get_page(index, offset)
                fingerprint = _fingerprint(page.items)
                if fingerprint == previous:
                    raise RepeatedPage(
                        f"{self.label or self.key} served the same page twice at offset {offset}"
                    )
            if page.total is None:
                page.total = total
            else:
                total = page.total
            if not page.items:
                if index == 0:
                    yield page
                return
            yield page
            previous = fingerprint
            offset += len(page.items)
            index += 1
            if page.has_next is False:
                return
            if total is not None:
                if offset >= total:
                    return
            elif page.has_next is None and len(page.items) < page_size:
                return


class _Bearer(AuthBase):
    def __init__(self, token: Token) -> None:
        self.token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = (
            f"{self.token.token_type or 'Bearer'} {self.token.access_token}"
        )
        return r


def _answer_date(response: requests.Response) -> dt.datetime | None:
    """The ``Date`` header of an answer as an aware date-time, or None (absent, malformed)."""
    try:
        moment = parsedate_to_datetime(response.headers.get("Date") or "")
    except (TypeError, ValueError, IndexError):
        return None
    return as_utc(moment)


def _fingerprint(items: list[Any]) -> tuple[Any, ...]:
    if not items:
        return ()

    def ident(item: Any) -> Any:
        if isinstance(item, dict):
            return item.get("sourcedId") or item.get("id") or item.get("dcid") or repr(item)[:200]
        return repr(item)[:200]

    return (len(items), ident(items[0]), ident(items[-1]), ident(items[len(items) // 2]))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}" if exc.args else "missing field"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]
