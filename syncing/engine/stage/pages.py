"""Diff one page of SIS records against the crosswalk and stage its changes; after an
entity's last page, check its references and (full sync) stage what the SIS no longer has."""

from __future__ import annotations

from typing import Any

import orjson
from django.db import transaction

from syncing.engine.dialect import sql as pgsql  # or its portable twin off PostgreSQL
from syncing.engine.stage.context import StageContext, change_rank, content_hash, quarantine_record
from syncing.entities import EntitySpec, Invalid, plain_value, record_values, validate, warnings
from syncing.models import ChangeAction, IdentityMatch, MatchStatus, SourceLink, SyncChange, SyncRun

# Marks a record on a page whose hash matched its link's: nothing to stage.
_UNCHANGED = object()

# The natural key a new record is matched on before it may be created: a local object with the
# same key is suggested as the same person/thing (identity churn), never duplicated.
NATURAL_KEYS: dict[str, str] = {
    "school": "local_id",
    "staff": "local_id",
    "student": "local_id",
    "guardian": "local_id",
    "course": "code",
}


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _raw_of(record: Any) -> Any:
    return getattr(record, "raw", None) or {}


def _is_deleted(record: Any) -> bool:
    return str(getattr(record, "status", "active")) == "tobedeleted"


def _waiting_identity(run: SyncRun, entity: str, source_ids: set[str]) -> set[str]:
    if not source_ids:
        return set()
    return set(
        IdentityMatch.objects.filter(
            connection_id=run.connection_id,
            entity=entity,
            status=MatchStatus.SUGGESTED,
            new_source_id__any=source_ids,
        ).values_list("new_source_id", flat=True)
    )


def stage_page(ctx: StageContext, spec: EntitySpec, page: Any) -> None:
    """Diff and stage one page, atomically with its SyncPage row."""
    run = ctx.run
    with transaction.atomic():
        pgsql.batch_settings()
        for item in getattr(page, "quarantined", ()) or ():
            quarantine_record(
                run=run,
                entity=spec.name,
                source_id=item.source_id or "",
                payload=item.raw,
                reason_code="malformed",
                message=str(item.reason),
            )
            ctx.count(spec.name, "quarantined")
        # Records that failed to map are still "seen": the SIS returned them, so they must not
        # be deactivated because they are malformed.
        unmapped = [
            str(item.source_id) for item in getattr(page, "quarantined", ()) or () if item.source_id
        ]
        links = (
            {
                row[1]: row
                for row in pgsql.links_of_sources(
                    run.connection_id,
                    spec.name,
                    list({*(str(r.source_id) for r in page.records), *unmapped}),
                )
            }
            if ctx.has_links(spec.name)
            else {}
        )
        seen = [row[0] for row in links.values()]
        # Map, compare, validate; the last copy of a source id on a page wins. An unchanged
        # record (same hash as its active link) costs the mapping and the hash, nothing more:
        # it was validated when it was staged.
        mapped: dict[str, tuple[dict[str, Any], bool, Any, str]] = {}
        for record in page.records:
            source_id = str(record.source_id)
            modified = getattr(record, "modified_at", None)
            if modified is not None and (ctx.max_modified is None or modified > ctx.max_modified):
                ctx.max_modified = modified
            try:
                deleted = _is_deleted(record)
                # A deletion needs no values: a targeted re-fetch of a record gone at the SIS
                # stands in for it with its source id alone.
                values = {} if deleted else record_values(record)
                digest = "" if deleted else content_hash(values)
                link = links.get(source_id)
                if link is not None and link[3] and link[2] == digest:
                    mapped[source_id] = (values, False, _UNCHANGED, digest)
                    continue
                if not deleted:
                    for warning in warnings(spec, values):
                        quarantine_record(
                            run=run,
                            entity=spec.name,
                            source_id=source_id,
                            payload=_raw_of(record),
                            reason_code=warning.code,
                            message=warning.message,
                        )
                        ctx.count(spec.name, "warning")
                    validate(spec, values, ctx.region)
            except Invalid as exc:
                quarantine_record(
                    run=run,
                    entity=spec.name,
                    source_id=source_id,
                    payload=_raw_of(record),
                    reason_code=exc.code,
                    message=exc.message,
                )
                ctx.count(spec.name, "quarantined")
                mapped.pop(source_id, None)
                # Still "seen": a malformed record must not be deactivated.
                mapped[source_id] = ({}, False, None, "")
                continue
            except (TypeError, ValueError, AttributeError, KeyError) as exc:
                quarantine_record(
                    run=run,
                    entity=spec.name,
                    source_id=source_id,
                    payload=_raw_of(record),
                    reason_code="malformed",
                    message=f"{type(exc).__name__}: {exc}"[:500],
                )
                ctx.count(spec.name, "quarantined")
                mapped[source_id] = ({}, False, None, "")
                continue
            mapped[source_id] = (values, deleted, record, digest)

        creates: list[tuple[str, dict[str, Any], str, Any]] = []
        updates: list[tuple[str, dict[str, Any], str, tuple[Any, ...]]] = []
        deactivations: list[tuple[str, tuple[Any, ...]]] = []
        unchanged = 0
        for source_id, (values, deleted, record, digest) in mapped.items():
            if record is None:
                continue  # quarantined
            if record is _UNCHANGED:
                unchanged += 1
                continue
            link = links.get(source_id)
            if deleted:
                if link is not None and link[3]:
                    deactivations.append((source_id, link))
                continue
            if link is None:
                creates.append((source_id, values, digest, record))
            else:
                updates.append((source_id, values, digest, link))

        ctx.count(spec.name, "unchanged", unchanged)
        creates = _hold_identity_matches(ctx, spec, creates)

        # Rows in pgsql.CHANGE_COLUMNS order; values and diff as JSON text.
        rows: list[tuple[Any, ...]] = []
        rank = change_rank(spec, ChangeAction.CREATE)
        for source_id, values, digest, _ in creates:
            if spec.derive is not None:
                # Staged with the create (not hashed): applying it is then pure SQL.
                values = {**values, **spec.derive(values, ctx.region)}
            rows.append(
                (run.pk, spec.name, source_id, ChangeAction.CREATE.value, "staged", rank, None,
                 None, _json(values), "{}", digest)
            )  # fmt: skip
        baselines: dict[int, dict[str, Any]] = {}
        if updates:
            baselines = dict(
                SourceLink.objects.filter(pk__any=[u[3][0] for u in updates]).values_list(
                    "id", "baseline"
                )
            )
        rank = change_rank(spec, ChangeAction.UPDATE)
        for source_id, values, digest, link in updates:
            base = baselines.get(link[0], {})
            diff = {k: [base.get(k), v] for k, v in values.items() if base.get(k) != v}
            if not link[3]:
                diff["(link)"] = ["inactive", "active"]
            rows.append(
                (run.pk, spec.name, source_id, ChangeAction.UPDATE.value, "staged", rank, link[0],
                 link[4], _json(values), _json(diff), digest)
            )  # fmt: skip
        rank = change_rank(spec, ChangeAction.DEACTIVATE)
        for source_id, link in deactivations:
            rows.append(
                (run.pk, spec.name, source_id, ChangeAction.DEACTIVATE.value, "staged", rank,
                 link[0], link[4], "{}", "{}", "")
            )  # fmt: skip
        # All of them unless the page repeats an earlier page's source id (counted as staged).
        for action, n in pgsql.changes_stage(rows).items():
            ctx.count(spec.name, action, n)
        pgsql.page_record(
            run_id=run.pk,
            entity=spec.name,
            number=page.number,
            seen_link_ids=seen,
            records=len(page.records),
            counts=ctx.counts,
        )


def _hold_identity_matches(
    ctx: StageContext, spec: EntitySpec, creates: list[tuple[str, dict[str, Any], str, Any]]
) -> list[tuple[str, dict[str, Any], str, Any]]:
    """A new source id whose natural key is already taken by a local object is an identity
    question (an SIS re-key, a record created here first): suggest the match, create nothing."""
    key = NATURAL_KEYS.get(spec.name)
    if key is None or not creates:
        return creates
    wanted = {values[key] for _, values, _, _ in creates if values.get(key)}
    if not wanted:
        return creates
    manager = spec.model._default_manager
    district_rows = manager.filter(district_id=ctx.run.district_id)
    if not district_rows.exists():
        # A district's first load: nothing local to match, and one probe instead of a lookup
        # of every key of the page (a tenth of a 10,000-student first load's staging).
        return creates
    same_key = district_rows.filter(**{f"{key}__any": wanted})
    taken = {
        row[key]: row for row in same_key.values("id", *[f for f in spec.fields if f != "active"])
    }
    if not taken:
        return creates
    old_links = {
        object_id: link_id
        for link_id, object_id in SourceLink.objects.filter(
            connection_id=ctx.run.connection_id,
            entity=spec.name,
            object_id__any=[row["id"] for row in taken.values()],
        ).values_list("id", "object_id")
    }
    # Suggestions an admin rejected stay rejected: such a record waits in quarantine for the
    # SIS to fix the key, instead of being suggested again by every run.
    rejected = set(
        IdentityMatch.objects.filter(
            connection_id=ctx.run.connection_id,
            entity=spec.name,
            status=MatchStatus.REJECTED,
            new_source_id__any=[entry[0] for entry in creates],
        ).values_list("new_source_id", "object_id")
    )
    keep = []
    for entry in creates:
        source_id, values = entry[0], entry[1]
        local = taken.get(values.get(key))
        if local is None:
            keep.append(entry)
            continue
        if (source_id, local["id"]) in rejected:
            quarantine_record(
                run=ctx.run,
                entity=spec.name,
                source_id=source_id,
                payload=_raw_of(entry[3]),
                reason_code="duplicate_key",
                message="Another local record already uses this record's local id.",
            )
            ctx.count(spec.name, "quarantined")
            continue
        compared = {
            name: {"local": plain_value(local.get(name)), "sis": values.get(name)}
            for name in (key, *_EVIDENCE.get(spec.name, ()))
        }
        evidence: dict[str, Any] = {
            **compared,
            "same": [n for n, v in compared.items() if v["local"] == v["sis"]],
        }
        IdentityMatch.objects.update_or_create(
            connection_id=ctx.run.connection_id,
            entity=spec.name,
            new_source_id=source_id,
            status=MatchStatus.SUGGESTED,
            defaults={
                "district_id": ctx.run.district_id,
                "run": ctx.run,
                "object_id": local["id"],
                "old_link_id": old_links.get(local["id"]),
                "evidence": evidence,
                "values": values,
            },
        )
        ctx.count(spec.name, "identity_match")
    return keep


_EVIDENCE = {
    "student": ("legal_first_name", "legal_last_name", "birth_date"),
    "guardian": ("first_name", "last_name", "email"),
    "staff": ("first_name", "last_name", "email"),
    "school": ("name",),
    "course": ("title",),
}


def stage_references(ctx: StageContext, spec: EntitySpec) -> None:
    """After an entity's last page: every staged create and update must refer to records that
    resolve — linked already, or staged for creation in this run (an entity only refers to
    entities staged before it). Checked set-based, once per reference. A record that refers
    to one waiting for an identity decision waits too (not an error); one with an unknown
    required reference is quarantined; an unknown optional reference is cleared."""
    run = ctx.run
    for ref in spec.refs:
        unresolved = pgsql.unresolved_references(
            run.pk, run.connection_id, spec.name, ref.attname, ref.entity
        )
        if not unresolved:
            continue
        waiting = _waiting_identity(run, ref.entity, {row[3] for row in unresolved})
        payloads: dict[int, Any] = {}
        if ref.required:
            payloads = dict(
                SyncChange.objects.filter(
                    pk__any=[row[0] for row in unresolved if row[3] not in waiting]
                ).values_list("id", "values")
            )
        dropped: list[int] = []
        cleared: dict[int, str] = {}
        with transaction.atomic():
            for change_id, source_id, action, target in unresolved:
                if target in waiting:
                    ctx.count(spec.name, "waiting_identity")
                elif ref.required:
                    quarantine_record(
                        run=run,
                        entity=spec.name,
                        source_id=source_id,
                        payload=payloads.get(change_id) or {},
                        reason_code="unknown_reference",
                        message=f"{ref.attname} refers to an unknown {ref.entity}.",
                    )
                    ctx.count(spec.name, "quarantined")
                else:
                    cleared[change_id] = target
                    continue
                ctx.count(spec.name, action, -1)
                dropped.append(change_id)
            SyncChange.objects.filter(pk__any=dropped).delete()
            for change in SyncChange.objects.filter(pk__any=cleared):
                change.values[ref.attname] = None
                if change.action == ChangeAction.UPDATE:
                    # No diff entry: the baseline held the unknown value already.
                    diff = change.diff.get(ref.attname)
                    old = diff[0] if diff else cleared[change.pk]
                    if old is None:
                        change.diff.pop(ref.attname, None)
                    else:
                        change.diff[ref.attname] = [old, None]
                change.save(update_fields=["values", "diff"])


def stage_deactivations(ctx: StageContext, spec: EntitySpec) -> int:
    """Full sync: stage a deactivation for every active link of ``spec`` this run did not see
    (set-based: nothing is loaded into memory)."""
    run = ctx.run
    with transaction.atomic():
        staged = pgsql.unseen_deactivations_stage(
            run.pk, change_rank(spec, ChangeAction.DEACTIVATE), run.connection_id, spec.name
        )
    ctx.count(spec.name, "deactivate", staged)
    return staged
