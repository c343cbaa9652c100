"""SIS connections, read-only (scope ``sync:read``).

Only what an integrator needs to pick a connection for a sync: never the credentials (they live
in :class:`sis.models.SISCredential`, which no serializer here touches), never the connector
``options`` (outside connector packages may keep anything there) and never a user or password
embedded in the base URL.
"""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import urlsplit, urlunsplit

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import serializers

from attendance.api.filters import UpdatedSinceFilterSet
from gateway.inbound.views import IntegratorDetailView, IntegratorListView
from sis.models import SISConnection

READ = {"GET": "sync:read"}


def url_without_userinfo(url: str) -> str:
    """``https://user:pass@host/path?x`` → ``https://host/path``: a URL as copied into the admin
    may carry credentials in its user part or query; integrators get scheme, host and path."""
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class ConnectionOutput(serializers.ModelSerializer[SISConnection]):
    base_url = serializers.SerializerMethodField()

    class Meta:
        model = SISConnection
        fields = [
            "id",
            "name",
            "provider",
            "vendor",
            "base_url",
            "enabled",
            "capabilities",
            "created_at",
            "updated_at",
        ]

    def get_base_url(self, connection: SISConnection) -> str:
        return url_without_userinfo(connection.base_url)


class ConnectionFilter(UpdatedSinceFilterSet):
    class Meta:
        model = SISConnection
        fields = ["provider", "vendor", "enabled"]


_EXAMPLE = {
    "id": 4,
    "name": "PowerSchool production",
    "provider": "powerschool",
    "vendor": "generic",
    "base_url": "https://sis.example.org",
    "enabled": True,
    "capabilities": [],
    "created_at": "2026-08-01T12:00:00Z",
    "updated_at": "2026-08-01T12:00:00Z",
}


@extend_schema_view(
    get=extend_schema(
        examples=[
            OpenApiExample(
                "Connections",
                value={"next": None, "previous": None, "results": [_EXAMPLE]},
                response_only=True,
            )
        ]
    )
)
class ConnectionListView(IntegratorListView):
    """The district's SIS connections; filter by ``provider``, ``vendor``, ``enabled``."""

    required_scopes = READ
    OutputSerializer = ConnectionOutput
    serializer_class = OutputSerializer
    filterset_class = ConnectionFilter
    search_fields: ClassVar[list[str]] = ["name"]
    ordering_fields: ClassVar[list[str]] = ["id", "updated_at", "name"]

    def base_queryset(self) -> QuerySet[SISConnection]:
        return SISConnection.objects.all()


@extend_schema_view(
    get=extend_schema(examples=[OpenApiExample("A connection", value=_EXAMPLE, response_only=True)])
)
class ConnectionDetailView(IntegratorDetailView):
    required_scopes = READ
    OutputSerializer = ConnectionOutput
    serializer_class = OutputSerializer

    def base_queryset(self) -> QuerySet[SISConnection]:
        return SISConnection.objects.all()
