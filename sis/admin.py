"""Admin for SIS connections. Secrets are write-only: the form has empty password inputs that
replace a secret only when filled in, and nothing shows a stored value."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from attendance.admin_scoping import ScopedAdmin
from core.errors import ApplicationError
from sis import services
from sis.connectors.registry import connector_keys, connectors_described
from sis.models import CSVBundle, SISConnection


class SISConnectionForm(forms.ModelForm):  # type: ignore[type-arg,unused-ignore]
    provider = forms.ChoiceField(choices=[])
    client_id = forms.CharField(
        label="Client ID",
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave empty to keep the stored value.",
    )
    client_secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Write-only. Leave empty to keep the stored secret.",
    )

    class Meta:
        model = SISConnection
        labels = {"base_url": "Base URL", "token_url": "Token URL"}
        widgets = {
            "options": forms.Textarea(attrs={"rows": 4, "cols": 60}),
            "capabilities": forms.Textarea(attrs={"rows": 2, "cols": 60}),
        }
        help_texts = {
            "token_url": "As the SIS gives it (Infinite Campus includes ?appName=…). Empty: the "
            "provider's usual path under the base URL.",
            "rate_per_second": "Calls per second to this SIS, shared by every worker. Empty: "
            "no limit of ours (the SIS's 429 answers still slow us down).",
            "max_concurrency": "Calls at once to this SIS, across workers. Empty: no cap "
            "(OneRoster for Infinite Campus: one at a time 06:30–17:00, three otherwise).",
        }
        fields = [
            "district",
            "name",
            "provider",
            "vendor",
            "base_url",
            "token_url",
            "options",
            "rate_per_second",
            "max_concurrency",
            "enabled",
            "capabilities",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Built-ins and installed plugins, read when the form is built.
        self.fields["provider"] = forms.ChoiceField(choices=[(k, k) for k in connector_keys()])
        described = connectors_described()
        self.fields["options"].help_text = format_html(
            "A JSON object; only these names, checked when saved. {}",
            format_html_join(
                "",
                "<br><strong>{}</strong>: {}",
                ((key, options) for key, options, _ in described),
            ),
        )
        self.fields["capabilities"].help_text = format_html(
            "Empty: everything the connector can do. Otherwise a JSON list of the ones to use, "
            'e.g. ["read_roster", "read_guardians", "delta"] to write nothing back. {}',
            format_html_join(
                "", "<br><strong>{}</strong>: {}", ((key, c) for key, _, c in described)
            ),
        )
        credential = getattr(self.instance, "credential", None) if self.instance.pk else None
        if credential is None:
            self.fields["client_secret"].help_text = "Write-only."
        else:
            stored = {
                "client_id": bool(credential.client_id_encrypted),
                "client_secret": bool(credential.client_secret_encrypted),
            }
            for name, is_stored in stored.items():
                self.fields[name].help_text = (
                    "Write-only. One is stored: leave empty to keep it."
                    if is_stored
                    else "Write-only. None is stored."
                )

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        names = [n for n in SISConnectionForm.Meta.fields if n != "district" and n in cleaned]
        candidate = SISConnection(pk=self.instance.pk, **{n: cleaned[n] for n in names})
        try:
            services.sis_connection_validate(
                connection=candidate,
                client_id=cleaned.get("client_id") or None,
                client_secret=cleaned.get("client_secret") or None,
            )
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from None
        return cleaned


@admin.register(SISConnection)
class SISConnectionAdmin(ScopedAdmin):
    district_path = "district"
    school_path = None
    form = SISConnectionForm
    list_display = ["name", "district", "provider", "vendor", "enabled", "updated_at"]
    list_filter = ["provider", "vendor", "enabled"]
    search_fields = ["name", "district__name"]
    actions = ["test_connection"]
    object_actions = {"test_connection": "Test the connection"}
    history_list_display = ["provider", "enabled"]

    def save_model(self, request: HttpRequest, obj: SISConnection, form: Any, change: bool) -> None:
        data = form.cleaned_data
        fields = {
            name: data[name]
            for name in SISConnectionForm.Meta.fields
            if name not in ("district", "name") and name in data
        }
        fields["name"] = data["name"]
        try:
            if change:
                services.sis_connection_update(
                    connection=obj,
                    client_id=data.get("client_id") or None,
                    client_secret=data.get("client_secret") or None,
                    **fields,
                )
            else:
                fields.pop("name")
                created = services.sis_connection_create(
                    district=data["district"],
                    name=data["name"],
                    client_id=data.get("client_id", ""),
                    client_secret=data.get("client_secret", ""),
                    **{k: v for k, v in fields.items() if k != "provider"},
                    provider=data["provider"],
                )
                obj.pk = created.pk
        except ApplicationError as exc:
            self.message_user(request, exc.message, level=messages.ERROR)

    @admin.action(description="Test connection (authenticate and count records)")
    def test_connection(self, request: HttpRequest, queryset: QuerySet[SISConnection]) -> None:
        for connection in queryset:
            result = services.sis_connection_test(connection=connection)
            if result.ok:
                counts = ", ".join(
                    f"{k}: {'?' if v is None else v}" for k, v in result.counts.items()
                )
                self.message_user(request, f"{connection.name}: OK — {counts}", messages.SUCCESS)
            else:
                self.message_user(
                    request,
                    f"{connection.name}: {result.error_kind} — {result.error}",
                    messages.ERROR,
                )


@admin.register(CSVBundle)
class CSVBundleAdmin(ScopedAdmin):
    district_path = "connection__district"
    school_path = None
    list_display = ["connection", "file", "uploaded_at"]


__all__ = ["SISConnectionAdmin"]
