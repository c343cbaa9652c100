"""Parent portal views: parse the form, call a service, render. Every view is wrapped by
``portal_view`` (strict CSP, no caching); pages behind sign-in use ``guardian_required``."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from attendance.models import Guardian
from core.errors import ApplicationError
from notifications.models import ContactPoint
from portal import selectors, services
from portal.forms import (
    AddContactForm,
    ChildPreferencesForm,
    CodeForm,
    GuardianSettingsForm,
    SignInForm,
)
from portal.models import AuditAction
from portal.security import (
    CODE_BY_ADDRESS,
    CODE_BY_SESSION,
    SIGNIN_BY_ADDRESS,
    SIGNIN_BY_SESSION,
    contact_limit,
    limits_check,
    portal_view,
    throttled_page,
)
from portal.services import CodeResult
from portal.session import (
    CHALLENGE,
    GUARDIAN_ID,
    GUARDIAN_IDS,
    guardian_required,
    session_guardian,
    session_sign_in,
    session_sign_out,
)


def _signed_in(request: HttpRequest, *, guardian_ids: list[int], via: str) -> HttpResponse:
    session_sign_in(request, guardian_ids=guardian_ids, via=via)
    guardian = Guardian.objects.select_related("district").get(pk=guardian_ids[0])
    services.audit_record(guardian=guardian, action=AuditAction.SIGN_IN, via=via)
    response = redirect("portal:home")
    # Open the portal in the guardian's language unless they already picked one here.
    if settings.LANGUAGE_COOKIE_NAME not in request.COOKIES:
        language = services.language_for(guardian)
        response.set_cookie(
            settings.LANGUAGE_COOKIE_NAME,
            language,
            max_age=365 * 24 * 3600,
            samesite="Lax",
            secure=settings.SESSION_COOKIE_SECURE,
        )
    return response


@portal_view
@require_http_methods(["GET", "POST"])
def signin(request: HttpRequest) -> HttpResponse:
    if session_guardian(request) is not None:
        return redirect("portal:home")
    form = SignInForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        contact = form.cleaned_data["contact"]
        wait = limits_check(
            request, [SIGNIN_BY_SESSION, SIGNIN_BY_ADDRESS, contact_limit(contact.value)]
        )
        if wait is not None:
            return throttled_page(request, wait)
        challenge = services.signin_start(contact=contact)
        request.session[CHALLENGE] = {"id": str(challenge.public_id), "kind": contact.kind}
        return redirect("portal:code")
    return render(request, "portal/signin.html", {"form": form})


@portal_view
@require_http_methods(["GET", "POST"])
def code(request: HttpRequest) -> HttpResponse:
    pending = request.session.get(CHALLENGE)
    if not pending:
        return redirect("portal:signin")
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        wait = limits_check(request, [CODE_BY_SESSION, CODE_BY_ADDRESS])
        if wait is not None:
            return throttled_page(request, wait)
        result, guardian_ids, via = services.signin_code_check(
            challenge_public_id=pending["id"], code=form.cleaned_data["code"]
        )
        if result is CodeResult.OK and guardian_ids:
            return _signed_in(request, guardian_ids=guardian_ids, via=via)
        if result is CodeResult.EXPIRED:
            request.session.pop(CHALLENGE, None)
            messages.error(
                request, _("That code has expired or was tried too many times. Ask for a new one.")
            )
            return redirect("portal:signin")
        form.add_error("code", _("That code is not right. Check the message and try again."))
    return render(request, "portal/code.html", {"form": form, "kind": pending.get("kind", "")})


def _link_page(request: HttpRequest, use: Any) -> HttpResponse:
    # GET only shows a button: link scanners in mail systems fetch links, and must not spend
    # the single use. The POST (a person pressing the button) signs in.
    if request.method == "POST":
        result = use()
        if result is not None:
            guardian_ids, via = result
            if guardian_ids:
                return _signed_in(request, guardian_ids=guardian_ids, via=via)
        messages.error(
            request, _("That link has expired or was already used. Sign in with a code instead.")
        )
        return redirect("portal:signin")
    return render(request, "portal/link.html", {})


@portal_view
@require_http_methods(["GET", "POST"])
def signin_link(request: HttpRequest, token: str) -> HttpResponse:
    return _link_page(request, lambda: services.signin_link_use(token=token))


@portal_view
@require_http_methods(["GET", "POST"])
def message_link(request: HttpRequest, token: str) -> HttpResponse:
    def use() -> tuple[list[int], str] | None:
        guardian_id = services.portal_link_use(token=token)
        return None if guardian_id is None else ([guardian_id], "link:message")

    return _link_page(request, use)


@portal_view
@require_POST
def signout(request: HttpRequest) -> HttpResponse:
    guardian = session_guardian(request)
    if guardian is not None:
        services.audit_record(guardian=guardian, action=AuditAction.SIGN_OUT, via="")
    session_sign_out(request)
    messages.success(request, _("You are signed out."))
    return redirect("portal:signin")


@portal_view
@guardian_required
def home(request: HttpRequest) -> HttpResponse:
    guardian: Guardian = request.guardian  # type: ignore[attr-defined]
    accounts = []
    ids = request.session.get(GUARDIAN_IDS, [])
    if len(ids) > 1:
        accounts = list(
            Guardian.objects.filter(pk__in=ids).select_related("district").order_by("id")
        )
    return render(
        request,
        "portal/home.html",
        {
            "nav": "home",
            "guardian": guardian,
            "children": selectors.guardian_children(guardian=guardian),
            "accounts": accounts,
        },
    )


@portal_view
@guardian_required
@require_POST
def account_switch(request: HttpRequest) -> HttpResponse:
    try:
        wanted = int(request.POST.get("guardian", ""))
    except ValueError:
        wanted = 0
    if wanted in request.session.get(GUARDIAN_IDS, []):
        request.session[GUARDIAN_ID] = wanted
    return redirect("portal:home")


@portal_view
@guardian_required
@require_http_methods(["GET", "POST"])
def child(request: HttpRequest, student_id: int) -> HttpResponse:
    guardian: Guardian = request.guardian  # type: ignore[attr-defined]
    student = selectors.guardian_child(guardian=guardian, student_id=student_id)
    if student is None:
        raise Http404
    current = selectors.child_preferences(guardian=guardian, student=student)
    categories = [c.category for c in current.choices]
    form = ChildPreferencesForm(
        request.POST or None,
        categories=categories,
        initial_channels={c.category.code: c.channels for c in current.choices},
    )
    if request.method == "POST" and form.is_valid():
        services.child_channels_set(
            guardian=guardian,
            student=student,
            channels_by_category=form.channels_by_category(),
            via=request.portal_via,  # type: ignore[attr-defined]
        )
        messages.success(request, _("Saved. The next message follows these choices."))
        return redirect("portal:child", student_id=student.pk)
    return render(request, "portal/child.html", {"student": student, "form": form, "nav": "home"})


@portal_view
@guardian_required
@require_http_methods(["GET", "POST"])
def settings_view(request: HttpRequest) -> HttpResponse:
    guardian: Guardian = request.guardian  # type: ignore[attr-defined]
    pref = selectors.guardian_wide_preference(guardian=guardian)
    initial = {
        "delivery_mode": (pref.delivery_mode if pref else "") or "instant",
        "quiet_hours": bool(pref and pref.quiet_start is not None),
        "quiet_start": pref.quiet_start if pref else None,
        "quiet_end": pref.quiet_end if pref else None,
        "timezone": (pref.timezone if pref else "") or guardian.district.timezone,
        "language": services.language_for(guardian),
    }
    form = GuardianSettingsForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        services.guardian_settings_set(
            guardian=guardian,
            delivery_mode=data["delivery_mode"],
            quiet_start=data["quiet_start"],
            quiet_end=data["quiet_end"],
            timezone_name=data["timezone"],
            language=data["language"],
            via=request.portal_via,  # type: ignore[attr-defined]
        )
        messages.success(request, _("Saved. The next message follows these choices."))
        return redirect("portal:settings")
    return render(request, "portal/settings.html", {"form": form, "nav": "settings"})


@portal_view
@guardian_required
@require_http_methods(["GET", "POST"])
def contacts(request: HttpRequest) -> HttpResponse:
    guardian: Guardian = request.guardian  # type: ignore[attr-defined]
    form = AddContactForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        wait = limits_check(request, [SIGNIN_BY_SESSION])
        if wait is not None:
            return throttled_page(request, wait)
        try:
            point = services.portal_contact_add(
                guardian=guardian,
                raw=form.cleaned_data["contact"],
                via=request.portal_via,  # type: ignore[attr-defined]
            )
        except ApplicationError as exc:
            form.add_error("contact", str(exc))
        else:
            if point.verified or point.opted_out:
                return redirect("portal:contacts")
            return redirect("portal:contact_verify", contact_point_id=point.pk)
    return render(
        request,
        "portal/contacts.html",
        {
            "nav": "contacts",
            "form": form,
            "points": selectors.guardian_contact_points(guardian=guardian),
            "sms_sender": settings.PORTAL_SMS_SENDER_DISPLAY,
            "resumable": services.PORTAL_RESUMABLE,
        },
    )


def _own_point(guardian: Guardian, contact_point_id: int) -> ContactPoint:
    point = selectors.guardian_contact_points(guardian=guardian).filter(pk=contact_point_id).first()
    if point is None:
        raise Http404
    return point


@portal_view
@guardian_required
@require_http_methods(["GET", "POST"])
def contact_verify(request: HttpRequest, contact_point_id: int) -> HttpResponse:
    guardian: Guardian = request.guardian  # type: ignore[attr-defined]
    point = _own_point(guardian, contact_point_id)
    if point.verified:
        return redirect("portal:contacts")
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        wait = limits_check(request, [CODE_BY_SESSION])
        if wait is not None:
            return throttled_page(request, wait)
        result = services.portal_contact_verify(
            guardian=guardian,
            contact_point_id=point.pk,
            code=form.cleaned_data["code"],
            via=request.portal_via,  # type: ignore[attr-defined]
        )
        if result is CodeResult.OK:
            messages.success(request, _("Confirmed. This contact will now receive messages."))
            return redirect("portal:contacts")
        if result is CodeResult.EXPIRED:
            form.add_error(
                "code", _("That code has expired or was tried too many times. Send a new code.")
            )
        else:
            form.add_error("code", _("That code is not right. Check the message and try again."))
    return render(
        request, "portal/contact_verify.html", {"form": form, "point": point, "nav": "contacts"}
    )


@portal_view
@guardian_required
@require_POST
def contact_resend(request: HttpRequest, contact_point_id: int) -> HttpResponse:
    guardian: Guardian = request.guardian  # type: ignore[attr-defined]
    point = _own_point(guardian, contact_point_id)
    wait = limits_check(request, [SIGNIN_BY_SESSION, contact_limit(point.value)])
    if wait is not None:
        return throttled_page(request, wait)
    if not point.verified and not point.opted_out:
        services.contact_verification_send(contact_point=point)
        messages.success(request, _("We sent a new code."))
    return redirect("portal:contact_verify", contact_point_id=point.pk)


@portal_view
@guardian_required
@require_POST
def contact_stop(request: HttpRequest, contact_point_id: int) -> HttpResponse:
    guardian: Guardian = request.guardian  # type: ignore[attr-defined]
    point = _own_point(guardian, contact_point_id)
    if not point.opted_out:
        services.portal_contact_stop(
            guardian=guardian,
            contact_point=point,
            via=request.portal_via,  # type: ignore[attr-defined]
        )
        messages.success(request, _("Stopped. We will send nothing more there."))
    return redirect("portal:contacts")


@portal_view
@guardian_required
@require_POST
def contact_resume(request: HttpRequest, contact_point_id: int) -> HttpResponse:
    guardian: Guardian = request.guardian  # type: ignore[attr-defined]
    point = _own_point(guardian, contact_point_id)
    if point.opted_out:
        try:
            services.portal_contact_resume(
                guardian=guardian,
                contact_point=point,
                via=request.portal_via,  # type: ignore[attr-defined]
            )
        except ApplicationError as exc:
            messages.error(
                request,
                _("This number replied STOP: text START to get our texts again.")
                if exc.code == "stop_needs_start"
                else _(
                    "Messages to this address bounced or were reported. Contact your school "
                    "office to turn them back on."
                ),
            )
        else:
            messages.success(request, _("Messages will go there again."))
    return redirect("portal:contacts")


@portal_view
@guardian_required
def history(request: HttpRequest) -> HttpResponse:
    guardian: Guardian = request.guardian  # type: ignore[attr-defined]
    notifications = list(selectors.guardian_history(guardian=guardian)[:200])
    return render(
        request,
        "portal/history.html",
        {"notifications": notifications, "days": selectors.HISTORY_DAYS, "nav": "history"},
    )


@portal_view
@require_POST
def language(request: HttpRequest) -> HttpResponse:
    """Switch the portal's language (a form, no JavaScript); returns to the same page."""
    code = request.POST.get("language", "")
    nxt = request.POST.get("next", "")
    from django.utils.http import url_has_allowed_host_and_scheme

    if not url_has_allowed_host_and_scheme(
        nxt, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        nxt = "/portal/"
    response = redirect(nxt)
    if code in dict(settings.LANGUAGES):
        translation.activate(code)
        response.set_cookie(
            settings.LANGUAGE_COOKIE_NAME,
            code,
            max_age=365 * 24 * 3600,
            samesite="Lax",
            secure=settings.SESSION_COOKIE_SECURE,
        )
    return response
