"""Sync runs, the identity crosswalk with its baselines (SourceLink), the changes a run
stages and the pages it has read."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from attendance.models import District, School
from attendance.models.base import TimeStampedModel


class Mode(models.TextChoices):
    FULL = "full", "Full"
    DELTA = "delta", "Delta"
    TARGETED = "targeted", "Targeted"


class Trigger(models.TextChoices):
    SCHEDULE = "schedule", "Schedule"
    ADMIN = "admin", "Administrator"
    API = "api", "API"
    EVENT = "event", "SIS event"
    COMMAND = "command", "Command line"


class RunStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    HELD = "held", "Held for review"
    COMPLETED = "completed", "Completed"
    COMPLETED_WITH_QUARANTINE = "completed_quarantine", "Completed with quarantined records"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATUSES = (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.HELD)
FINISHED_STATUSES = (
    RunStatus.COMPLETED,
    RunStatus.COMPLETED_WITH_QUARANTINE,
    RunStatus.FAILED,
    RunStatus.CANCELLED,
)
#: the count (in ``SyncRun.counts``) of a targeted run's records the connector cannot re-fetch
#: one by one; a delta run follows to pick them up
NOT_REFETCHABLE = "not_refetchable"


class Phase(models.TextChoices):
    """Where a running run is; a redelivered task resumes from here."""

    FETCH = "fetch", "Fetching and staging"
    APPLY = "apply", "Applying"
    FINISH = "finish", "Finishing"


class Approval(models.TextChoices):
    ALL = "all", "Approve all"
    EXCEPT_DEACTIVATIONS = "except_deactivations", "Approve all but deactivations"
    REJECT = "reject", "Reject"


class SyncRun(TimeStampedModel):
    district = models.ForeignKey(
        District,
        on_delete=models.PROTECT,
        related_name="sync_runs",
        db_index=False,  # syncrun_district_recent leads with it
    )
    connection = models.ForeignKey(
        "sis.SISConnection",
        on_delete=models.PROTECT,
        related_name="sync_runs",
        db_index=False,  # syncrun_connection_status leads with it
    )
    mode = models.CharField(max_length=8, choices=Mode.choices)
    trigger = models.CharField(max_length=8, choices=Trigger.choices)
    status = models.CharField(max_length=24, choices=RunStatus.choices, default=RunStatus.PENDING)
    phase = models.CharField(max_length=8, choices=Phase.choices, default=Phase.FETCH)
    dry_run = models.BooleanField(default=False)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Targeted runs: the record to re-fetch (an event, an admin's "sync this one") or, for a
    # re-drive of several quarantined records, ``targets``: [[entity, source id], ...].
    target_entity = models.CharField(max_length=32, blank=True)
    target_source_id = models.CharField(max_length=255, blank=True)
    targets = models.JSONField(default=list, blank=True)
    # {entity: {create: n, update: n, deactivate: n, unchanged: n, quarantined: n}}
    counts = models.JSONField(default=dict, blank=True)
    pages_done = models.PositiveIntegerField(default=0)
    pages_expected = models.PositiveIntegerField(null=True, blank=True)
    changes_total = models.PositiveIntegerField(default=0)
    changes_applied = models.PositiveIntegerField(default=0)
    # The last SyncChange id applied; batches commit together with it.
    checkpoint = models.BigIntegerField(default=0)
    # Where staging resumes (full and delta runs): the entities staged to their end, with the
    # run's counts, the newest SIS modification time and the SIS's own watermark at that moment.
    # A worker killed while staging starts again at the first entity not in it, not at page one.
    staging_checkpoint = models.JSONField(default=dict, blank=True)
    # For the minute drain that hands runs nobody executes back to the workers
    # (services.stranded_runs_resume): times a worker (or the sync command) took the run up, the
    # last of those that ended (a worker killed mid-run never ends its), the executions counted
    # when a copy was last sent (no second copy until one was taken up), and the copies sent
    # because a worker died with the run (past a few, the run is failed, not resent for ever).
    executions = models.PositiveIntegerField(default=0)
    last_ended_execution = models.PositiveIntegerField(default=0)
    handed_out_at_execution = models.PositiveIntegerField(null=True, blank=True)
    lost_worker_handouts = models.PositiveIntegerField(default=0)
    # Delta watermark: where this run read from, and where the next delta starts.
    watermark_from = models.CharField(max_length=64, blank=True)
    watermark_to = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    staged_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error_summary = models.TextField(blank=True)
    quarantined_count = models.PositiveIntegerField("quarantined", default=0)
    conflicts_count = models.PositiveIntegerField("conflicts", default=0)
    held_reason = models.TextField(blank=True)
    # When the run's staged changes and page records were deleted (syncing/retention.py); its
    # counts above stay.
    details_purged_at = models.DateTimeField(null=True, blank=True)
    # Staged totals and samples shown to the reviewing admin.
    held_details = models.JSONField(default=dict, blank=True)
    approval = models.CharField(max_length=24, choices=Approval.choices, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    # A beat that fires twice, or an API client retrying, passes the same key: one run.
    idempotency_key = models.CharField(max_length=120, null=True, blank=True, unique=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["connection", "status"], name="syncrun_connection_status"),
            models.Index(fields=["district", "-created_at"], name="syncrun_district_recent"),
        ]
        constraints = [
            # The database enforces "one run per connection at a time" as the last line of
            # defence behind the lock. A held run counts: nothing else runs until an admin
            # has decided on it.
            models.UniqueConstraint(
                fields=["connection"],
                condition=Q(status__in=["pending", "running", "held"]),
                name="syncrun_one_active_per_connection",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_mode_display()} sync #{self.pk} ({self.get_status_display()})"

    @property
    def progress_percent(self) -> int:
        """Staging is the first half, applying the second. While staging, 0 until the run's
        pages can be estimated (syncing/engine/progress.py), and below 50 until it ends."""
        if self.phase == Phase.FETCH:
            if not self.pages_expected:
                return 0
            return min(49, int(50 * self.pages_done / self.pages_expected))
        if not self.changes_total:
            return 100 if self.status in FINISHED_STATUSES else 50
        return 50 + int(50 * self.changes_applied / self.changes_total)

    @property
    def progress_note(self) -> str:
        """Where the run is, in words, for a run still moving ("staging: 7 of about 20
        pages", "applying: 100 of 400 changes")."""
        if self.phase == Phase.FETCH:
            if not self.pages_expected:
                return f"staging: {self.pages_done} pages"
            return f"staging: {self.pages_done} of about {self.pages_expected} pages"
        if self.phase == Phase.APPLY:
            return f"applying: {self.changes_applied} of {self.changes_total} changes"
        return "finishing"

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or self.updated_at
        return (end - self.started_at).total_seconds()

    @property
    def target_pairs(self) -> list[tuple[str, str]]:
        """A targeted run's records as (entity, source id), one target or a list."""
        if self.mode != Mode.TARGETED:
            return []
        pairs = self.targets or [[self.target_entity, self.target_source_id]]
        return [(str(entity), str(source_id)) for entity, source_id in pairs]

    @property
    def entities_not_refetched(self) -> set[str]:
        """Entities of which the run could not re-fetch some targets (:data:`NOT_REFETCHABLE`)."""
        return {entity for entity, counts in self.counts.items() if NOT_REFETCHABLE in counts}


class SourceLink(TimeStampedModel):
    """The identity crosswalk: one SIS record of one connection ↔ one local object.

    ``baseline`` holds the field values last agreed with the SIS: the third side of every
    three-way comparison. ``content_hash`` is the hash of the canonical record last seen, so an
    unchanged record costs one comparison. ``school`` is the school the object belongs to (for
    per-school safety thresholds), when it has one.
    """

    # No index of its own on any foreign key: a crosswalk row is found by its connection,
    # entity and source id (or object id), which the two indexes below serve. Every index more
    # is written with each of the million links of a big district, and single-column indexes
    # misled the planner into scanning a whole connection per lookup while the statistics
    # lagged behind a first load.
    #
    # Nor a database constraint: only the engine writes links, a million at a time, and each
    # foreign-key constraint costs a check (an index probe and a row lock on the parent) per
    # inserted row — measured, the four on district, connection and runs more than doubled
    # the time to insert 200,000 links (4.2 s against 1.5 s). Django still applies every
    # ``on_delete`` below (it collects the links itself); only raw SQL could leave one dangling.
    district = models.ForeignKey(
        District, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    connection = models.ForeignKey(
        "sis.SISConnection",
        on_delete=models.PROTECT,
        related_name="source_links",
        db_index=False,
        db_constraint=False,
    )
    entity = models.CharField(max_length=32)
    source_id = models.CharField(max_length=255)
    object_id = models.BigIntegerField()
    school = models.ForeignKey(
        School,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    content_hash = models.CharField(max_length=32)
    baseline = models.JSONField(default=dict)
    first_run = models.ForeignKey(
        SyncRun,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    last_run = models.ForeignKey(
        SyncRun,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["connection_id", "entity", "source_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "entity", "source_id"], name="sourcelink_unique_source"
            ),
        ]
        indexes = [
            # Object first: led by the connection and entity, this index was the planner's
            # choice for a source-id lookup whenever the statistics lagged (one probe then
            # scanned every link of the entity); now only the unique index can serve those.
            models.Index(fields=["object_id", "entity"], name="sourcelink_object_entity"),
        ]

    def __str__(self) -> str:
        return f"{self.entity} {self.source_id} → {self.object_id}"


class ChangeAction(models.TextChoices):
    CREATE = "create", "Create"
    UPDATE = "update", "Update"
    DEACTIVATE = "deactivate", "Deactivate"


class ChangeState(models.TextChoices):
    STAGED = "staged", "Staged"
    APPLIED = "applied", "Applied"
    HELD = "held", "Held"
    REJECTED = "rejected", "Rejected"
    FAILED = "failed", "Failed (quarantined)"


class SyncChange(models.Model):
    """One staged change of a run. ``values`` is the canonical record as mapped to our fields
    (references still as source ids); ``diff`` maps each changed field to ``[old, new]``."""

    # Indexed by the run's two indexes below (and the link by a partial one: creates have
    # none), not on their own; and, like SourceLink's, without database constraints (a run
    # stages up to millions of changes; Django applies the ``on_delete``s).
    run = models.ForeignKey(
        SyncRun,
        on_delete=models.CASCADE,
        related_name="changes",
        db_index=False,
        db_constraint=False,
    )
    entity = models.CharField(max_length=32)
    source_id = models.CharField(max_length=255)
    action = models.CharField(max_length=12, choices=ChangeAction.choices)
    state = models.CharField(max_length=10, choices=ChangeState.choices, default=ChangeState.STAGED)
    # Dependency order of the entity: changes are applied in (rank, action order, id) order.
    rank = models.PositiveSmallIntegerField(default=0)
    link = models.ForeignKey(
        SourceLink,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    school_id = models.BigIntegerField(null=True, blank=True)
    values = models.JSONField(default=dict, blank=True)
    diff = models.JSONField(default=dict, blank=True)
    content_hash = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            # A duplicated page stages nothing twice.
            models.UniqueConstraint(
                fields=["run", "entity", "source_id"], name="syncchange_once_per_run"
            ),
        ]
        indexes = [
            # Not on ``state``: applying a change then updates no index, and with the table's
            # fill factor (migration 0008) its new version stays on its page (a heap-only
            # update). Claims find the staged rows of a rank from an id floor instead.
            models.Index(fields=["run", "rank", "id"], name="syncchange_run_rank"),
            models.Index(
                fields=["link"], name="syncchange_link", condition=models.Q(link__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.entity} {self.source_id}"


class SyncPage(models.Model):
    """A page fetched and staged by a run, with the ids of the existing links it saw (what a
    full sync does *not* see is deactivated, so the seen set must survive a worker restart)."""

    run = models.ForeignKey(
        SyncRun,
        on_delete=models.CASCADE,
        related_name="pages",
        db_index=False,  # syncpage_unique leads with it
    )
    entity = models.CharField(max_length=32)
    number = models.PositiveIntegerField()
    seen_link_ids = models.JSONField(default=list)
    records = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "entity", "number"], name="syncpage_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.entity} page {self.number}"
