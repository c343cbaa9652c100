"""Connector.fetch asks the SIS for the next raw page while it maps the current one (the
``raw_pages_ahead`` thread), over the real sandbox: same records, same order, same errors."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from sis.connectors.errors import ConnectorError
from sis.connectors.records import Entity
from sis.connectors.registry import connector_class
from tests.sis.conftest import fetch_all, make_connector

PAGE = 40


def _watching(sandbox: Any, *, ahead: int, key: str, wait: float = 5.0) -> Any:
    """A OneRoster 1.2 connector that records the listing requests it makes (offset and
    thread) and, mapping the first item of the first page, waits up to ``wait`` seconds for
    the second page to be asked for."""
    base = connector_class("oneroster-1.2")

    class Watching(base):  # type: ignore[misc, valid-type]
        raw_pages_ahead = ahead

        def __init__(self, config: Any) -> None:
            super().__init__(config)
            self.asked: list[tuple[int, str]] = []
            self.second_page_asked = threading.Event()
            self.seen_while_mapping: bool | None = None

        def request(self, method: str, path: str, **kwargs: Any) -> Any:
            offset = (kwargs.get("params") or {}).get("offset")
            if offset is not None:
                self.asked.append((int(offset), threading.current_thread().name))
                if int(offset) > 0:
                    self.second_page_asked.set()
            return super().request(method, path, **kwargs)

        def map_record(self, entity: Any, item: Any) -> Any:
            if self.seen_while_mapping is None:
                self.seen_while_mapping = self.second_page_asked.wait(timeout=wait)
            return super().map_record(entity, item)

    assert sandbox.counts()["student"] > 3 * PAGE
    return Watching(make_connector(sandbox, key=key, options={"page_size": PAGE}).config)


def test_the_next_page_is_asked_for_while_this_one_is_mapped(or12_sandbox):
    ahead = _watching(or12_sandbox, ahead=1, key="ahead")
    records, quarantined, pages = fetch_all(ahead, Entity.STUDENT)
    assert ahead.seen_while_mapping is True
    # Listing requests come from the page thread, one per page, in order.
    assert [offset for offset, _ in ahead.asked] == [PAGE * n for n in range(pages)]
    assert {thread for _, thread in ahead.asked} == {"oneroster-1.2-pages"}

    # Without the thread nothing can be asked for until the mapping returns: a short wait.
    serial = _watching(or12_sandbox, ahead=0, key="serial", wait=0.2)
    serial_records, _, serial_pages = fetch_all(serial, Entity.STUDENT)
    assert serial.seen_while_mapping is False
    assert {thread for _, thread in serial.asked} == {threading.current_thread().name}
    assert serial_pages == pages and quarantined == []
    assert [(r.source_id, r.raw) for r in records] == [(r.source_id, r.raw) for r in serial_records]
    assert len(records) == or12_sandbox.counts()["student"]


def test_an_error_on_a_later_page_comes_after_the_pages_before_it(or12_sandbox):
    connector = make_connector(or12_sandbox, key="ahead-error", options={"page_size": PAGE})
    connector.authenticate()
    # The third listing request is refused (a permanent error: no retry).
    or12_sandbox.inject("400", path="/students", skip=2)
    fetched = []
    with pytest.raises(ConnectorError):
        for page in connector.fetch(Entity.STUDENT):
            fetched.append(page.number)
    assert fetched == [0, 1]


def test_leaving_the_pages_early_stops_the_page_thread(or12_sandbox):
    connector = _watching(or12_sandbox, ahead=1, key="ahead-stop")
    pages = connector.fetch(Entity.STUDENT)
    first = next(pages)
    assert first.number == 0
    pages.close()
    assert not [t for t in threading.enumerate() if t.name == "oneroster-1.2-pages"]
    # At most the pages the thread had fetched ahead were asked for, not the whole listing.
    assert len(connector.asked) <= 3 < or12_sandbox.counts()["student"] // PAGE


def test_powerschool_reads_what_its_mapping_needs_before_the_first_cc_page(ps_sandbox):
    """CC rows are mapped with the students' DCIDs, read from the SIS. On a route allowing one
    call at a time, a mapping asking for them beside the page thread's slow page would wait
    past the limiter's patience and fail the listing; they are read before the first page."""
    connector = make_connector(ps_sandbox, key="one-at-a-time", max_concurrency=1)
    connector.authenticate()
    ps_sandbox.control("config", {"timeout_seconds": 6})
    try:
        # The count and the first CC page answer at once; the second takes six seconds.
        ps_sandbox.inject("timeout", path="/ws/schema/table/cc", skip=2)
        records, quarantined, pages = fetch_all(connector, Entity.SECTION_ENROLLMENT)
    finally:
        ps_sandbox.control("config", {"timeout_seconds": 3.0})
    assert pages > 2 and quarantined == []
    assert len(records) == ps_sandbox.counts()["section_enrollment"]


def test_a_mapping_error_stops_the_page_thread(or12_sandbox):
    """An error the mapping does not turn into a quarantined item ends the listing, and the
    page thread with it (not whenever the generator is collected)."""
    base = connector_class("oneroster-1.2")

    class Failing(base):
        def map_record(self, entity: Any, item: Any) -> Any:
            raise RuntimeError("the mapping's own request failed")

    connector = Failing(
        make_connector(or12_sandbox, key="failing", options={"page_size": PAGE}).config
    )
    with pytest.raises(RuntimeError) as raised:
        for _ in connector.fetch(Entity.STUDENT):
            pass
    assert not [t for t in threading.enumerate() if t.name == "oneroster-1.2-pages"]
    del raised  # the traceback holds the listing's frames


@pytest.mark.parametrize("since", [None, "1000"], ids=["full", "delta"])
def test_powerschool_reads_the_dcids_in_the_page_thread(ps_sandbox, since):
    """Full listing or data-version delta: the DCID map the CC mapping needs is read by the
    page thread, never by the mapping."""
    base = connector_class("powerschool")

    class Watching(base):
        def __init__(self, config: Any) -> None:
            super().__init__(config)
            self.dcid_threads: list[str] = []

        def request(self, method: str, path: str, **kwargs: Any) -> Any:
            if "student_dcid_id_map" in path:
                self.dcid_threads.append(threading.current_thread().name)
            return super().request(method, path, **kwargs)

    ps_sandbox.control("advance", {"days": 3})  # CC rows changed: the delta has some
    connector = Watching(make_connector(ps_sandbox, key=f"dcids-{since}").config)
    pages = list(connector.fetch(Entity.SECTION_ENROLLMENT, since=since))
    assert any(page.records for page in pages)
    assert connector.dcid_threads
    assert set(connector.dcid_threads) == {"powerschool-pages"}


def test_a_quiet_powerschool_delta_reads_no_dcids(ps_sandbox):
    """No CC row changed since the data version: the delta does not page through every
    student's DCID for a mapping that has nothing to map."""
    full = make_connector(ps_sandbox, key="quiet-full")
    list(full.fetch(Entity.STUDENT))
    version = full.delta_watermark
    connector = make_connector(ps_sandbox, key="quiet-delta")
    pages = list(connector.fetch(Entity.SECTION_ENROLLMENT, since=version))
    assert not any(page.records for page in pages)
    assert connector._dcid_of_id is None  # never read
