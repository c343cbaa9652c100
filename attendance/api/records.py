"""Attendance endpoints (``attendance:read`` / ``attendance:write``) and participation grades
(``attendance:read``). Writes go through the attendance services; views only parse and call."""

from __future__ import annotations

from typing import Any, ClassVar

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from attendance.api import filters
from attendance.models import (
    AttendanceCode,
    AttendanceRecord,
    AttendanceSource,
    AttendanceStatus,
    ParticipationGrade,
    Section,
    Student,
)
from attendance.services import attendance_record
from attendance.services_bulk import MAX_BULK_RECORDS, AttendanceItem, attendance_record_bulk
from core.errors import ApplicationError
from gateway.inbound.views import IntegratorAPIView, IntegratorDetailView, IntegratorListView

READ = {"GET": "attendance:read"}
READ_WRITE = {"GET": "attendance:read", "POST": "attendance:write"}


class AttendanceOutput(serializers.ModelSerializer[AttendanceRecord]):
    student_local_id = serializers.CharField(source="student.local_id", read_only=True)
    code = serializers.CharField(source="code.code", read_only=True, allow_null=True, default=None)

    class Meta:
        model = AttendanceRecord
        fields = [
            "id",
            "student",
            "student_local_id",
            "school",
            "section",
            "date",
            "period",
            "status",
            "code",
            "source",
            "comment",
            "created_at",
            "updated_at",
        ]


class AttendanceInput(serializers.Serializer[dict[str, Any]]):
    """One record: the student by ``student`` (our id) or ``student_local_id`` (the SIS
    number); the status by ``status`` or by one of the district's SIS ``code``s."""

    student = serializers.IntegerField(required=False, min_value=1)
    student_local_id = serializers.CharField(required=False, max_length=64)
    date = serializers.DateField()
    status = serializers.ChoiceField(choices=AttendanceStatus.choices, required=False)
    code = serializers.CharField(required=False, max_length=16)
    section = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    period = serializers.CharField(required=False, allow_blank=True, max_length=16, default="")
    comment = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "student" not in attrs and "student_local_id" not in attrs:
            raise serializers.ValidationError("Give student or student_local_id.")
        if "status" not in attrs and "code" not in attrs:
            raise serializers.ValidationError("Give status or code.")
        return attrs


def _record_student(record: AttendanceRecord) -> list[int]:
    return [record.student_id]


_EXAMPLE_RECORD = {
    "student_local_id": "100042",
    "date": "2026-09-01",
    "status": "absent",
    "comment": "Called in sick",
}


class AttendanceListView(IntegratorListView):
    """List attendance (filter by ``school``, ``section``, ``student``, ``student_local_id``,
    ``date``, ``date_from``/``date_to``, ``status``) or record one."""

    required_scopes = READ_WRITE
    district_path = "student__district_id"
    OutputSerializer = AttendanceOutput
    InputSerializer = AttendanceInput
    serializer_class = OutputSerializer
    filterset_class = filters.AttendanceFilter
    ordering_fields: ClassVar[list[str]] = ["id", "updated_at", "date"]
    student_ids_of = staticmethod(_record_student)

    def base_queryset(self) -> QuerySet[AttendanceRecord]:
        return AttendanceRecord.objects.select_related("student", "code").only(
            *[f for f in AttendanceOutput.Meta.fields if f not in ("student_local_id", "code")],
            "student__local_id",
            "code__code",
        )

    @extend_schema(
        request=AttendanceInput,
        responses={200: AttendanceOutput, 201: AttendanceOutput},
        examples=[
            OpenApiExample("By SIS student number", value=_EXAMPLE_RECORD, request_only=True)
        ],
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Record attendance for one student and date (idempotent: the same values again
        change nothing and answer 200; a new record answers 201)."""
        given = self.InputSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        district_id = self.principal.district_id
        students = Student.objects.filter(district_id=district_id)
        if "student" in data:
            students = students.filter(pk=data["student"])
        if data.get("student_local_id"):
            students = students.filter(local_id=data["student_local_id"])
        student = students.first()
        if student is None:
            raise ApplicationError("Unknown student.", code="unknown_student", status=422)
        section = None
        if data.get("section") is not None:
            section = (
                Section.objects.select_related("school")
                .filter(pk=data["section"], school__district_id=district_id)
                .first()
            )
            if section is None:
                raise ApplicationError("Unknown section.", code="unknown_section", status=422)
        code = None
        if data.get("code"):
            code = AttendanceCode.objects.filter(
                district_id=district_id, code=data["code"], active=True
            ).first()
            if code is None:
                raise ApplicationError("Unknown attendance code.", code="unknown_code", status=422)
        existed = AttendanceRecord.objects.filter(
            student=student, date=data["date"], section=section
        ).exists()
        record, written = attendance_record(
            student=student,
            date=data["date"],
            status=data.get("status"),
            source=AttendanceSource.API,
            section=section,
            period=data["period"],
            code=code,
            comment=data["comment"],
        )
        answer = status.HTTP_201_CREATED if written and not existed else status.HTTP_200_OK
        return Response(self.OutputSerializer(record).data, status=answer)


class AttendanceDetailView(IntegratorDetailView):
    required_scopes = READ
    district_path = "student__district_id"
    OutputSerializer = AttendanceOutput
    serializer_class = OutputSerializer
    student_ids_of = staticmethod(_record_student)

    def base_queryset(self) -> QuerySet[AttendanceRecord]:
        return AttendanceRecord.objects.select_related("student", "code")


class BulkInput(serializers.Serializer[dict[str, Any]]):
    records = serializers.ListField(
        child=AttendanceInput(), allow_empty=False, max_length=MAX_BULK_RECORDS
    )


BulkOutput = inline_serializer(
    "AttendanceBulkResult",
    fields={
        "created": serializers.IntegerField(),
        "updated": serializers.IntegerField(),
        "unchanged": serializers.IntegerField(),
        "results": inline_serializer(
            "AttendanceBulkItem",
            fields={
                "index": serializers.IntegerField(),
                "id": serializers.IntegerField(),
                "student": serializers.IntegerField(),
                "outcome": serializers.ChoiceField(choices=["created", "updated", "unchanged"]),
            },
            many=True,
        ),
    },
)


class AttendanceBulkView(IntegratorAPIView):
    """Record up to 1,000 attendance records in one request, all or nothing: if any record is
    invalid nothing is written and ``error.details.records`` names each bad one by index."""

    required_scopes = {"POST": "attendance:write"}
    InputSerializer = BulkInput
    OutputSerializer = BulkOutput

    @extend_schema(
        request=BulkInput,
        responses={200: BulkOutput},
        examples=[
            OpenApiExample(
                "Two records", value={"records": [_EXAMPLE_RECORD, {**_EXAMPLE_RECORD,
                "student_local_id": "100043", "status": "tardy"}]}, request_only=True,
            )
        ],
    )  # fmt: skip
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        given = self.InputSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        items = [
            AttendanceItem(
                date=row["date"],
                student_id=row.get("student"),
                student_local_id=row.get("student_local_id"),
                status=row.get("status"),
                code=row.get("code"),
                section_id=row.get("section"),
                period=row["period"],
                comment=row["comment"],
            )
            for row in given.validated_data["records"]
        ]
        result = attendance_record_bulk(district_id=self.principal.district_id, items=items)
        return Response(
            {
                "created": result.count("created"),
                "updated": result.count("updated"),
                "unchanged": result.count("unchanged"),
                "results": [
                    {
                        "index": r.index,
                        "id": r.record_id,
                        "student": r.student_id,
                        "outcome": r.outcome,
                    }
                    for r in result.results
                ],
            }
        )


# --- Participation grades ----------------------------------------------------------------------


class ParticipationGradeOutput(serializers.ModelSerializer[ParticipationGrade]):
    class Meta:
        model = ParticipationGrade
        fields = [
            "id",
            "student",
            "section",
            "grading_period",
            "value",
            "rule",
            "computed_at",
            "updated_at",
        ]


def _grade_student(grade: ParticipationGrade) -> list[int]:
    return [grade.student_id]


class ParticipationGradeListView(IntegratorListView):
    required_scopes = READ
    district_path = "student__district_id"
    OutputSerializer = ParticipationGradeOutput
    serializer_class = OutputSerializer
    filterset_class = filters.ParticipationGradeFilter
    student_ids_of = staticmethod(_grade_student)

    def base_queryset(self) -> QuerySet[ParticipationGrade]:
        return ParticipationGrade.objects.all()


class ParticipationGradeDetailView(IntegratorDetailView):
    required_scopes = READ
    district_path = "student__district_id"
    OutputSerializer = ParticipationGradeOutput
    serializer_class = OutputSerializer
    student_ids_of = staticmethod(_grade_student)

    def base_queryset(self) -> QuerySet[ParticipationGrade]:
        return ParticipationGrade.objects.all()
