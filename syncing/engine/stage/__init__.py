"""Fetch → diff → stage, one page at a time.

Each page is diffed against the SourceLinks of its source ids (one query): a record whose
content hash equals the link's costs that comparison and nothing else. Creates, updates and
deletions are staged as SyncChange rows; the page, with the ids of the links it saw, is recorded
in the same transaction, so a full sync can tell afterwards what the SIS no longer returns.
Nothing in the domain is touched here.
"""

from syncing.engine.stage.checkpoint import (
    entities_for,
    fetched_records,
    stage_resume,
    staged_totals,
    staging_checkpoint_save,
)
from syncing.engine.stage.context import (
    StageContext,
    action_of_rank,
    change_rank,
    content_hash,
    quarantine_record,
)
from syncing.engine.stage.pages import stage_deactivations, stage_page, stage_references
from syncing.engine.stage.walk import stage_run

__all__ = [
    "StageContext",
    "action_of_rank",
    "change_rank",
    "content_hash",
    "entities_for",
    "fetched_records",
    "quarantine_record",
    "stage_deactivations",
    "stage_page",
    "stage_references",
    "stage_resume",
    "stage_run",
    "staged_totals",
    "staging_checkpoint_save",
]
