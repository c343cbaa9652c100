"""Guardian notifications: contact points, preferences, templates, notifications, deliveries."""

from notifications.models.bulk import BulkNotice, BulkNoticeState
from notifications.models.contacts import (
    Channel,
    ConsentEvent,
    ConsentEventKind,
    ContactPoint,
    ContactSource,
    OptOutSource,
)
from notifications.models.messages import (
    HANDED_OVER_STATUSES,
    HANDED_OVER_STATUSES_LIST,
    STATUS_RANK,
    TERMINAL_STATUSES,
    DeferReason,
    Delivery,
    DeliveryEvent,
    DeliveryStatus,
    Notification,
    NotificationStatus,
)
from notifications.models.preferences import Category, DeliveryMode, Preference
from notifications.models.templates import Template

__all__ = [
    "HANDED_OVER_STATUSES",
    "HANDED_OVER_STATUSES_LIST",
    "STATUS_RANK",
    "TERMINAL_STATUSES",
    "BulkNotice",
    "BulkNoticeState",
    "Category",
    "Channel",
    "ConsentEvent",
    "ConsentEventKind",
    "ContactPoint",
    "ContactSource",
    "DeferReason",
    "Delivery",
    "DeliveryEvent",
    "DeliveryMode",
    "DeliveryStatus",
    "Notification",
    "NotificationStatus",
    "OptOutSource",
    "Preference",
    "Template",
]
