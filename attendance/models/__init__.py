"""The attendance domain. District is the tenant: every row holding student data reaches one."""

from attendance.models.access import Membership, MembershipRole
from attendance.models.access_log import ApiAccessLog
from attendance.models.attendance import (
    AttendanceCode,
    AttendanceRecord,
    AttendanceSource,
    AttendanceStatus,
    ParticipationGrade,
)
from attendance.models.enrollment import (
    Enrollment,
    ExitReason,
    SectionEnrollment,
    SectionRole,
)
from attendance.models.organization import (
    Course,
    District,
    School,
    SchoolLevel,
    Section,
    Term,
    TermKind,
)
from attendance.models.people import (
    GradeLevel,
    Guardian,
    Relationship,
    Staff,
    StaffRole,
    Student,
    StudentGuardian,
)

__all__ = [
    "ApiAccessLog",
    "AttendanceCode",
    "AttendanceRecord",
    "AttendanceSource",
    "AttendanceStatus",
    "Course",
    "District",
    "Enrollment",
    "ExitReason",
    "GradeLevel",
    "Guardian",
    "Membership",
    "MembershipRole",
    "ParticipationGrade",
    "Relationship",
    "School",
    "SchoolLevel",
    "Section",
    "SectionEnrollment",
    "SectionRole",
    "Staff",
    "StaffRole",
    "Student",
    "StudentGuardian",
    "Term",
    "TermKind",
]
