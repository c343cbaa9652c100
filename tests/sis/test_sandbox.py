from __future__ import annotations

import logging
import socket
import struct
import time
import tracemalloc

import pytest
import requests

from sis.sandbox.district import GeneratedDistrict
from sis.sandbox.server import parse_faults
from sis.sandbox.testing import running_sandbox


def test_generation_is_deterministic_and_seeded():
    a, b, c = (GeneratedDistrict(students=300, seed=s) for s in (7, 7, 8))
    assert [a.item("student", i) for i in range(300)] == [b.item("student", i) for i in range(300)]
    assert a.item("guardian", 5) == b.item("guardian", 5)
    assert [a.item("student", i)["last"] for i in range(50)] != [
        c.item("student", i)["last"] for i in range(50)
    ]
    assert a.advance(2) and [x.as_dict() for x in a.changes] == [x.as_dict() for x in b.advance(2)]


def test_a_200k_district_costs_little_memory():
    tracemalloc.start()
    district = GeneratedDistrict(students=200_000, seed=3)
    last = district.item("student", 199_999)
    guardian = district.item("guardian", district.count("guardian") - 1)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 5_000_000  # bytes: no list of 200,000 records
    assert last["school"] and guardian["student"] == last["id"]
    assert 1.9 < district.count("guardian") / 200_000 < 2.1
    assert district.count("section_enrollment") == 6 * 200_000


def test_guardians_have_safe_contact_data():
    district = GeneratedDistrict(students=100, seed=1)
    for i in range(district.count("guardian")):
        guardian = district.item("guardian", i)
        assert guardian["email"].endswith("@example.org")
        assert "555-01" in guardian["mobile"]
    counts = [len(district.item("student", i)["guardians"]) for i in range(100)]
    assert set(counts) == {1, 2, 3}


def test_the_change_script_covers_every_kind():
    district = GeneratedDistrict(students=1000, seed=2)
    kinds = {change.kind for change in district.advance(1)}
    assert kinds == {
        "edit",
        "new_student",
        "withdrawal",
        "transfer",
        "section_change",
        "guardian_phone",
        "delete",
    }
    assert district.count("student") > 1000


def test_fault_specs_are_checked():
    assert parse_faults("500:0.05,timeout:0.01") == {"500": 0.05, "timeout": 0.01}
    with pytest.raises(ValueError, match="unknown fault"):
        parse_faults("418:0.1")
    with pytest.raises(ValueError, match="between 0 and 1"):
        parse_faults("500:2")


def test_seeded_fault_rates_are_injected():
    with running_sandbox(provider="oneroster-1.2", students=20, faults="500:1") as sandbox:
        token = requests.post(
            sandbox.token_url,
            auth=(sandbox.client_id, sandbox.client_secret),
            data={"grant_type": "client_credentials"},
            timeout=5,
        ).json()["access_token"]
        response = requests.get(
            f"{sandbox.api_base_url}/students",
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        assert response.status_code == 500
        assert response.json()["statusInfoSet"][0]["imsx_codeMajor"] == "failure"


def test_a_client_that_resets_its_connection_is_one_log_line(caplog, capsys):
    """A worker killed mid-request resets its connection: the sandbox notes it and carries on,
    without socketserver's traceback on stderr."""
    caplog.set_level(logging.INFO, logger="sis.sandbox.server")
    with running_sandbox(provider="oneroster-1.2", students=5) as sandbox:
        host, port = sandbox.server.server_address[:2]
        client = socket.create_connection((host, port), timeout=5)
        client.sendall(b"GET /ims/oneroster")  # half a request line: the server waits for more
        # Linger 0: close() sends a reset instead of an orderly end.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(
            r.getMessage() == "sandbox client went away" for r in caplog.records
        ):
            time.sleep(0.02)
        # The server still answers.
        assert requests.get(f"{sandbox.base_url}/__sandbox/counts", timeout=5).status_code == 200
    gone = [r for r in caplog.records if r.getMessage() == "sandbox client went away"]
    assert [getattr(r, "error", None) for r in gone] == ["ConnectionResetError"]
    assert "Traceback" not in capsys.readouterr().err


def test_paging_caps_and_links(or12_sandbox):
    token = requests.post(
        or12_sandbox.token_url,
        auth=(or12_sandbox.client_id, or12_sandbox.client_secret),
        data={"grant_type": "client_credentials"},
        timeout=5,
    ).json()["access_token"]
    response = requests.get(
        f"{or12_sandbox.api_base_url}/students",
        params={"limit": 50, "offset": 180},
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert response.headers["X-Total-Count"] == "200"
    assert len(response.json()["users"]) == 20
    assert 'rel="next"' not in response.headers["Link"]
    unauthorised = requests.get(f"{or12_sandbox.api_base_url}/students", timeout=5)
    assert unauthorised.status_code == 401
