"""Parent portal URLs, included under /portal/ by config/urls.py."""

from __future__ import annotations

from django.urls import path

from portal import views

app_name = "portal"

urlpatterns = [
    path("", views.signin, name="signin"),
    path("code/", views.code, name="code"),
    path("s/<str:token>/", views.signin_link, name="signin_link"),
    path("l/<str:token>/", views.message_link, name="message_link"),
    path("signout/", views.signout, name="signout"),
    path("language/", views.language, name="language"),
    path("home/", views.home, name="home"),
    path("account/", views.account_switch, name="account_switch"),
    path("children/<int:student_id>/", views.child, name="child"),
    path("settings/", views.settings_view, name="settings"),
    path("contacts/", views.contacts, name="contacts"),
    path("contacts/<int:contact_point_id>/verify/", views.contact_verify, name="contact_verify"),
    path("contacts/<int:contact_point_id>/resend/", views.contact_resend, name="contact_resend"),
    path("contacts/<int:contact_point_id>/stop/", views.contact_stop, name="contact_stop"),
    path("contacts/<int:contact_point_id>/resume/", views.contact_resume, name="contact_resume"),
    path("history/", views.history, name="history"),
]
