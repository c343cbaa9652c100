"""Admin for notifications, scoped by membership (attendance.admin_scoping.ScopedAdmin).

Admin actions and views are thin: they call services and selectors. ``messaging``: categories,
templates, notifications, deliveries, bulk notices; ``contacts``: contact points, consent and
preferences.
"""

from notifications.admin import contacts, messaging

__all__ = ["contacts", "messaging"]
