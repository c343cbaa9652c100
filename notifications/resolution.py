"""Who is told, on which channels, when and in which language. The order is fixed and every
step is written into the notification's explanation:

1. **contact rights** — the guardian and the student link are active and the link allows
   contact (custody, court orders). Nothing overrides this, not even a critical category.
2. **contact points** — verified, active, not opted out (STOP, bounce, complaint, admin) and
   not undeliverable. Nothing overrides a carrier opt-out either.
3. **preferences** — layered, most specific first: (student, category) → (category) →
   (student) → (guardian-wide) → the category's defaults. A *critical* category ignores the
   guardian's switch-off and an empty channel choice (it uses the category defaults).
4. **quiet hours** — inside the guardian's quiet hours (their time zone, else the
   district's) a message is deferred to the end of the window, not dropped. Critical
   categories bypass quiet hours.
5. **digest** — a guardian who chose the daily digest gets non-critical messages merged into
   one message at ``NOTIFY_DIGEST_HOUR`` local time.
6. **language** — the preference, else the guardian's SIS language, else the district default.
   (Rendering then falls back to the district default language when no template exists.)
7. **template** — chosen and rendered by :mod:`notifications.services.templates`.

This module holds the pure rules on already loaded rows; loading happens in
:mod:`notifications.selectors`.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass, field
from typing import Any

from attendance.models import District, Guardian, StudentGuardian
from notifications.models import Category, ContactPoint, DeferReason, Preference

CHANNEL_ORDER = ("sms", "email")


@dataclass
class Step:
    step: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "ok": self.ok, "detail": self.detail}


@dataclass
class MergedPreference:
    enabled: bool | None = None
    channels: list[str] | None = None
    delivery_mode: str = ""
    quiet_start: dt.time | None = None
    quiet_end: dt.time | None = None
    timezone: str = ""
    language: str = ""
    layers: list[str] = field(default_factory=list)


@dataclass
class Decision:
    guardian: Guardian
    send: bool
    steps: list[Step]
    channels: list[tuple[str, ContactPoint]] = field(default_factory=list)
    language: str = ""
    deliver_at: dt.datetime | None = None
    defer_reason: str = DeferReason.NONE
    digest: bool = False

    @property
    def summary(self) -> str:
        if not self.send:
            failed = next((s for s in self.steps if not s.ok), None)
            return f"Not notified: {failed.detail}" if failed else "Not notified"
        channels = ", ".join(channel for channel, _ in self.channels)
        text = f"Notified by {channels}"
        if self.defer_reason:
            text += f" (deferred: {DeferReason(self.defer_reason).label.lower()})"
        return text

    def explanation(self) -> list[dict[str, Any]]:
        return [step.as_dict() for step in self.steps]

    def plan(self) -> list[dict[str, Any]]:
        return [{"channel": channel, "contact_point": cp.pk} for channel, cp in self.channels]


def preferences_merge(
    preferences: list[Preference], *, student_id: int | None, category_id: int
) -> MergedPreference:
    """Merge a guardian's preference rows for one student and category (most specific wins)."""

    def specificity(pref: Preference) -> int | None:
        if pref.student_id is not None and pref.student_id != student_id:
            return None
        if pref.category_id is not None and pref.category_id != category_id:
            return None
        return (2 if pref.category_id is not None else 0) + (1 if pref.student_id else 0)

    layered = sorted(
        (p for p in preferences if specificity(p) is not None),
        key=lambda p: -(specificity(p) or 0),
    )
    merged = MergedPreference()
    for pref in layered:
        merged.layers.append(
            f"{'student' if pref.student_id else 'all students'}/"
            f"{'category' if pref.category_id else 'all categories'}"
        )
        if merged.enabled is None and pref.enabled is not None:
            merged.enabled = pref.enabled
        if merged.channels is None and pref.channels is not None:
            merged.channels = list(pref.channels)
        if not merged.delivery_mode and pref.delivery_mode:
            merged.delivery_mode = pref.delivery_mode
        if merged.quiet_start is None and pref.quiet_start is not None:
            merged.quiet_start, merged.quiet_end = pref.quiet_start, pref.quiet_end
        if not merged.timezone and pref.timezone:
            merged.timezone = pref.timezone
        if not merged.language and pref.language:
            merged.language = pref.language
    return merged


def _in_window(local: dt.time, start: dt.time, end: dt.time) -> bool:
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end  # the window wraps midnight (21:00–07:00)


def quiet_hours_end(
    moment: dt.datetime, *, start: dt.time, end: dt.time, tz: zoneinfo.ZoneInfo
) -> dt.datetime | None:
    """When ``moment`` falls inside the quiet window, the (aware, UTC) end of that window."""
    local = moment.astimezone(tz)
    if not _in_window(local.time(), start, end):
        return None
    day = local.date()
    if start > end and local.time() >= start:
        day += dt.timedelta(days=1)
    return dt.datetime.combine(day, end, tzinfo=tz).astimezone(dt.UTC)


def next_digest_time(moment: dt.datetime, *, hour: int, tz: zoneinfo.ZoneInfo) -> dt.datetime:
    local = moment.astimezone(tz)
    at = dt.datetime.combine(local.date(), dt.time(hour), tzinfo=tz)
    if at <= local:
        at = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(hour), tzinfo=tz)
    return at.astimezone(dt.UTC)


def guardian_decide(
    *,
    guardian: Guardian,
    link: StudentGuardian | None,
    category: Category,
    district: District,
    student_id: int | None,
    contact_points: list[ContactPoint],
    preferences: list[Preference],
    now: dt.datetime,
    not_before: dt.datetime | None = None,
    digest_hour: int = 18,
    allow_digest: bool = True,
) -> Decision:
    steps: list[Step] = []
    decision = Decision(guardian=guardian, send=False, steps=steps)

    # 1. Contact rights.
    if not guardian.active:
        steps.append(Step("contact_rights", False, "The guardian record is inactive."))
        return decision
    if link is not None:
        if not link.active:
            steps.append(
                Step("contact_rights", False, "The guardian's link to the student is inactive.")
            )
            return decision
        if not link.contact_allowed:
            steps.append(
                Step(
                    "contact_rights",
                    False,
                    "Contact not allowed for this student (custody / contact-rights rule); "
                    "this applies to every category, critical ones included.",
                )
            )
            return decision
        steps.append(
            Step("contact_rights", True, "The guardian may be contacted about this student.")
        )
    else:
        steps.append(Step("contact_rights", True, "Direct message to the guardian (no student)."))

    # 2. Contact points.
    usable: dict[str, ContactPoint] = {}
    reasons: list[str] = []
    for cp in sorted(contact_points, key=lambda c: (c.kind, c.label != "mobile", c.pk)):
        if not cp.active:
            reasons.append(f"{cp.kind} #{cp.pk} inactive")
        elif not cp.verified:
            reasons.append(f"{cp.kind} #{cp.pk} not verified")
        elif cp.opted_out:
            reasons.append(f"{cp.kind} #{cp.pk} opted out ({cp.get_opt_out_source_display()})")
        elif cp.undeliverable:
            reasons.append(f"{cp.kind} #{cp.pk} undeliverable ({cp.last_failure_code})")
        else:
            usable.setdefault(cp.kind, cp)
    detail = "Usable: " + (", ".join(f"{k} #{cp.pk}" for k, cp in usable.items()) or "none")
    if reasons:
        detail += "; excluded: " + "; ".join(reasons)
    steps.append(Step("contact_points", bool(usable), detail))
    if not usable:
        return decision

    # 3. Preferences.
    merged = preferences_merge(preferences, student_id=student_id, category_id=category.pk)
    layers = ", ".join(merged.layers) or "none (category defaults)"
    if merged.enabled is False and not category.critical:
        steps.append(
            Step(
                "preferences",
                False,
                f"The guardian switched off '{category.name}' (layers: {layers}).",
            )
        )
        return decision
    chosen = merged.channels
    note = ""
    if merged.enabled is False:
        note = " The guardian's switch-off is ignored: the category is critical."
    if not chosen:
        if chosen is not None and not category.critical:
            steps.append(
                Step("preferences", False, "The guardian chose no channel for this category.")
            )
            return decision
        chosen = list(category.default_channels) or list(CHANNEL_ORDER)
        note += " Category default channels used."
    channels = [(c, usable[c]) for c in CHANNEL_ORDER if c in chosen and c in usable]
    if not channels:
        steps.append(
            Step(
                "preferences",
                False,
                f"No usable contact point on the chosen channels ({', '.join(chosen)}).",
            )
        )
        return decision
    steps.append(
        Step(
            "preferences",
            True,
            f"Channels: {', '.join(c for c, _ in channels)} (layers: {layers}).{note}",
        )
    )

    # 4. Quiet hours (critical bypasses) and 5. digest.
    tz_name = merged.timezone or district.timezone
    tz = zoneinfo.ZoneInfo(tz_name)
    deliver_at = max(now, not_before) if not_before else now
    defer_reason = DeferReason.HOLD if not_before and not_before > now else DeferReason.NONE
    digest = False
    if allow_digest and not category.critical and merged.delivery_mode == "digest":
        deliver_at = next_digest_time(deliver_at, hour=digest_hour, tz=tz)
        defer_reason, digest = DeferReason.DIGEST, True
    if category.critical:
        steps.append(Step("quiet_hours", True, "Critical category: quiet hours do not apply."))
    elif merged.quiet_start is not None and merged.quiet_end is not None:
        end = quiet_hours_end(deliver_at, start=merged.quiet_start, end=merged.quiet_end, tz=tz)
        if end is not None:
            deliver_at = end
            defer_reason = DeferReason.DIGEST if digest else DeferReason.QUIET_HOURS
            steps.append(
                Step(
                    "quiet_hours",
                    True,
                    f"Inside quiet hours {merged.quiet_start:%H:%M}–{merged.quiet_end:%H:%M} "
                    f"({tz_name}); deferred to {end.astimezone(tz):%Y-%m-%d %H:%M}.",
                )
            )
        else:
            steps.append(Step("quiet_hours", True, "Outside the guardian's quiet hours."))
    else:
        steps.append(Step("quiet_hours", True, "No quiet hours set."))
    if digest:
        steps.append(
            Step(
                "digest",
                True,
                f"Daily digest at {deliver_at.astimezone(tz):%Y-%m-%d %H:%M} ({tz_name}).",
            )
        )
    else:
        steps.append(Step("digest", True, "Sent on its own (instant)."))

    # 6. Language.
    if merged.language:
        language, source = merged.language, "preference"
    elif guardian.preferred_language:
        language, source = guardian.preferred_language, "SIS"
    else:
        language, source = district.default_language, "district default"
    steps.append(Step("language", True, f"{language} ({source})."))

    decision.send = True
    decision.channels = channels
    decision.language = language
    decision.deliver_at = deliver_at
    decision.defer_reason = defer_reason
    decision.digest = digest
    return decision
