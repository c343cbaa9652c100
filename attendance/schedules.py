from core.periodic import SystemSchedule

SCHEDULES = [
    SystemSchedule(
        name="api-access-log-purge",
        task="attendance.tasks.access_log_purge",
        crontab="10 3 * * *",
        description="Delete API access-log rows older than API_ACCESS_LOG_RETENTION_DAYS.",
    ),
]
