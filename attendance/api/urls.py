"""``/api/v1/`` routes of the attendance domain (included by ``config.api_urls``)."""

from __future__ import annotations

from django.urls import path

from attendance.api import records, roster

urlpatterns = [
    path("districts/", roster.DistrictListView.as_view(), name="api-district-list"),
    path("districts/<int:pk>/", roster.DistrictDetailView.as_view(), name="api-district-detail"),
    path("schools/", roster.SchoolListView.as_view(), name="api-school-list"),
    path("schools/<int:pk>/", roster.SchoolDetailView.as_view(), name="api-school-detail"),
    path("terms/", roster.TermListView.as_view(), name="api-term-list"),
    path("terms/<int:pk>/", roster.TermDetailView.as_view(), name="api-term-detail"),
    path("sections/", roster.SectionListView.as_view(), name="api-section-list"),
    path("sections/<int:pk>/", roster.SectionDetailView.as_view(), name="api-section-detail"),
    path("students/", roster.StudentListView.as_view(), name="api-student-list"),
    path("students/<int:pk>/", roster.StudentDetailView.as_view(), name="api-student-detail"),
    path("guardians/", roster.GuardianListView.as_view(), name="api-guardian-list"),
    path("guardians/<int:pk>/", roster.GuardianDetailView.as_view(), name="api-guardian-detail"),
    path("enrollments/", roster.EnrollmentListView.as_view(), name="api-enrollment-list"),
    path(
        "enrollments/<int:pk>/",
        roster.EnrollmentDetailView.as_view(),
        name="api-enrollment-detail",
    ),
    path("attendance/", records.AttendanceListView.as_view(), name="api-attendance-list"),
    path("attendance/bulk/", records.AttendanceBulkView.as_view(), name="api-attendance-bulk"),
    path(
        "attendance/<int:pk>/",
        records.AttendanceDetailView.as_view(),
        name="api-attendance-detail",
    ),
    path(
        "participation-grades/",
        records.ParticipationGradeListView.as_view(),
        name="api-participation-grade-list",
    ),
    path(
        "participation-grades/<int:pk>/",
        records.ParticipationGradeDetailView.as_view(),
        name="api-participation-grade-detail",
    ),
]
