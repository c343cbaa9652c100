"""Admin pages for outbound routes: state, reset and force-open, and who may see them."""

from __future__ import annotations

import pytest
from django.urls import reverse

from attendance.models import MembershipRole
from gateway.breaker import breaker_for, breaker_force_open, breaker_reset
from gateway.client import Route, RoutePolicy, request, route_block
from gateway.errors import CircuitOpen, UpstreamUnavailable
from tests.factories import DistrictFactory, MembershipFactory, UserFactory
from tests.gateway import outbound_support
from tests.gateway.outbound_support import Answer, unique

server = outbound_support.server
gateway_clean = outbound_support.gateway_clean
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("gateway_clean")]


def _failing_route(server, district_id=None) -> Route:
    server.script = lambda i, path: Answer(503)
    route = Route("powerschool", unique("adm"), RoutePolicy(attempts=1, breaker_threshold=5),
                  district_id=district_id)  # fmt: skip
    with pytest.raises(UpstreamUnavailable):
        request(route, "GET", server.url())
    return route


def test_superuser_sees_route_state_and_can_force_open_and_reset(client, server):
    route = _failing_route(server)
    route_block(route, 50)
    admin = UserFactory(is_superuser=True)
    client.force_login(admin)

    index = client.get(reverse("admin:index"))
    assert reverse("admin:gateway_routes") in index.content.decode()

    listing = client.get(reverse("admin:gateway_routes"))
    assert listing.status_code == 200
    assert route.name in listing.content.decode()

    detail = client.get(reverse("admin:gateway_route", args=[route.name]))
    page = detail.content.decode()
    assert detail.status_code == 200
    assert '<td id="breaker-state">closed</td>' in page
    assert "HTTP 503" in page  # recent failures
    assert "(Retry-After or a throttle answer)" in page  # blocked-until shown

    action = reverse("admin:gateway_route_action", args=[route.name, "force_open"])
    assert client.post(action).status_code == 302
    assert breaker_for(route).storage.snapshot().forced
    assert (
        '<td id="breaker-state">forced-open</td>'
        in client.get(reverse("admin:gateway_route", args=[route.name])).content.decode()
    )
    with pytest.raises(CircuitOpen):
        breaker_for(route).admit()

    client.post(reverse("admin:gateway_route_action", args=[route.name, "reset"]))
    snap = breaker_for(route).storage.snapshot()
    assert (snap.state, snap.forced, snap.failures) == ("closed", False, 0)
    assert breaker_for(route).admit().state == "closed"


def test_actions_need_post(client, server):
    route = _failing_route(server)
    client.force_login(UserFactory(is_superuser=True))
    url = reverse("admin:gateway_route_action", args=[route.name, "force_open"])
    assert client.get(url).status_code == 405
    assert not breaker_for(route).storage.snapshot().forced


def test_district_admin_sees_only_their_district_routes(client, server):
    district = DistrictFactory()
    other = DistrictFactory()
    mine = _failing_route(server, district_id=district.pk)
    theirs = _failing_route(server, district_id=other.pk)
    membership = MembershipFactory(district=district, role=MembershipRole.DISTRICT_ADMIN)
    client.force_login(membership.user)

    page = client.get(reverse("admin:gateway_routes")).content.decode()
    assert mine.name in page and theirs.name not in page
    assert client.get(reverse("admin:gateway_route", args=[theirs.name])).status_code == 404
    action = reverse("admin:gateway_route_action", args=[theirs.name, "force_open"])
    assert client.post(action).status_code == 404
    assert not breaker_for(theirs).storage.snapshot().forced


def test_other_staff_are_refused(client, server):
    _failing_route(server)
    school_reader = MembershipFactory(role=MembershipRole.READ_ONLY)
    client.force_login(school_reader.user)
    assert client.get(reverse("admin:gateway_routes")).status_code == 403
    assert (
        reverse("admin:gateway_routes") not in client.get(reverse("admin:index")).content.decode()
    )


def test_the_home_page_counts_the_routes_refusing_calls_the_admin_may_see(client, server):
    district = DistrictFactory()
    mine = _failing_route(server, district_id=district.pk)
    theirs = _failing_route(server, district_id=DistrictFactory().pk)
    breaker_force_open(theirs)  # another district's: not counted
    membership = MembershipFactory(district=district, role=MembershipRole.DISTRICT_ADMIN)
    client.force_login(membership.user)
    line = (
        f'<a href="{reverse("admin:gateway_routes")}">1 outbound route refusing calls '
        "(circuit breaker open)</a>"
    )
    assert line not in client.get(reverse("admin:index")).content.decode()

    breaker_force_open(mine)
    assert line in client.get(reverse("admin:index")).content.decode()
    breaker_reset(mine)
    assert line not in client.get(reverse("admin:index")).content.decode()
