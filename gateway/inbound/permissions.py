"""Scope checks: every integrator view names the scope each of its methods needs."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from gateway.inbound.principal import ApiPrincipal


def request_principal(request: Request) -> ApiPrincipal | None:
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, ApiPrincipal) else None


class HasScope(BasePermission):
    """Allow a request only when it carries an integrator principal holding the scope the view
    declares for the method: ``required_scopes = {"GET": "roster:read", "POST": ...}``.

    A view that declares nothing for a method refuses it (fail closed). Without credentials
    the answer is 401 (DRF: ``NotAuthenticated`` when the request has no ``auth``).
    """

    message = "The credential does not carry the scope this endpoint needs."

    def has_permission(self, request: Request, view: Any) -> bool:
        principal = request_principal(request)
        if principal is None:
            return False
        required: dict[str, str] = getattr(view, "required_scopes", {})
        method = "GET" if request.method in ("HEAD", "OPTIONS") else str(request.method)
        scope = required.get(method)
        return scope is not None and principal.has_scope(scope)
