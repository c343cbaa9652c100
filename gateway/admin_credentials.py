"""Admin for inbound credentials (API keys, OAuth clients) and the FERPA API access log.

Secrets are shown once, on a page rendered straight after creation or rotation (never through
the message framework, which would store them in the session)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from attendance.admin_scoping import ScopedAdmin
from attendance.models import ApiAccessLog
from core.errors import ApplicationError
from gateway.inbound.api_keys import api_key_create, api_key_revoke, api_key_rotate
from gateway.inbound.oauth import oauth_client_create
from gateway.models import ApiKey, OAuthClient

_SCOPE_CHOICES = [(name, f"{name} — {text}") for name, text in settings.API_SCOPES.items()]


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=_SCOPE_CHOICES, widget=forms.CheckboxSelectMultiple, required=False
    )

    class Meta:
        model = ApiKey
        fields = ["district", "name", "environment", "scopes", "expires_at"]


class RotateForm(forms.Form):
    grace_hours = forms.FloatField(
        min_value=0, max_value=24 * 30, initial=24, help_text="How long the old key keeps working."
    )


def _secret_page(
    request: HttpRequest, title: str, secrets: list[dict[str, Any]], back_url: str
) -> HttpResponse:
    response = TemplateResponse(
        request,
        "gateway/admin/secret_once.html",
        {
            "title": title,
            "secrets": secrets,
            "back_url": back_url,
            **admin.site.each_context(request),
        },
    )
    response["Cache-Control"] = "no-store"
    return response


@admin.register(ApiKey)
class ApiKeyAdmin(ScopedAdmin):
    form = ApiKeyForm
    list_display = [
        "name",
        "prefix",
        "district",
        "scope_list",
        "expires_at",
        "revoked_at",
        "last_used_at",
    ]
    list_filter = ["district", "environment"]
    search_fields = ["name", "prefix"]
    list_select_related = ["district"]
    readonly_fields = ["prefix", "created_at", "created_by", "last_used_at", "revoked_at"]
    actions = ["rotate_keys", "revoke_keys"]

    @admin.display(description="Scopes")
    def scope_list(self, obj: ApiKey) -> str:
        return ", ".join(obj.scopes)

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        if obj is not None:  # a key's district, environment and scopes are fixed once issued
            return [*self.readonly_fields, "district", "environment", "scopes"]
        return self.readonly_fields

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        issued = api_key_create(
            district=form.cleaned_data["district"],
            name=form.cleaned_data["name"],
            scopes=list(form.cleaned_data["scopes"]),
            expires_at=form.cleaned_data.get("expires_at"),
            environment=form.cleaned_data["environment"],
            created_by=request.user if request.user.is_authenticated else None,
        )
        # The admin logs and redirects with this object: make it the saved row.
        obj.__dict__.update(issued.api_key.__dict__)
        request._issued_keys = [issued]  # type: ignore[attr-defined]

    def response_add(
        self, request: HttpRequest, obj: ApiKey, post_url_continue: Any = None
    ) -> HttpResponse:
        issued = getattr(request, "_issued_keys", [])
        return _secret_page(
            request,
            "API key created",
            [{"label": i.api_key.name, "values": [("Key", i.plaintext)]} for i in issued],
            reverse("admin:gateway_apikey_changelist"),
        )

    @admin.action(description="Rotate the selected keys (choose a grace period)")
    def rotate_keys(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> HttpResponse | None:
        form = RotateForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            grace = dt.timedelta(hours=form.cleaned_data["grace_hours"])
            issued = []
            for key in queryset:
                try:
                    issued.append(api_key_rotate(api_key=key, grace=grace, created_by=request.user))  # type: ignore[arg-type]
                except ApplicationError as exc:
                    self.message_user(request, f"{key}: {exc.message}", messages.ERROR)
            return _secret_page(
                request,
                "API keys rotated",
                [{"label": i.api_key.name, "values": [("New key", i.plaintext)]} for i in issued],
                reverse("admin:gateway_apikey_changelist"),
            )
        return TemplateResponse(
            request,
            "gateway/admin/rotate_form.html",
            {"form": form, "keys": list(queryset), **self.admin_site.each_context(request)},
        )

    @admin.action(description="Revoke the selected keys now")
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for key in queryset:
            api_key_revoke(api_key=key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).")


class OAuthClientForm(forms.ModelForm):
    name = forms.CharField(max_length=255, help_text="Shown to administrators.")
    allowed_scopes = forms.MultipleChoiceField(
        choices=_SCOPE_CHOICES, widget=forms.CheckboxSelectMultiple, required=False
    )

    class Meta:
        model = OAuthClient
        fields = ["district", "allowed_scopes"]


@admin.register(OAuthClient)
class OAuthClientAdmin(ScopedAdmin):
    form = OAuthClientForm
    list_display = ["application", "district", "created_at"]
    list_filter = ["district"]
    list_select_related = ["application", "district"]

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is not None:
            form.base_fields["name"].required = False
        return form

    def save_model(self, request: HttpRequest, obj: OAuthClient, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        link, secret = oauth_client_create(
            district=form.cleaned_data["district"],
            name=form.cleaned_data["name"],
            scopes=list(form.cleaned_data["allowed_scopes"]),
        )
        obj.__dict__.update(link.__dict__)
        obj.application = link.application
        request._oauth_secret = (link, secret)  # type: ignore[attr-defined]

    def response_add(
        self, request: HttpRequest, obj: OAuthClient, post_url_continue: Any = None
    ) -> HttpResponse:
        link, secret = request._oauth_secret  # type: ignore[attr-defined]
        return _secret_page(
            request,
            "OAuth client created",
            [
                {
                    "label": link.application.name,
                    "values": [
                        ("client_id", link.application.client_id),
                        ("client_secret", secret),
                    ],
                }
            ],
            reverse("admin:gateway_oauthclient_changelist"),
        )


@admin.register(ApiAccessLog)
class ApiAccessLogAdmin(ScopedAdmin):
    """The FERPA read log: who was shown which students, through which endpoint, when."""

    list_display = [
        "created_at",
        "district",
        "client_kind",
        "client_id",
        "client_label",
        "endpoint",
        "student_count",
    ]
    list_filter = ["district", "client_kind", "endpoint"]
    search_fields = ["client_id", "client_label", "endpoint"]
    date_hierarchy = "created_at"
    list_select_related = ["district"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
