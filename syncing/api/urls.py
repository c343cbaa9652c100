"""``/api/v1/`` routes of the sync engine (included by ``config.api_urls``)."""

from __future__ import annotations

from django.urls import path

from syncing.api import conflicts, runs

urlpatterns = [
    path("sync-runs/", runs.RunListView.as_view(), name="api-sync-run-list"),
    path("sync-runs/<int:pk>/", runs.RunDetailView.as_view(), name="api-sync-run-detail"),
    path("conflicts/", conflicts.ConflictListView.as_view(), name="api-conflict-list"),
    path("conflicts/<int:pk>/", conflicts.ConflictDetailView.as_view(), name="api-conflict-detail"),
    path(
        "conflicts/<int:pk>/resolve/",
        conflicts.ConflictResolveView.as_view(),
        name="api-conflict-resolve",
    ),
]
