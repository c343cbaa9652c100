from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from core import periodic  # noqa: F401 (the home page's "beat is silent" line)
        from core.lookups import register

        register()
