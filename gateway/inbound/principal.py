"""The one thing an integrator authenticates as, whichever credential it used."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PrincipalKind = Literal["api_key", "oauth"]


@dataclass(frozen=True, slots=True)
class ApiPrincipal:
    """Set as ``request.auth`` by both authentication classes, so views, permissions, the
    throttle, the idempotency ledger and the FERPA access log never care which was used.

    ``client_id`` is public (an API key's prefix or an OAuth client id), never a secret.
    """

    kind: PrincipalKind
    district_id: int
    scopes: frozenset[str]
    client_id: str
    label: str

    @property
    def owner(self) -> str:
        """A stable identifier of the client for rate limits and idempotency keys."""
        return f"{self.kind}:{self.client_id}"

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes
