"""What the sync admin pages share: links to runs, a run's status, kind and changes in
words, the outcome message of a bulk action, read-only admins."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from attendance.admin_scoping import ScopedAdmin
from syncing.models import RunStatus, SyncRun


def run_link(run: SyncRun) -> SafeString:
    """ "sync run #N", linking to the run's page (which follows its progress)."""
    return format_html(
        '<a href="{}">sync run #{}</a>',
        reverse("admin:syncing_syncrun_change", args=[run.pk]),
        run.pk,
    )


def report_outcome(request: HttpRequest, done: int, failed: list[str], what: str) -> None:
    if done:
        messages.success(request, f"{what}: {done}.")
    for message in failed[:5]:
        messages.error(request, message)


class ReadOnlyScopedAdmin(ScopedAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# Actions in the order an administrator reads them; any other (e.g. not_refetchable) follows.
_ACTIONS = ("create", "update", "deactivate", "unchanged", "quarantined")
_PAST = {"create": "created", "update": "updated", "deactivate": "deactivated"}


def status_html(run: SyncRun) -> SafeString:
    """The run's status, coloured: green done, orange done with quarantine, red held or failed."""
    colour = {
        RunStatus.COMPLETED: "#2e7d32",
        RunStatus.COMPLETED_WITH_QUARANTINE: "#ef6c00",
        RunStatus.HELD: "#c62828",
        RunStatus.FAILED: "#c62828",
    }.get(RunStatus(run.status), "#555")
    return format_html('<strong style="color:{}">{}</strong>', colour, run.get_status_display())


def run_kind(run: SyncRun) -> str:
    """ "Full, schedule", "Delta, SIS event", "Full (dry run), administrator"."""
    dry = " (dry run)" if run.dry_run else ""
    return f"{run.get_mode_display()}{dry}, {run.get_trigger_display().lower()}"


def changes_html(counts: dict[str, dict[str, int]]) -> str:
    """A run's changes summed per action, short enough for a list ("7,399 created, 12
    updated"); the per-entity counts are in the tooltip and on the run's page."""
    totals: dict[str, int] = {}
    per_entity = []
    for entity, row in sorted(counts.items()):
        changed = {a: n for a, n in row.items() if a not in ("unchanged", "quarantined") and n}
        for action, n in changed.items():
            totals[action] = totals.get(action, 0) + n
        if changed:
            per_entity.append(f"{entity}: " + ", ".join(f"{a} {n}" for a, n in changed.items()))
    if not totals:
        return "no changes"
    order = [a for a in _ACTIONS if a in totals] + sorted(set(totals) - set(_ACTIONS))
    text = ", ".join(f"{totals[a]:,} {_PAST.get(a, a)}" for a in order)
    return format_html('<span title="{}">{}</span>', "; ".join(per_entity), text)


def counts_html(counts: dict[str, dict[str, int]]) -> str:
    """Counts per entity and action as a table: a row per entity, a column per action."""
    extra = sorted({a for row in counts.values() for a in row} - set(_ACTIONS))
    actions = [a for a in _ACTIONS if any(a in row for row in counts.values())] + extra
    header = format_html_join("", "<th>{}</th>", ((a,) for a in ["entity", *actions]))
    rows = format_html_join(
        "",
        "<tr><td>{}</td>{}</tr>",
        (
            (
                entity,
                format_html_join(
                    "",
                    '<td style="text-align:right">{}</td>',
                    ((f"{row.get(a, 0):,}",) for a in actions),
                ),
            )
            for entity, row in sorted(counts.items())
        ),
    )
    return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", header, rows)
