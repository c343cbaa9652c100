from django.apps import AppConfig


class SyncingConfig(AppConfig):
    name = "syncing"
    verbose_name = "Roster sync"

    def ready(self) -> None:
        from syncing import receivers  # noqa: F401 (connects the domain-event receivers)
