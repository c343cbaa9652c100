"""``/api/v1/`` routes of the SIS app (included by ``config.api_urls``)."""

from __future__ import annotations

from django.urls import path

from sis.api import views

urlpatterns = [
    path("sis-connections/", views.ConnectionListView.as_view(), name="api-sis-connection-list"),
    path(
        "sis-connections/<int:pk>/",
        views.ConnectionDetailView.as_view(),
        name="api-sis-connection-detail",
    ),
]
