"""What staging shares: the run's staging context, content hashes, change ranks, and the
quarantine where a record that cannot be staged waits."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from syncing.entities import EntitySpec
from syncing.models import ChangeAction, QuarantinedRecord, QuarantineStatus, SourceLink, SyncRun

ACTION_ORDER = {ChangeAction.DEACTIVATE: 0, ChangeAction.UPDATE: 1, ChangeAction.CREATE: 2}


def content_hash(values: dict[str, Any]) -> str:
    """Hash of a record as mapped from the SIS (before validation cleans it), so an unchanged
    record is recognised before anything else is done with it."""
    return hashlib.md5(
        orjson.dumps(values, option=orjson.OPT_SORT_KEYS), usedforsecurity=False
    ).hexdigest()


def change_rank(spec: EntitySpec, action: str) -> int:
    """Changes apply by entity dependency order, then deactivations before updates before
    creates (a transfer's old span closes before the new one opens)."""
    return spec.rank * 4 + ACTION_ORDER[ChangeAction(action)]


def action_of_rank(rank: int) -> ChangeAction:
    """The action of the changes of one rank (see :func:`change_rank`)."""
    return next(action for action, order in ACTION_ORDER.items() if order == rank % 4)


@dataclass
class StageContext:
    run: SyncRun
    region: str
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    # The newest modification time the SIS reported: the next delta's watermark (the SIS's
    # own clock, so our clock's skew cannot skip changes).
    max_modified: Any = None
    # Per entity, whether the connection had any link when the run started staging it. Only
    # applying creates links, and the connection's lock keeps other runs out until this one
    # ends, so an entity without links keeps none while staging: its pages skip the lookup.
    linked: dict[str, bool] = field(default_factory=dict)

    def has_links(self, entity: str) -> bool:
        if entity not in self.linked:
            self.linked[entity] = SourceLink.objects.filter(
                connection_id=self.run.connection_id, entity=entity
            ).exists()
        return self.linked[entity]

    def count(self, entity: str, action: str, n: int = 1) -> None:
        """Add ``n`` (negative: a staged change taken back) to one count; zeros are dropped."""
        if n:
            bucket = self.counts.setdefault(entity, {})
            bucket[action] = bucket.get(action, 0) + n
            if not bucket[action]:
                del bucket[action]


def quarantine_record(
    *, run: SyncRun, entity: str, source_id: str, payload: Any, reason_code: str, message: str
) -> None:
    """Park a record (one open row per record: a repeat updates it and counts the attempt)."""
    payload = payload if isinstance(payload, dict) else {"value": repr(payload)[:2000]}
    payload = orjson.loads(orjson.dumps(payload, default=str))
    values = {
        "district_id": run.district_id,
        "run": run,
        "payload": payload,
        "reason_code": reason_code[:40],
        "message": message[:2000],
    }
    if source_id:
        existing = QuarantinedRecord.objects.filter(
            connection_id=run.connection_id,
            entity=entity,
            source_id=source_id,
            status=QuarantineStatus.OPEN,
        ).first()
        if existing is not None:
            for name, value in values.items():
                setattr(existing, name, value)
            existing.attempts += 1
            existing.save()
            return
    QuarantinedRecord.objects.create(
        connection_id=run.connection_id, entity=entity, source_id=source_id, **values
    )
