from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from anymail.signals import tracking

        from attendance.signals import attendance_changed
        from notifications import receivers

        attendance_changed.connect(
            receivers.on_attendance_changed, dispatch_uid="notifications.attendance_changed"
        )
        tracking.connect(receivers.on_anymail_tracking, dispatch_uid="notifications.anymail")
