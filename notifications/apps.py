from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from anymail.signals import tracking
        from django.db.models.signals import post_save

        from attendance.models import Guardian
        from attendance.signals import attendance_changed, rows_written
        from notifications import receivers

        attendance_changed.connect(
            receivers.on_attendance_changed, dispatch_uid="notifications.attendance_changed"
        )
        # A guardian's roster phone and e-mail are its SIS contact points, however it is written.
        rows_written.connect(
            receivers.on_guardians_written, sender=Guardian, dispatch_uid="notifications.guardians"
        )
        post_save.connect(
            receivers.on_guardian_saved, sender=Guardian, dispatch_uid="notifications.guardian"
        )
        tracking.connect(receivers.on_anymail_tracking, dispatch_uid="notifications.anymail")
