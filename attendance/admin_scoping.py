"""Admin base class that scopes every list, form and permission to the user's memberships.

Roles replace Django's per-model permissions for the domain models: a district administrator
changes everything in their district, a school administrator changes their school's student
data, a read-only member only looks. A user may hold several memberships (administrator of one
district, read-only in another): what they see is the union, what they change is checked row by
row — an object's page, an admin action's rows and a saved form's result must lie where they
administer. Hard deletion of student data is not offered to anyone but superusers; records are
deactivated and spans closed instead (the services do it).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import get_fields_from_path, quote, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import ForeignKey, ManyToManyField, Model, QuerySet
from django.forms import ModelChoiceField, ModelMultipleChoiceField
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.urls import URLPattern, path, reverse
from simple_history.admin import SimpleHistoryAdmin

from attendance.selectors import AccessScope, user_scope


def request_scope(request: HttpRequest) -> AccessScope:
    cached = getattr(request, "_access_scope", None)
    if cached is None:
        cached = user_scope(request.user)
        request._access_scope = cached  # type: ignore[attr-defined]
    return cached


class ScopedRelatedFilter(admin.RelatedOnlyFieldListFilter):
    """A list filter on a relation that offers the related rows the user may see (their
    schools, districts, connections), as the related model's own scoped admin lists them: a
    small table. Django's ``RelatedOnlyFieldListFilter`` reads them instead as DISTINCT over the
    listed table (millions of attendance records); that is the fallback for a related model
    with no scoped admin."""

    def field_choices(self, field: Any, request: HttpRequest, model_admin: Any) -> Any:
        related_admin = model_admin.admin_site._registry.get(field.related_model)
        if not isinstance(related_admin, ScopedAdmin):
            return super().field_choices(field, request, model_admin)
        return field.get_choices(
            include_blank=False,
            limit_choices_to={"pk__in": related_admin.get_queryset(request).values("pk")},
            ordering=self.field_admin_ordering(field, request, model_admin),
        )


class ScopedAdmin(SimpleHistoryAdmin):
    """Set ``district_path`` (model → district id) and ``school_path`` (model → school id,
    ``None`` for district reference data that school-level users may read but not change).

    ``object_actions`` puts admin actions on an object's own page as buttons (a held run's
    decisions, a conflict's resolutions), so the page an e-mail links to is the page to act
    on; the buttons run the same action as the list's menu, on that one object. An object
    still changing by itself (a running sync, a bulk notice being sent; :meth:`still_moving`)
    has a page that reloads itself every :attr:`live_refresh_seconds` (a plain
    ``<meta http-equiv="refresh">``, no script), so its progress moves and ends on screen."""

    district_path: str = "district"
    school_path: str | None = None
    allow_delete: bool = False
    #: Admin action name → its button's label on an object's page, in the order shown.
    object_actions: dict[str, str] = {}
    #: The ``status`` values in which the buttons apply (an open conflict, a suggested match);
    #: ``None``: in any (or as :meth:`object_actions_for` decides).
    object_actions_while: Collection[str] | None = None
    live_refresh_seconds = 5
    change_form_template = "admin/object_page.html"
    #: The form of the add page when it asks for something else than an object's page edits
    #: (an invitation by e-mail, a number as typed); ``form`` stays the change page's.
    add_form: type[forms.ModelForm] | None = None

    def still_moving(self, obj: Any) -> bool:
        """Whether ``obj`` is still changing by itself (running, sending), so its page reloads
        itself. Only for pages with nothing to type into meanwhile: a reload drops unsaved
        input. Nothing moves by default."""
        return False

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None and self.add_form is not None:
            kwargs.setdefault("form", self.add_form)
        return super().get_form(request, obj, change, **kwargs)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        return request_scope(request).filter(
            queryset, district_path=self.district_path, school_path=self.school_path
        )

    def get_list_filter(self, request: HttpRequest) -> Sequence[Any]:
        # Django's plain filter on a relation (school, district, connection) lists every
        # tenant's rows by name.
        filters = []
        for item in super().get_list_filter(request):
            if isinstance(item, str) and get_fields_from_path(self.model, item)[-1].is_relation:
                item = (item, ScopedRelatedFilter)
            filters.append(item)
        return filters

    def has_module_permission(self, request: HttpRequest) -> bool:
        return (
            bool(request.user.is_active and request.user.is_staff)
            and not request_scope(request).is_empty
        )

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.has_module_permission(request)

    def _can_write(self, request: HttpRequest) -> bool:
        scope = request_scope(request)
        if not self.has_module_permission(request):
            return False
        if self.school_path is None:
            return scope.can_write_district_data
        return scope.can_write

    def writable_queryset(
        self, request: HttpRequest, queryset: QuerySet[Any] | None = None
    ) -> QuerySet[Any]:
        """The rows of ``queryset`` (by default every row this admin shows) the user may change."""
        queryset = self.get_queryset(request) if queryset is None else queryset
        scope = request_scope(request)
        if scope.writes_all_it_sees(school_path=self.school_path):
            return queryset
        return scope.writable().filter(
            queryset, district_path=self.district_path, school_path=self.school_path
        )

    def _is_writable(self, request: HttpRequest, obj: Model) -> bool:
        if request_scope(request).writes_all_it_sees(school_path=self.school_path):
            return True
        # Asked several times while one page renders: one query per object and request.
        cache: dict[tuple[str, Any], bool] = request.__dict__.setdefault("_writable_rows", {})
        key = (obj._meta.label, obj.pk)
        if key not in cache:
            cache[key] = self.writable_queryset(request).filter(pk=obj.pk).exists()
        return cache[key]

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        if not self._can_write(request):
            return False
        return obj is None or self._is_writable(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._can_write(request)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return bool(self.allow_delete and request.user.is_superuser)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        if change:
            self._keep_links_not_offered(form)
        super().save_related(request, form, formsets, change)
        # The form saved inside the admin's transaction: an object it put where the user may
        # only look (a student moved to a read-only district's school) is rolled back.
        instance = form.instance
        if instance.pk is not None and not self._is_writable(request, instance):
            raise PermissionDenied("You may not put this record where you cannot change it.")

    @staticmethod
    def _keep_links_not_offered(form: Any) -> None:
        """A many-to-many field offers only the rows the user may change
        (``formfield_for_manytomany``): the object's links to other rows (a teacher's school in
        another administrator's care) are kept, not dropped because the form could not show
        them."""
        for name, field in form.fields.items():
            if not isinstance(field, ModelMultipleChoiceField) or name not in form.cleaned_data:
                continue
            if field.queryset is None:
                continue
            manager = getattr(form.instance, name, None)
            if manager is None or not hasattr(manager, "exclude"):
                continue
            hidden = list(manager.exclude(pk__in=field.queryset.values("pk")))
            if hidden:
                form.cleaned_data[name] = [*form.cleaned_data[name], *hidden]

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # Every admin action of ours changes something: none is offered to a read-only user.
        return super().get_actions(request) if self._can_write(request) else {}

    def response_action(
        self, request: HttpRequest, queryset: QuerySet[Any]
    ) -> HttpResponseBase | None:
        """Run an admin action on the selected rows the user may change, and say how many
        selected rows were only theirs to look at."""
        writable = self.writable_queryset(request, queryset)
        if writable is not queryset:
            selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
            if request.POST.get("select_across") != "1":
                queryset = queryset.filter(pk__in=selected)
            left_out = queryset.exclude(pk__in=writable.values("pk")).count()
            if left_out:
                messages.warning(
                    request, f"{left_out} selected item(s) you may only view were left out."
                )
        return super().response_action(request, writable)

    def object_actions_for(self, obj: Any) -> Iterable[str]:
        """Which of :attr:`object_actions` apply to ``obj`` as it stands (a held run can be
        approved, a finished one cannot): all of them while its status is one of
        :attr:`object_actions_while`, unless a subclass says otherwise; permissions are
        checked apart from this."""
        if self.object_actions_while is not None and obj.status not in self.object_actions_while:
            return []
        return self.object_actions

    def _object_buttons(self, request: HttpRequest, obj: Any) -> dict[str, str]:
        if not self.object_actions or not self._is_writable(request, obj):
            return {}
        offered = self.get_actions(request)
        return {
            name: self.object_actions[name]
            for name in self.object_actions_for(obj)
            if name in offered
        }

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        do = path(
            "<path:object_id>/do/<str:action>/",
            self.admin_site.admin_view(self.object_action_view),
            name="{}_{}_do".format(*info),
        )
        # Before the admin's own patterns: its last one catches every "<id>/…" path.
        return [do, *super().get_urls()]

    def _object_url(self, obj: Any, view: str, *args: str) -> str:
        return reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_{view}",
            args=[quote(obj.pk), *args],
            current_app=self.admin_site.name,
        )

    def object_action_view(self, request: HttpRequest, object_id: str, action: str) -> HttpResponse:
        """A button on an object's page: run ``action`` on that object, back to its page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        back = HttpResponseRedirect(self._object_url(obj, "change"))
        if action not in self._object_buttons(request, obj):
            # A page left open while the object moved on (the run was approved meanwhile).
            messages.warning(request, f"That can no longer be done to {obj}.")
            return back
        run_action = self.get_actions(request)[action][0]
        response = run_action(self, request, self.writable_queryset(request).filter(pk=obj.pk))
        return response or back

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> HttpResponse:
        if obj is not None and obj.pk is not None:
            moving = self.still_moving(obj)
            context["live_refresh_seconds"] = self.live_refresh_seconds if moving else None
            context["object_buttons"] = [
                (label, self._object_url(obj, "do", name))
                for name, label in self._object_buttons(request, obj).items()
            ]
            if not context["adminform"].form.fields and not any(
                inline.has_add_permission
                or inline.has_change_permission
                or inline.has_delete_permission
                for inline in context["inline_admin_formsets"]
            ):
                # Every field read-only (a connection's sync page): no Save that saves nothing.
                context.update(show_save=False, show_save_and_continue=False)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _choices(self, db_field: Any, request: HttpRequest) -> QuerySet[Any] | None:
        """The rows a relation field may offer: only related rows the user may change (their
        schools, their students); district reference data (terms, courses), which school
        administrators use but do not change, as far as they may see it. With the related
        admin's ``list_select_related``, so labels such as a section's course cost no query
        per option. ``None`` for a model without a scoped admin."""
        related_admin = self.admin_site._registry.get(db_field.related_model)
        if not isinstance(related_admin, ScopedAdmin):
            return None
        queryset = (
            related_admin.get_queryset(request)
            if related_admin.school_path is None
            else related_admin.writable_queryset(request)
        )
        joins = related_admin.list_select_related
        return queryset.select_related(*joins) if isinstance(joins, list | tuple) else queryset

    def formfield_for_foreignkey(
        self, db_field: ForeignKey[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField[Any] | None:
        choices = self._choices(db_field, request)
        if choices is not None:
            kwargs["queryset"] = choices
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(
        self, db_field: ManyToManyField[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> ModelMultipleChoiceField[Any] | None:
        # A bulk notice's schools and sections, a staff member's schools: never another
        # district's rows by name.
        choices = self._choices(db_field, request)
        if choices is not None:
            kwargs["queryset"] = choices
        return super().formfield_for_manytomany(db_field, request, **kwargs)
