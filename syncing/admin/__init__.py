"""Admin for the sync engine, scoped by membership (attendance.admin_scoping.ScopedAdmin).

Runs with progress and counts; held runs with staged totals, samples and the three decisions;
the conflict queue side by side with bulk resolve; the quarantine with re-drive; identity-match
suggestions; "Sync now" on connections; policies and schedules. Every action calls a service,
and those that fit one object are buttons on its page too (``ScopedAdmin.object_actions``).
Admin actions are offered only to users who may change something
(``ScopedAdmin.get_actions``), and run only on the selected rows they may change.
"""

from syncing.admin import attention, connections, policies, review, runs  # noqa: F401  (registers)
