"""``/api/v1/`` routes of the notifications app (included by ``config.api_urls``)."""

from __future__ import annotations

from django.urls import path

from notifications.api import bulk, messages

urlpatterns = [
    path("notifications/", messages.NotificationListView.as_view(), name="api-notification-list"),
    path(
        "notifications/<int:pk>/",
        messages.NotificationDetailView.as_view(),
        name="api-notification-detail",
    ),
    path("deliveries/", messages.DeliveryListView.as_view(), name="api-delivery-list"),
    path("deliveries/<int:pk>/", messages.DeliveryDetailView.as_view(), name="api-delivery-detail"),
    path("bulk-notices/", bulk.BulkNoticeListView.as_view(), name="api-bulk-notice-list"),
    path(
        "bulk-notices/<int:pk>/",
        bulk.BulkNoticeDetailView.as_view(),
        name="api-bulk-notice-detail",
    ),
    path(
        "bulk-notices/<int:pk>/cancel/",
        bulk.BulkNoticeCancelView.as_view(),
        name="api-bulk-notice-cancel",
    ),
]
