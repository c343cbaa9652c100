"""OneRoster 1.1 and 1.2 REST, with vendor profiles for Infinite Campus, Skyward and generic
servers. Facts from /work/shared/reference/sis-apis.md §2–3.

- Auth: OAuth 2.0 client credentials against the configured token URL (Basic auth or form
  fields, optional scope); OAuth 1.0a HMAC-SHA256 for legacy 1.1 servers (the signature covers
  every query parameter, including limit/offset/filter).
- Paging: ``limit``/``offset``; ``X-Total-Count`` when sent, ``Link: rel="next"`` when sent,
  else a short or empty page ends the listing; a page served twice is detected.
- Deltas: ``filter=dateLastModified>'…'``; deleted records come as ``status: tobedeleted``.
- 1.1 users carry ``role``/``orgs``; 1.2 users ``roles[]``/``primaryOrg``.
- Guardians: users whose role is parent, guardian or relative; the links from their ``agents``.
- Staff: ``teachers``, then the administrators from ``users`` filtered by role (1.1 ``role``,
  1.2 ``roles.role``).
- Gradebook write-back: PUT ``categories``/``lineItems``/``results`` under our own sourcedIds
  (create or replace, so a repeated write is idempotent); verified by GET ``results/{id}``.
- Errors: ``statusInfoSet`` bodies; 429 is "server busy, retry later".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import requests
from requests.auth import AuthBase

from gateway import client as gateway
from sis.connectors.base import Capability, Connector, RawPage, parse_json
from sis.connectors.errors import AuthenticationFailed, ConfigurationError, NotFound
from sis.connectors.oneroster import mapping
from sis.connectors.records import Entity, GradeWrite, Record
from sis.connectors.tokens import Token

GUARDIAN_ROLES = ("parent", "guardian", "relative")
ADMINISTRATOR_ROLE = "administrator"
#: the gradebook category our participation grades are filed under (our own sourcedId)
CATEGORY_ID = "attendance-participation"
ENDPOINTS: dict[Entity, tuple[str, str]] = {
    # entity → (collection path, key of the list in the body)
    Entity.SCHOOL: ("schools", "orgs"),
    Entity.TERM: ("academicSessions", "academicSessions"),
    Entity.COURSE: ("courses", "courses"),
    Entity.SECTION: ("classes", "classes"),
    Entity.STAFF: ("teachers", "users"),
    Entity.STUDENT: ("students", "users"),
    Entity.ENROLLMENT: ("students", "users"),
    Entity.GUARDIAN: ("users", "users"),
    Entity.STUDENT_GUARDIAN: ("users", "users"),
    Entity.SECTION_ENROLLMENT: ("enrollments", "enrollments"),
}
ONE_KEYS = {
    "schools": "org",
    "academicSessions": "academicSession",
    "courses": "course",
    "classes": "class",
    "teachers": "user",
    "students": "user",
    "users": "user",
    "enrollments": "enrollment",
}


@dataclass(frozen=True)
class OneRosterOptions:
    auth: Literal["oauth2", "oauth1"] = "oauth2"
    #: how the client credentials go to the token URL
    token_auth: Literal["basic", "form"] = "basic"  # noqa: S105 (a mode, not a secret)
    #: OAuth 2.0 scope(s); empty: the server's default for the client
    scope: str = ""
    #: page size asked for (servers may cap it lower; the loop copes)
    page_size: int = 100
    #: the server understands filter=role='…' on /users (else all users are paged and filtered)
    guardian_filter: bool = True
    #: the server supports filter=dateLastModified>'…' (vendor support varies)
    delta: bool = True
    #: send at most this many calls at once (Infinite Campus asks for serial calls at peak)
    max_concurrency: int = 0
    #: staff includes administrators (users with the administrator role), not only teachers
    administrators: bool = True

    def validate(self) -> None:
        if not 1 <= self.page_size <= 10_000:
            raise ConfigurationError("page_size must be between 1 and 10000.")
        if self.max_concurrency < 0:
            raise ConfigurationError("max_concurrency may not be negative.")


class OneRosterConnector(Connector):
    """Shared by both versions; subclasses set ``version``."""

    version: str = "1.2"
    capabilities = frozenset(
        {
            Capability.READ_ROSTER,
            Capability.READ_GUARDIANS,
            Capability.DELTA,
            Capability.WRITE_GRADES,
        }
    )
    entities = (
        Entity.SCHOOL,
        Entity.TERM,
        Entity.COURSE,
        Entity.STAFF,
        Entity.SECTION,
        Entity.STUDENT,
        Entity.ENROLLMENT,
        Entity.GUARDIAN,
        Entity.STUDENT_GUARDIAN,
        Entity.SECTION_ENROLLMENT,
    )
    Options = OneRosterOptions
    options: OneRosterOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.uses_tokens = self.options.auth == "oauth2"
        self._category_written = False

    # ---------------------------------------------------------------- configuration -----------
    def validate_config(self) -> None:
        super().validate_config()
        if not self.config.client_id or not self.config.client_secret:
            raise ConfigurationError("OneRoster needs a client ID (key) and secret.")
        vendor = self.config.vendor
        if self.options.auth == "oauth1":
            if self.version != "1.1":
                raise ConfigurationError("OAuth 1.0a is only used by OneRoster 1.1 servers.")
            if vendor == "infinite-campus":
                raise ConfigurationError(
                    "Infinite Campus retired OAuth 1.0a on 30 June 2023; use OAuth 2.0."
                )
        elif not self.config.token_url:
            raise ConfigurationError("OAuth 2.0 needs the token URL copied from the SIS.")
        if (
            vendor == "infinite-campus"
            and self.options.auth == "oauth2"
            and ("appName=" not in self.config.token_url)
        ):
            raise ConfigurationError(
                "Infinite Campus token URLs look like https://<host>/campus/oauth2/token?"
                "appName=<appName>; copy it from Campus exactly as shown."
            )

    def route_policy(self) -> gateway.RoutePolicy:
        concurrency = self.config.max_concurrency or self.options.max_concurrency or None
        if concurrency is None and self.config.vendor == "infinite-campus":
            # Infinite Campus asks integrations for serial calls at peak times (school hours)
            # and allows a few in parallel off-peak.
            window = getattr(gateway, "ConcurrencyWindow", None)
            if window is not None:
                return gateway.RoutePolicy(
                    rate_per_second=self.config.rate_per_second,
                    max_in_flight=3,
                    concurrency_windows=(
                        window(start=dt.time(6, 30), end=dt.time(17, 0), max_in_flight=1),
                    ),
                )
            concurrency = 1
        return gateway.RoutePolicy(
            rate_per_second=self.config.rate_per_second, max_in_flight=concurrency
        )

    # ---------------------------------------------------------------- auth --------------------
    def request_token(self) -> Token:
        data = {"grant_type": "client_credentials"}
        if self.options.scope:
            data["scope"] = self.options.scope
        kwargs: dict[str, Any] = {}
        if self.options.token_auth == "basic":  # noqa: S105
            kwargs["auth"] = (self.config.client_id, self.config.client_secret)
        else:
            data.update(client_id=self.config.client_id, client_secret=self.config.client_secret)
        response = gateway.request(
            self.route,
            "POST",
            self.config.token_url,
            path_template="/token",
            data=data,
            retry_writes=True,
            **kwargs,
        )
        return mapping.token_from_response(response, label=self.label)

    def request_auth(self) -> AuthBase | None:
        from oauthlib.oauth1 import SIGNATURE_HMAC_SHA256
        from requests_oauthlib import OAuth1

        # requests puts `params` into the URL before auth runs, so the signature covers them.
        return OAuth1(
            self.config.client_id,
            client_secret=self.config.client_secret,
            signature_method=SIGNATURE_HMAC_SHA256,
            signature_type="AUTH_HEADER",
        )

    def check_credentials(self) -> None:
        self.get_json("schools", params={"limit": 1})

    def error_message(self, response: requests.Response) -> str:
        return mapping.error_message(response)

    # ---------------------------------------------------------------- listing -----------------
    def _filter(
        self, entity: Entity, since: str | None, *, roles: tuple[str, ...] = ()
    ) -> str | None:
        clauses = []
        if not roles and entity in (Entity.GUARDIAN, Entity.STUDENT_GUARDIAN):
            roles = GUARDIAN_ROLES if self.options.guardian_filter else ()
        if roles:
            field = "role" if self.version == "1.1" else "roles.role"
            clauses.append(" OR ".join(f"{field}='{role}'" for role in roles))
        if since is not None:
            clauses.append(f"dateLastModified>'{since}'")
        if not clauses:
            return None
        if len(clauses) == 1:
            return clauses[0]
        return " AND ".join(f"({c})" for c in clauses)

    def _listings(self, entity: Entity) -> list[tuple[str, str, tuple[str, ...]]]:
        """(collection, body key, role filter) listed for ``entity``: staff are the teachers
        plus, when wanted, the users with the administrator role."""
        path, key = ENDPOINTS[entity]
        parts: list[tuple[str, str, tuple[str, ...]]] = [(path, key, ())]
        if entity == Entity.STAFF and self.options.administrators:
            parts.append(("users", "users", (ADMINISTRATOR_ROLE,)))
        return parts

    def fetch_raw(self, entity: Entity, *, since: str | None) -> Iterator[RawPage]:
        for path, key, roles in self._listings(entity):
            params: dict[str, Any] = {}
            filter_ = self._filter(entity, since if self.options.delta else None, roles=roles)
            if filter_:
                params["filter"] = filter_
            yield from self.listing(path, key, params)

    def listing(self, path: str, key: str, params: dict[str, Any]) -> Iterator[RawPage]:
        size = self.options.page_size

        def get_page(index: int, offset: int) -> RawPage:
            response = self.request("GET", path, params={**params, "limit": size, "offset": offset})
            try:
                body = parse_json(response)
            except ValueError:
                from sis.connectors.errors import TransientConnectorError

                raise TransientConnectorError(f"{self.label} sent an unreadable page") from None
            items = body.get(key) if isinstance(body, dict) else None
            if items is None and isinstance(body, dict) and len(body) == 1:
                items = next(iter(body.values()))
            total_header = response.headers.get("X-Total-Count")
            total = int(total_header) if total_header and total_header.isdigit() else None
            link = response.headers.get("Link")
            has_next = None if not link else 'rel="next"' in link
            return RawPage(items if isinstance(items, list) else [], total=total, has_next=has_next)

        yield from self.paginate(get_page, page_size=size)

    def count_raw(self, entity: Entity) -> int | None:
        total = 0
        for path, _key, roles in self._listings(entity):
            params: dict[str, Any] = {"limit": 1, "offset": 0}
            filter_ = self._filter(entity, None, roles=roles)
            if filter_:
                params["filter"] = filter_
            response = self.request("GET", path, params=params)
            header = response.headers.get("X-Total-Count")
            if not header or not header.isdigit():
                return None
            total += int(header)
        return total

    def map_record(self, entity: Entity, item: Any) -> Iterable[Record]:
        return mapping.map_item(entity, item, version=self.version)

    def fetch_one_raw(self, entity: Entity, source_id: str) -> Any | None:
        path, _ = ENDPOINTS[entity]
        if entity == Entity.STUDENT_GUARDIAN:
            source_id = source_id.split(":")[-1]
        elif entity == Entity.ENROLLMENT:
            source_id = source_id.split(":")[0]
        elif entity == Entity.STAFF:
            path = "users"  # an administrator is not under teachers/
        try:
            body = self.get_json(f"{path}/{source_id}", path_template=f"{path}/{{id}}")
        except NotFound:
            return None
        return body.get(ONE_KEYS[path]) if isinstance(body, dict) else None

    # ---------------------------------------------------------------- writes ------------------
    def gradebook_url(self, path: str) -> str:
        base = self.config.base_url.rstrip("/")
        if self.version == "1.2":
            base = base.replace("/rostering/v1p2", "/gradebook/v1p2")
        return f"{base}/{path.lstrip('/')}"

    def _vendor_headers(self) -> dict[str, str]:
        key = self.config.extra_secrets.get("vendor_key")
        secret = self.config.extra_secrets.get("vendor_secret")
        if self.config.vendor == "infinite-campus" and key and secret:
            # Infinite Campus gradebook endpoints need the partner's vendor key pair.
            return {"x-vendor-authorization": f"{key}:{secret}"}
        return {}

    def line_item_put(self, *, source_id: str, line_item: dict[str, Any]) -> dict[str, Any]:
        """Create or replace a lineItem under our own sourcedId (an idempotent upsert)."""
        self.require(Capability.WRITE_GRADES)
        response = self.request(
            "PUT",
            self.gradebook_url(f"lineItems/{source_id}"),
            path_template="lineItems/{id}",
            headers=self._vendor_headers(),
            json={"lineItem": {"sourcedId": source_id, **line_item}},
        )
        return dict(response.json() or {})

    def result_put(self, *, source_id: str, result: dict[str, Any]) -> dict[str, Any]:
        """Create or replace a result under our own sourcedId (an idempotent upsert)."""
        self.require(Capability.WRITE_GRADES)
        response = self.request(
            "PUT",
            self.gradebook_url(f"results/{source_id}"),
            path_template="results/{id}",
            headers=self._vendor_headers(),
            json={"result": {"sourcedId": source_id, **result}},
        )
        return dict(response.json() or {})

    def write_grade(self, grade: GradeWrite, *, idempotency_key: str) -> None:
        # Every PUT names its object with our own sourcedId: sending twice replaces, never
        # duplicates, so the idempotency key needs no server support.
        self.require(Capability.WRITE_GRADES)
        day = grade.date.isoformat()
        if not self._category_written:
            self.request(
                "PUT",
                self.gradebook_url(f"categories/{CATEGORY_ID}"),
                path_template="categories/{id}",
                headers=self._vendor_headers(),
                json={
                    "category": {
                        "sourcedId": CATEGORY_ID,
                        "status": "active",
                        "title": "Participation",
                    }
                },
            )
            self._category_written = True
        line_item: dict[str, Any] = {
            "status": "active",
            "title": grade.title[:50],  # gradebooks cut titles at 50 characters
            "assignDate": day,
            "dueDate": day,
            "class": {"sourcedId": grade.section_id, "type": "class"},
            "category": {"sourcedId": CATEGORY_ID, "type": "category"},
            "resultValueMin": 0,
            "resultValueMax": grade.score_max,
        }
        if grade.term_id:
            line_item["gradingPeriod"] = {"sourcedId": grade.term_id, "type": "academicSession"}
        if grade.school_id:
            line_item["school"] = {"sourcedId": grade.school_id, "type": "org"}
        self.line_item_put(source_id=grade.line_item_id, line_item=line_item)
        self.result_put(
            source_id=grade.result_id,
            result={
                "status": "active",
                "lineItem": {"sourcedId": grade.line_item_id, "type": "lineItem"},
                "student": {"sourcedId": grade.student_id, "type": "user"},
                "scoreStatus": "fully graded",
                "score": grade.score,
                "scoreDate": day,
            },
        )

    def read_grade(self, grade: GradeWrite) -> float | None:
        try:
            body = self.get_json(
                self.gradebook_url(f"results/{grade.result_id}"),
                path_template="results/{id}",
                headers=self._vendor_headers(),
            )
        except NotFound:
            return None
        result = body.get("result") if isinstance(body, dict) else None
        score = result.get("score") if isinstance(result, dict) else None
        return None if score in (None, "") else float(score)


class OneRoster11Connector(OneRosterConnector):
    key = "oneroster-1.1"
    label = "OneRoster 1.1"
    version = "1.1"


class OneRoster12Connector(OneRosterConnector):
    key = "oneroster-1.2"
    label = "OneRoster 1.2"
    version = "1.2"


__all__ = ["AuthenticationFailed", "OneRoster11Connector", "OneRoster12Connector"]
