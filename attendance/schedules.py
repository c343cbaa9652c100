from core.periodic import SystemSchedule

SCHEDULES = [
    SystemSchedule(
        name="api-access-log-purge",
        task="attendance.tasks.access_log_purge",
        crontab="10 3 * * *",
        description="Delete API access-log rows older than API_ACCESS_LOG_RETENTION_DAYS.",
    ),
    SystemSchedule(
        name="participation-grades",
        task="attendance.tasks.participation_grades_nightly",
        crontab="40 2 * * *",
        description=(
            "Recompute participation grades (rule attendance-share-v1) of the grading periods "
            "in progress or ended within PARTICIPATION_GRACE_DAYS; changed grades are queued "
            "for write-back to the SIS gradebook."
        ),
    ),
]
