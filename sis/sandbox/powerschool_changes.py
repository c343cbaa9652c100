"""The PowerSchool sandbox's ID map, data versions and event subscriptions (a mixin of
:class:`sis.sandbox.powerschool.PowerSchoolDialect`).

- ``com.pearson.core.student.student_dcid_id_map`` maps a student's DCID to its ID (the ID is
  the DCID plus 3,000,000, so the two really differ);
- the district's data version is ``1000 + day``; a data-version PowerQuery answers the rows the
  change script touched after a version, by table;
- one event subscription is kept; after each ``advance`` the changes are POSTed, signed, to its
  callback URL.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import urllib.request
from typing import Any

from sis.sandbox.district import BASE_MODIFIED, Change, District, changed_positions, day_timestamp
from sis.sandbox.server import SandboxHandler, SandboxState

GUARDIAN_QUERY = "com.pearson.core.guardian.student_guardian_detail"
DCID_ID_QUERY = "com.pearson.core.student.student_dcid_id_map"
SECTION_ENROLLMENT_QUERY = "com.pearson.core.teachers.sectionEnrollments"
#: data-version query → (table it reports, district kind)
DATA_VERSION_TABLES = {
    DCID_ID_QUERY: ("students", "student"),
    GUARDIAN_QUERY: ("studentcontactassoc", "guardian"),
    SECTION_ENROLLMENT_QUERY: ("cc", "section_enrollment"),
}
BASE_DATA_VERSION = 1000
ID_OFFSET = 3_000_000  # a student's ID is its DCID plus this (numeric DCIDs)


def student_number_id(dcid: Any) -> str:
    """The students table ID of the student with this DCID."""
    text = str(dcid)
    return str(int(text) + ID_OFFSET) if text.isdigit() else f"id-{text}"


def student_dcid(student_id: Any) -> str:
    text = str(student_id)
    if text.startswith("id-"):
        return text[3:]
    return str(int(text) - ID_OFFSET) if text.isdigit() else text


class PowerSchoolChanges:
    state: SandboxState
    district: District
    subscription: dict[str, Any] | None
    events_delivered: list[dict[str, Any]]

    def _page(self, query: dict[str, str], total: int) -> tuple[int, int] | str:
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        raise NotImplementedError

    # ---------------------------------------------------------------- ids, data versions ------
    def dcid_id_query(self, handler: SandboxHandler, path: str, query: dict[str, str]) -> None:
        total = self.district.count("student")
        if path.endswith("/count"):
            handler.send_json(200, {"count": total})
            return
        paged = self._page(query, total)
        if isinstance(paged, str):
            handler.send_json(400, self.error_body(400, paged))
            return
        page, size = paged
        records = []
        for k in range((page - 1) * size, min(page * size, total)):
            dcid = self.district.item("student", k)["id"]
            records.append(
                {
                    "name": "students",
                    "tables": {"students": {"dcid": str(dcid), "id": student_number_id(dcid)}},
                }
            )
        handler.send_json(200, {"name": DCID_ID_QUERY, "record": records})

    def current_data_version(self) -> int:
        return BASE_DATA_VERSION + self.district.day

    def data_version(self, handler: SandboxHandler, name: str, arguments: dict[str, Any]) -> None:
        if not arguments.get("$dataversion_applicationname"):
            handler.send_json(400, self.error_body(400, "$dataversion_applicationname is required"))
            return
        try:
            since_version = int(str(arguments["$dataversion"]))
        except ValueError:
            handler.send_json(400, self.error_body(400, "$dataversion must be a number"))
            return
        table, kind = DATA_VERSION_TABLES[name]
        since = max(BASE_MODIFIED, day_timestamp(since_version - BASE_DATA_VERSION))
        ids = []
        for position in changed_positions(self.district, kind, since):
            item = self.district.item(kind, position)
            ids.append(student_number_id(item["id"]) if kind == "student" else str(item["id"]))
        handler.send_json(
            200, {"$dataversion": str(self.current_data_version()), "tables": {table: ids}}
        )

    # ---------------------------------------------------------------- event subscriptions -----
    def event_subscription(self, handler: SandboxHandler, method: str, body: bytes) -> None:
        if method == "GET":
            if self.subscription is None:
                handler.send_json(404, self.error_body(404, "No event subscription"))
            else:
                public = {k: v for k, v in self.subscription.items() if k != "secret"}
                handler.send_json(200, {"event_subscriptions": public})
        elif method == "PUT":
            wanted = json_object(body).get("event_subscriptions")
            if not isinstance(wanted, dict) or not wanted.get("callback_url"):
                handler.send_json(400, self.error_body(400, "callback_url is required"))
                return
            self.subscription = dict(wanted)
            public = {k: v for k, v in wanted.items() if k != "secret"}
            handler.send_json(200, {"event_subscriptions": public})
        elif method == "DELETE":
            self.subscription = None
            handler.send_json(200, {})
        else:
            handler.send_json(405, self.error_body(405, "Method not allowed"))

    def after_advance(self, changes: list[Change]) -> None:
        """Tell the subscriber what the change script changed (one event per record), from
        a thread so the advance call does not wait on the subscriber."""
        subscription = self.subscription
        if subscription is None or not changes:
            return
        resources = {"student": "students", "guardian": "person", "section_enrollment": "cc"}
        events = [
            {"entity": resources[c.entity], "id": c.id, "event_type": _event_type(c.kind)}
            for c in changes
            if c.entity in resources
        ]
        body = json.dumps({"events": events}).encode()
        secret = str(subscription.get("secret", ""))
        # Our webhook's contract (docs/sync.md): the HMAC covers "<timestamp>.<body>".
        stamp = str(int(time.time()))
        message = stamp.encode() + b"." + body
        signature = "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "X-Sync-Timestamp": stamp,
            "X-Sync-Signature": signature,
        }
        thread = threading.Thread(
            target=self._deliver,
            args=(str(subscription["callback_url"]), body, headers, events),
            daemon=True,
        )
        thread.start()
        self.delivery = thread

    def _deliver(self, url: str, body: bytes, headers: dict[str, str], events: list[Any]) -> None:
        request = urllib.request.Request(  # noqa: S310 (the subscriber's URL, set by a test)
            url, data=body, method="POST", headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                status = response.status
        except Exception as exc:  # the outcome is recorded for the test to read
            status = getattr(exc, "code", 0)
        with self.state.lock:
            self.events_delivered.append({"status": status, "events": events})


def _event_type(kind: str) -> str:
    return {"new_student": "INSERT", "delete": "DELETE"}.get(kind, "UPDATE")


def json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body) if body else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def fiql_values(q: str, field: str) -> set[str] | None:
    """The values of ``field==v`` terms joined by ``,`` (FIQL "or"); None without a filter."""
    if not q:
        return None
    values = set()
    for term in q.split(","):
        name, _, value = term.partition("==")
        if name.strip() == field:
            values.add(value.strip())
    return values
