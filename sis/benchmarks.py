"""Connector throughput and memory against the sandbox (``make bench``).

A generated district is served by the sandbox in its own process. Two child processes then
read the same pages (students, school enrollments, guardians, student–guardian links and
section enrollments over OneRoster 1.2, 1,000 per page):

- **connector**: ``Connector.fetch`` — gateway, auth, paging, repeated-page guard, mapping to
  canonical records;
- **bare loop**: ``requests`` + ``json`` only, the same URLs, counting items.

Each child reports records per second and its own peak RSS (``ru_maxrss``), so memory is the
whole process and not disturbed by the sandbox. Targets: the connector costs at most 1.5× the
bare loop; the connector's peak memory at 100k students is within 20% of 10k (it streams).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from core.bench import BenchResult, benchmark

ENTITIES = ("student", "enrollment", "guardian", "student_guardian", "section_enrollment")
PAGE_SIZE = 1000

CHILD = r"""
import json, os, resource, sys, time
import django
django.setup()
mode, api, token_url = sys.argv[1], sys.argv[2], sys.argv[3]
entities = sys.argv[4].split(",")
page_size = int(sys.argv[5])
records = 0
traced = mode == "connector-traced"
if traced:
    import tracemalloc
    tracemalloc.start()
rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.perf_counter()
if mode.startswith("connector"):
    from sis.connectors.base import ConnectorConfig
    from sis.connectors.registry import connector_class
    connector = connector_class("oneroster-1.2")(ConnectorConfig(
        key="bench", base_url=api, token_url=token_url, client_id="sandbox-client",
        client_secret="sandbox-secret", options={"page_size": page_size}))
    for entity in entities:
        for page in connector.fetch(entity):
            records += len(page.records) + len(page.quarantined)
else:
    import requests
    session = requests.Session()
    token = session.post(token_url, auth=("sandbox-client", "sandbox-secret"),
                         data={"grant_type": "client_credentials"}).json()["access_token"]
    session.headers["Authorization"] = "Bearer " + token
    paths = {"student": ("students", None), "enrollment": ("students", None),
             "guardian": ("users", "roles.role='parent' OR roles.role='guardian' OR "
                          "roles.role='relative'"),
             "student_guardian": ("users", "roles.role='parent' OR roles.role='guardian' OR "
                                  "roles.role='relative'"),
             "section_enrollment": ("enrollments", None)}
    for entity in entities:
        path, flt = paths[entity]
        offset = 0
        while True:
            params = {"limit": page_size, "offset": offset}
            if flt:
                params["filter"] = flt
            response = session.get(api + "/" + path, params=params)
            items = next(iter(response.json().values()))
            records += len(items)
            offset += len(items)
            if not items or offset >= int(response.headers["X-Total-Count"]):
                break
elapsed = time.perf_counter() - start
traced_peak = tracemalloc.get_traced_memory()[1] / 1e6 if traced else None
print(json.dumps({"records": records, "seconds": elapsed, "rss_before_mb": rss_before,
                  "traced_peak_mb": traced_peak,
                  "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


@contextmanager
def sandbox_process(students: int) -> Iterator[dict[str, str]]:
    """The sandbox in its own process (so it does not share a GIL with the measured code)."""
    process = subprocess.Popen(  # noqa: S603 (our own module, fixed arguments)
        [
            sys.executable,
            "-m",
            "sis.sandbox",
            "--provider",
            "oneroster-1.2",
            "--students",
            str(students),
            "--port",
            "0",
            "--page-cap",
            str(PAGE_SIZE),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None  # noqa: S101 (PIPE was asked for)
        yield json.loads(process.stdout.readline())
    finally:
        process.terminate()
        process.wait(timeout=10)


def _child(
    mode: str, urls: dict[str, str], page_size: int, entities: tuple[str, ...] = ENTITIES
) -> dict[str, Any]:
    env = {**os.environ}
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
    completed = subprocess.run(  # noqa: S603
        [
            sys.executable,
            "-c",
            CHILD,
            mode,
            urls["api_base_url"],
            urls["token_url"],
            ",".join(entities),
            str(page_size),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"benchmark child ({mode}) failed:\n{completed.stderr[-3000:]}")
    return dict(json.loads(completed.stdout.strip().splitlines()[-1]))


def measure(students: int, page_size: int, *, bare: bool = True) -> dict[str, dict[str, Any]]:
    results = {}
    with sandbox_process(students) as urls:
        if bare:
            results["bare"] = _child("bare", urls, page_size)
        results["connector"] = _child("connector", urls, page_size)
        # Python-level peak of the fetch itself (tracemalloc is slow: students only).
        results["traced"] = _child("connector-traced", urls, page_size, ("student",))
    return results


@benchmark("sis.connector_fetch")
def connector_fetch(full: bool) -> list[BenchResult]:
    # Both sizes span several pages, so what is held in memory (a page or two) is the same.
    large, small, page_size = (100_000, 10_000, PAGE_SIZE) if full else (2_000, 1_000, 200)
    big = measure(large, page_size)
    little = measure(small, page_size, bare=False)  # only the connector's memory is compared
    bare_rate = big["bare"]["records"] / big["bare"]["seconds"]
    rate = big["connector"]["records"] / big["connector"]["seconds"]
    ratio = big["connector"]["seconds"] / big["bare"]["seconds"]
    growth = big["connector"]["maxrss_mb"] / little["connector"]["maxrss_mb"]
    return [
        BenchResult(
            f"OneRoster fetch, {large:,} students (records/s)",
            rate,
            "rec/s",
            baseline=bare_rate,
            target="≥ 1/1.5 of the bare loop",
            passed=ratio <= 1.5,
        ),
        BenchResult(
            f"connector time / bare loop time, {large:,} students",
            ratio,
            "×",
            target="≤ 1.5",
            passed=ratio <= 1.5,
        ),
        BenchResult(
            f"connector peak RSS, {large:,} students",
            big["connector"]["maxrss_mb"],
            "MB",
            baseline=big["bare"]["maxrss_mb"],
        ),
        BenchResult(
            f"peak RSS {large:,} vs {small:,} students",
            growth,
            "×",
            target="≤ 1.2",
            passed=growth <= 1.2,
        ),
        BenchResult(
            f"traced peak while fetching students, {large:,} vs {small:,}",
            big["traced"]["traced_peak_mb"],
            "MB",
            baseline=little["traced"]["traced_peak_mb"],
            target="≤ 1.2× the small district",
            passed=big["traced"]["traced_peak_mb"] <= 1.2 * little["traced"]["traced_peak_mb"],
        ),
        BenchResult(
            f"RSS growth during the fetch, {large:,} students",
            big["connector"]["maxrss_mb"] - big["connector"]["rss_before_mb"],
            "MB",
            baseline=little["connector"]["maxrss_mb"] - little["connector"]["rss_before_mb"],
        ),
    ]
