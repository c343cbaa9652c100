"""What connectors raise. Permanent errors stop a sync and surface in the admin (bad
credentials, missing permission, bad configuration); transient ones back off and retry."""

from __future__ import annotations

from core.errors import PermanentError, TransientError


class ConnectorError(PermanentError):
    """A permanent connector failure. ``status`` is the HTTP status when one was received."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class AuthenticationFailed(ConnectorError):
    """The SIS refused our credentials (wrong client id/secret, expired key, bad signature)."""


class PermissionDenied(ConnectorError):
    """Authenticated, but the plugin/application may not read this resource."""


class NotFound(ConnectorError):
    """The resource does not exist (or the base URL is wrong)."""


class ConfigurationError(ConnectorError):
    """The connection's settings or options are invalid."""


class UnsupportedOperation(ConnectorError):
    """The connector does not declare the capability this call needs."""


class TransientConnectorError(TransientError):
    """A failure that may pass: the SIS is busy, throttling, or served an inconsistent page."""


class RepeatedPage(TransientConnectorError):
    """The SIS answered two different page requests with the same page, twice in a row: it is
    ignoring the paging parameters, and following it would loop or lose records."""


class MalformedRecord(ValueError):
    """Raised by a ``map_record`` hook for an item that cannot be mapped (it is quarantined)."""
