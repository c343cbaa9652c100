"""The sync engine's lines on the admin home page's "Needs attention" panel."""

from __future__ import annotations

from core.attention import Attention, attention_register
from syncing.admin.connections import LatestRunFilter, SyncOverdueFilter
from syncing.models import (
    Conflict,
    ConflictStatus,
    IdentityMatch,
    MatchStatus,
    OutboxStatus,
    QuarantinedRecord,
    QuarantineStatus,
    RunStatus,
    SyncConnection,
    SyncRun,
    WriteBackItem,
)

attention_register(
    Attention(
        model=SyncRun,
        singular="sync run held for review",
        plural="sync runs held for review",
        params={"status__exact": RunStatus.HELD},
        level="error",
        show_oldest=True,
    ),
    Attention(
        model=SyncConnection,
        singular="connection whose latest sync failed",
        plural="connections whose latest sync failed",
        params={LatestRunFilter.parameter_name: RunStatus.FAILED},
        level="error",
    ),
    Attention(
        model=SyncConnection,
        singular="connection whose scheduled syncs stopped succeeding",
        plural="connections whose scheduled syncs stopped succeeding",
        params={SyncOverdueFilter.parameter_name: "yes"},
        level="error",
    ),
    Attention(
        model=WriteBackItem,
        singular="write-back the SIS refused",
        plural="write-backs the SIS refused",
        params={"status__exact": OutboxStatus.FAILED},
        level="error",
    ),
    Attention(
        model=Conflict,
        singular="conflict to decide",
        plural="conflicts to decide",
        params={"status__exact": ConflictStatus.OPEN},
        show_oldest=True,
    ),
    Attention(
        model=QuarantinedRecord,
        singular="quarantined SIS record to fix",
        plural="quarantined SIS records to fix",
        params={"status__exact": QuarantineStatus.OPEN},
        show_oldest=True,
    ),
    Attention(
        model=IdentityMatch,
        singular="identity match to confirm or reject",
        plural="identity matches to confirm or reject",
        params={"status__exact": MatchStatus.SUGGESTED},
        show_oldest=True,
    ),
    Attention(
        model=WriteBackItem,
        singular="write-back where the SIS holds another value",
        plural="write-backs where the SIS holds another value",
        params={"status__exact": OutboxStatus.MISMATCH},
    ),
)
