"""Reads for SIS connections."""

from __future__ import annotations

from django.db.models import QuerySet

from sis.models import SISConnection


def sis_connection_get(*, name: str, district_name: str | None = None) -> SISConnection:
    """The connection called ``name`` (in ``district_name`` when several districts use it)."""
    queryset = SISConnection.objects.select_related("district").filter(name=name)
    if district_name:
        queryset = queryset.filter(district__name=district_name)
    connections = list(queryset[:2])
    if not connections:
        raise SISConnection.DoesNotExist(f"No SIS connection named {name!r}.")
    if len(connections) > 1:
        raise SISConnection.MultipleObjectsReturned(
            f"Several districts have a connection named {name!r}; pass --district."
        )
    return connections[0]


def sis_connection_list(*, district_id: int | None = None) -> QuerySet[SISConnection]:
    queryset = SISConnection.objects.select_related("district").order_by("district__name", "name")
    if district_id is not None:
        queryset = queryset.filter(district_id=district_id)
    return queryset
