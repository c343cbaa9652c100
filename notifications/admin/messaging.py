"""Admin of categories, templates, notifications, deliveries and bulk notices."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join

from attendance.admin_scoping import ScopedAdmin, request_scope
from attendance.models import GradeLevel
from core.attention import Attention, attention_register
from core.charts import Series, stacked_columns
from core.errors import ApplicationError
from notifications import selectors
from notifications.admin.common import ScopedReadOnlyInline, channel_boxes
from notifications.links import MARK, as_sent, with_link
from notifications.models import (
    BulkNotice,
    BulkNoticeState,
    Category,
    Delivery,
    DeliveryEvent,
    DeliveryStatus,
    Notification,
    Template,
)
from notifications.segments import sms_length
from notifications.services import bulk
from notifications.services.templates import template_render_text, templates_cache_clear

SAMPLE_CONTEXT = {
    "student_first_name": "Alex",
    "guardian_name": "Jordan Sample",
    "school_name": "Sample Elementary",
    "district_name": "Sample District",
    "date": "Sep 1",
    "status_text": "absent",
    "periods": "1, 3",
    "absences": 3,
    "percent": 10,
    "subject": "Sample subject",
    "body": "Sample announcement text.",
    # Previewed and counted as sent: a link of a real link's length (notifications.links).
    "portal_link": MARK,
}

_SAMPLE_LINK = "https://attendance.example.org/portal/l/…/"


class CategoryForm(forms.ModelForm):
    default_channels = channel_boxes(
        "Used when a guardian has chosen none for this category. None ticked: every channel."
    )

    class Meta:
        model = Category
        fields = ["code", "name", "critical", "default_channels", "description"]


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    """Categories are shared by every district: only superusers change them."""

    form = CategoryForm
    list_display = ["code", "name", "critical", "default_channels"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_staff)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_superuser)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Template)
class TemplateAdmin(ScopedAdmin):
    list_display = ["category", "channel", "language", "district", "active", "length"]
    list_filter = ["channel", "language", "category", "active"]
    search_fields = ["subject", "body"]
    readonly_fields = ["preview"]
    fields = ["district", "category", "channel", "language", "subject", "body", "active", "preview"]

    def save_model(self, request: HttpRequest, obj: Template, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        # Other processes pick the change up within the cache's 30 seconds.
        templates_cache_clear()

    @admin.display(description="SMS length")
    def length(self, obj: Template) -> str:
        if obj.channel != "sms":
            return "—"
        _, body = template_render_text(
            subject="", body=obj.body, channel="sms", context=SAMPLE_CONTEXT
        )
        return str(sms_length(as_sent(body)))

    @admin.display(description="Preview (sample data)")
    def preview(self, obj: Template) -> str:
        if not obj.pk:
            return "Save to see a preview."
        try:
            subject, body = template_render_text(
                subject=obj.subject, body=obj.body, channel=obj.channel, context=SAMPLE_CONTEXT
            )
        except Exception as exc:  # a template syntax error is shown, not raised
            return format_html("<strong>Template error:</strong> {}", str(exc))
        extra = ""
        if obj.channel == "sms":
            extra = str(sms_length(as_sent(body)))
        subject, body = with_link(subject, _SAMPLE_LINK), with_link(body, _SAMPLE_LINK)
        return format_html(
            "<div><strong>{}</strong></div><pre>{}</pre><div>{}</div>", subject, body, extra
        )


class DeliveryEventInline(ScopedReadOnlyInline):
    model = DeliveryEvent
    extra = 0
    can_delete = False
    readonly_fields = [
        "received_at", "source", "status", "provider_status", "error_code", "raw_json"
    ]  # fmt: skip
    fields = tuple(readonly_fields)
    ordering = ["received_at", "id"]

    @admin.display(description="Raw payload")
    def raw_json(self, obj: DeliveryEvent) -> str:
        return format_html("<code>{}</code>", json.dumps(obj.raw, sort_keys=True)[:500])

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DeliveryInline(ScopedReadOnlyInline):
    model = Delivery
    extra = 0
    can_delete = False
    readonly_fields = [
        "channel", "provider", "status", "error_code", "attempts", "sent_at", "is_fallback"
    ]  # fmt: skip
    fields = tuple(readonly_fields)
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


_READ_ONLY_SEARCH = [
    "guardian__last_name",
    "guardian__first_name",
    "student__legal_last_name",
    "student__legal_first_name",
    "student__local_id",
    "event_key",
]


@admin.register(Notification)
class NotificationAdmin(ScopedAdmin):
    school_path = "school"
    list_display = [
        "event_key",
        "guardian",
        "student",
        "category",
        "status",
        "summary",
        "created_at",
    ]
    list_filter = ["status", "category", "defer_reason", "digest"]
    search_fields = _READ_ONLY_SEARCH
    list_select_related = ["guardian", "student", "category"]
    date_hierarchy = "created_at"
    inlines = [DeliveryInline]
    exclude = ["explanation", "content", "context", "plan"]
    readonly_fields = [
        "event_key", "district", "school", "guardian", "student", "bulk_notice", "category",
        "language", "status", "digest", "deferred_until", "defer_reason", "merged_into",
        "summary", "explanation_steps", "rendered", "created_at",
    ]  # fmt: skip

    @admin.display(description="Why (resolution steps)")
    def explanation_steps(self, obj: Notification) -> str:
        return format_html(
            "<ol>{}</ol>",
            format_html_join(
                "",
                "<li><strong>{}</strong> {}: {}</li>",
                (
                    (s.get("step", ""), "✔" if s.get("ok") else "✘", s.get("detail", ""))
                    for s in obj.explanation
                ),
            ),
        )

    @admin.display(description="Rendered content")
    def rendered(self, obj: Notification) -> str:
        return format_html_join(
            "",
            "<div><em>{}</em> <strong>{}</strong><pre>{}</pre></div>",
            ((ch, c.get("subject", ""), c.get("body", "")) for ch, c in obj.content.items()),
        )

    # A record of what happened, written by the services: read-only.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(ScopedAdmin):
    district_path = "notification__district"
    school_path = "notification__school"
    list_display = ["id", "channel", "provider", "status", "error_code", "attempts", "created_at"]
    list_filter = ["status", "channel", "provider", "is_fallback"]
    search_fields = [f"notification__{f}" for f in _READ_ONLY_SEARCH] + ["provider_message_id"]
    date_hierarchy = "created_at"
    inlines = [DeliveryEventInline]
    readonly_fields = [
        "uuid", "notification", "channel", "contact_point", "provider", "provider_message_id",
        "status", "error_code", "error_message", "attempts", "next_attempt_at", "segments",
        "subject", "body", "is_fallback", "created_at", "sent_at",
    ]  # fmt: skip
    exclude = ["to", "idempotency_key"]
    change_list_template = "admin/notifications/delivery/change_list.html"
    STATISTICS_DAYS = 30
    STATISTICS_SERIES = [
        Series("delivered", "delivered", "#2e7d32"),
        Series("failed", "failed, bounced or undelivered", "#c62828"),
        Series("other", "other (not yet delivered, cancelled, unknown)", "#9e9e9e"),
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        custom = [
            path(
                "statistics/",
                self.admin_site.admin_view(self.statistics_view),
                name="notifications_delivery_statistics",
            )
        ]
        return custom + super().get_urls()

    def statistics_view(self, request: HttpRequest) -> HttpResponse:
        today = timezone.localdate()
        first = today - dt.timedelta(days=self.STATISTICS_DAYS - 1)
        rows = selectors.delivery_statistics(
            deliveries=self.get_queryset(request).filter(
                created_at__gte=dt.datetime.combine(
                    first, dt.time.min, tzinfo=timezone.get_current_timezone()
                )
            )
        )
        days = (first + dt.timedelta(days=n) for n in range(self.STATISTICS_DAYS))
        per_day = {day: Counter[str]() for day in days}
        for row in rows:
            counts = per_day.setdefault(row["day"], Counter())
            counts["delivered"] += row["delivered"]
            counts["failed"] += row["failed"]
            counts["other"] += row["total"] - row["delivered"] - row["failed"]
        chart = stacked_columns(
            [(date_format(day, "M j"), counts) for day, counts in sorted(per_day.items())],
            self.STATISTICS_SERIES,
            description=f"Deliveries per day over the last {self.STATISTICS_DAYS} days",
        )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Delivery statistics (last {self.STATISTICS_DAYS} days)",
            "rows": rows,
            "chart": chart,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/notifications/delivery/statistics.html", context)


class BulkNoticeForm(forms.ModelForm):
    """Compose: one subject and body per language (the district language is required)."""

    subject_en = forms.CharField(label="Subject (English)", max_length=200, required=False)
    body_en = forms.CharField(label="Text (English)", widget=forms.Textarea, required=False)
    subject_es = forms.CharField(label="Subject (Spanish)", max_length=200, required=False)
    body_es = forms.CharField(label="Text (Spanish)", widget=forms.Textarea, required=False)

    grade_levels = forms.MultipleChoiceField(
        choices=GradeLevel.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple(attrs={"class": "radiolist inline"}),
        help_text="None ticked: every grade.",
    )

    class Meta:
        model = BulkNotice
        fields = ["district", "title", "category", "schools", "grade_levels", "sections"]
        help_texts = {
            "schools": "None chosen: every school of the district.",
            "sections": "None chosen: no section filter. Chosen: only students in one of them.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for language in ("en", "es"):
            text = self.instance.texts.get(language, {}) if self.instance.pk else {}
            self.fields[f"subject_{language}"].initial = text.get("subject", "")
            self.fields[f"body_{language}"].initial = text.get("body", "")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        texts = {
            lang: {"subject": data.get(f"subject_{lang}", ""), "body": data.get(f"body_{lang}", "")}
            for lang in ("en", "es")
            if data.get(f"body_{lang}")
        }
        district = data.get("district")
        if district is not None and district.default_language not in texts:
            raise forms.ValidationError(
                f"A text in the district language ({district.default_language}) is required."
            )
        self.instance.texts = texts
        return data


@admin.register(BulkNotice)
class BulkNoticeAdmin(ScopedAdmin):
    form = BulkNoticeForm
    list_display = ["title", "district", "category", "state", "progress", "created_at"]
    list_filter = ["state", "category"]
    readonly_fields = ["state", "audience", "progress", "started_at", "finished_at", "author"]
    actions = ["send_notices", "cancel_notices", "refresh_progress"]
    # Stopping a send is a button on its page; sending stays in the list's menu, so a draft's
    # unsaved edits are never sent as they were last saved.
    object_actions = {"cancel_notices": "Stop sending"}
    filter_horizontal = ["schools", "sections"]

    def still_moving(self, obj: BulkNotice) -> bool:
        return obj.state in (BulkNoticeState.PLANNING, BulkNoticeState.SENDING)

    def object_actions_for(self, obj: BulkNotice) -> list[str]:
        return ["cancel_notices"] if self.still_moving(obj) else []

    def save_model(self, request: HttpRequest, obj: BulkNotice, form: Any, change: bool) -> None:
        if not change:
            obj.author = request.user  # type: ignore[assignment]
        if obj.state != BulkNoticeState.DRAFT:
            messages.error(request, "Only drafts can be edited.")
            return
        super().save_model(request, obj, form, change)

    @admin.display(description="Audience")
    def audience(self, obj: BulkNotice) -> str:
        if not obj.pk:
            return "Save the draft to count the audience."
        counts = bulk.bulk_notice_audience_count(notice=obj)
        return (
            f"{counts['students']} students, {counts['guardians']} guardians who may be contacted"
        )

    @admin.display(description="Progress")
    def progress(self, obj: BulkNotice) -> str:
        if obj.state == BulkNoticeState.DRAFT:
            return "—"
        live = selectors.bulk_notice_progress(notice=obj)
        return (
            f"{live['sent']}/{live['planned']} sent, {live['failed']} failed, "
            f"{live['waiting']} waiting, {live['cancelled']} cancelled"
        )

    @admin.action(description="Send the selected draft notices")
    def send_notices(self, request: HttpRequest, queryset: QuerySet[BulkNotice]) -> None:
        if not request_scope(request).can_write_district_data:
            messages.error(request, "You may not send notices.")
            return
        for notice in queryset:
            try:
                bulk.bulk_notice_start(notice=notice)
                messages.success(request, f"Sending “{notice.title}”.")
            except ApplicationError as exc:
                messages.error(request, f"“{notice.title}”: {exc.message}")

    @admin.action(description="Cancel the selected notices")
    def cancel_notices(self, request: HttpRequest, queryset: QuerySet[BulkNotice]) -> None:
        for notice in queryset:
            stopped = bulk.bulk_notice_cancel(notice=notice, user=request.user)  # type: ignore[arg-type]
            messages.success(request, f"“{notice.title}” cancelled ({stopped} not sent).")

    @admin.action(description="Refresh progress counts")
    def refresh_progress(self, request: HttpRequest, queryset: QuerySet[BulkNotice]) -> None:
        for notice in queryset:
            bulk.bulk_notice_progress_refresh(notice_id=notice.pk)


attention_register(
    Attention(
        model=Delivery,
        singular="message not delivered in the last 24 hours",
        plural="messages not delivered in the last 24 hours",
        params={
            "status__in": ",".join(
                [DeliveryStatus.FAILED, DeliveryStatus.UNDELIVERED, DeliveryStatus.BOUNCED]
            )
        },
        recent=dt.timedelta(hours=24),
        date_field="updated_at",  # when it failed; the status index leads to it
    ),
    Attention(
        model=Delivery,
        singular="message whose fate is unknown (never resent blindly)",
        plural="messages whose fate is unknown (never resent blindly)",
        params={"status__exact": DeliveryStatus.UNKNOWN},
        date_field="updated_at",
        show_oldest=True,
    ),
)
