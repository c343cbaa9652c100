from core.periodic import SystemSchedule

SCHEDULES = [
    SystemSchedule(
        name="portal-records-purge",
        task="portal.tasks.portal_records_purge",
        crontab="30 3 * * *",
        description="Delete expired sign-in codes and links (they hold contact details).",
    ),
]
