"""Provider registry. Built-in providers are listed here by dotted path (loaded lazily, so a
missing optional dependency only matters when that provider is selected); outside packages add
providers through the ``notifications.providers`` entry-point group. See docs/notifications.md.
"""

from __future__ import annotations

import threading
from importlib import import_module
from importlib.metadata import entry_points

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from notifications.providers.base import Provider

BUILTIN: dict[str, str] = {
    "twilio": "notifications.providers.twilio.TwilioProvider",
    "sns": "notifications.providers.sns.SnsProvider",
    "email": "notifications.providers.email.EmailProvider",
    "console": "notifications.providers.console.ConsoleProvider",
    "test": "notifications.providers.test.TestProvider",
}

_instances: dict[str, Provider] = {}
_lock = threading.Lock()


def provider_class(name: str) -> type[Provider]:
    path = BUILTIN.get(name)
    if path is None:
        found = entry_points(group="notifications.providers", name=name)
        if not found:
            raise ImproperlyConfigured(f"Unknown notification provider {name!r}.")
        cls = next(iter(found)).load()
    else:
        module, _, attr = path.rpartition(".")
        cls = getattr(import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise ImproperlyConfigured(f"Provider {name!r} is not a Provider subclass.")
    return cls


def get_provider(name: str) -> Provider:
    with _lock:
        provider = _instances.get(name)
        if provider is None:
            provider = provider_class(name).from_settings()
            _instances[name] = provider
        return provider


def provider_for_channel(channel: str) -> Provider:
    name = settings.NOTIFY_SMS_PROVIDER if channel == "sms" else settings.NOTIFY_EMAIL_PROVIDER
    return get_provider(name)


def providers_reset() -> None:
    """Forget built providers (tests change settings between cases)."""
    with _lock:
        _instances.clear()
