"""Admin for the attendance domain, scoped by membership (see ``attendance.admin_scoping``).

``roster``: districts to guardians and their links; ``records``: enrollment spans, attendance
codes and records, participation grades; ``access``: staff memberships. Forms that change
something a service owns check with its ``*_check`` function and save through it.
"""

from attendance.admin import access, records, roster

__all__ = ["access", "records", "roster"]
