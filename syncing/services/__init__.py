"""Writes of the sync engine: start runs, decide held runs, resolve conflicts, re-drive the
quarantine, confirm identity matches, notify administrators. Admin actions, the API, tasks and
the ``sync`` command call these; they never touch the models directly."""

from syncing.services.alerts import admins_notify, conflicts_digest_send, run_notify
from syncing.services.review import (
    conflict_resolve,
    conflicts_resolve_bulk,
    identity_match_confirm,
    identity_match_reject,
    quarantine_discard,
    quarantine_redrive,
    quarantine_settle,
)
from syncing.services.runs import (
    STRANDED_MAX_HANDOUTS,
    STRANDED_PENDING_AFTER,
    STRANDED_RESEND_AFTER,
    STRANDED_RUNNING_AFTER,
    run_approve,
    run_cancel,
    stranded_runs_resume,
    sync_start,
)

__all__ = [
    "STRANDED_MAX_HANDOUTS",
    "STRANDED_PENDING_AFTER",
    "STRANDED_RESEND_AFTER",
    "STRANDED_RUNNING_AFTER",
    "admins_notify",
    "conflict_resolve",
    "conflicts_digest_send",
    "conflicts_resolve_bulk",
    "identity_match_confirm",
    "identity_match_reject",
    "quarantine_discard",
    "quarantine_redrive",
    "quarantine_settle",
    "run_approve",
    "run_cancel",
    "run_notify",
    "stranded_runs_resume",
    "sync_start",
]
