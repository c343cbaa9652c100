from core.periodic import SystemSchedule

SCHEDULES = [
    SystemSchedule(
        name="idempotency-keys-purge",
        task="gateway.tasks.idempotency_purge",
        every_seconds=3600,
        description="Delete expired Idempotency-Key records.",
    ),
]
