"""Sync runs, the identity crosswalk with its baselines, staged changes, conflicts, safety
policies, quarantine, the write-back outbox, identity-match suggestions and schedules.

Every row carries its district directly so the admin can scope it without a join through the
SIS connection (see attendance.admin_scoping).
"""

from syncing.models.policies import FieldPolicy, Policy, SafetyBlackout, SafetyPolicy
from syncing.models.review import (
    Conflict,
    ConflictStatus,
    IdentityMatch,
    MatchStatus,
    QuarantinedRecord,
    QuarantineStatus,
)
from syncing.models.runs import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    NOT_REFETCHABLE,
    Approval,
    ChangeAction,
    ChangeState,
    Mode,
    Phase,
    RunStatus,
    SourceLink,
    SyncChange,
    SyncPage,
    SyncRun,
    Trigger,
)
from syncing.models.schedules import (
    WEEKDAYS,
    PendingEvent,
    ScheduleKind,
    SyncConnection,
    SyncSchedule,
)
from syncing.models.writeback import OutboxStatus, WriteBackItem

__all__ = [
    "ACTIVE_STATUSES",
    "Approval",
    "ChangeAction",
    "ChangeState",
    "Conflict",
    "ConflictStatus",
    "FINISHED_STATUSES",
    "FieldPolicy",
    "IdentityMatch",
    "MatchStatus",
    "Mode",
    "NOT_REFETCHABLE",
    "OutboxStatus",
    "PendingEvent",
    "Phase",
    "Policy",
    "QuarantineStatus",
    "QuarantinedRecord",
    "RunStatus",
    "SafetyBlackout",
    "SafetyPolicy",
    "ScheduleKind",
    "SourceLink",
    "SyncChange",
    "SyncConnection",
    "SyncPage",
    "SyncRun",
    "SyncSchedule",
    "Trigger",
    "WEEKDAYS",
    "WriteBackItem",
]
