from django.apps import AppConfig


class AttendanceConfig(AppConfig):
    name = "attendance"
    verbose_name = "Rosters and attendance"

    def ready(self) -> None:
        # Every process that can write roster data must invalidate the API's roster page cache.
        from attendance.api.cache import connect_receivers

        connect_receivers()
