from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection

from attendance import selectors, services
from attendance.models import (
    AttendanceRecord,
    AttendanceStatus,
    Enrollment,
    ExitReason,
    SectionEnrollment,
    Student,
)
from core.errors import ApplicationError, ConflictError
from tests.factories import (
    AttendanceCodeFactory,
    DistrictFactory,
    SchoolFactory,
    SectionFactory,
    StudentFactory,
)

pytestmark = pytest.mark.django_db

DAY = dt.date(2026, 9, 14)


@pytest.fixture
def school():
    return SchoolFactory()


@pytest.fixture
def enrolled(school):
    student = StudentFactory(district=school.district)
    services.student_enroll(student=student, school=school, entry_date=dt.date(2026, 8, 17))
    return student


class TestStudents:
    def test_it_creates_a_student(self):
        district = DistrictFactory()
        student = services.student_create(
            district=district, local_id="5001", legal_first_name="Ana", legal_last_name="Reed"
        )
        assert Student.objects.get(pk=student.pk).legal_last_name == "Reed"

    def test_it_refuses_a_duplicate_local_id(self):
        student = StudentFactory()
        with pytest.raises(ConflictError):
            services.student_create(
                district=student.district,
                local_id=student.local_id,
                legal_first_name="X",
                legal_last_name="Y",
            )

    def test_it_refuses_unknown_fields(self):
        with pytest.raises(ApplicationError, match="nickname"):
            services.student_update(student=StudentFactory(), nickname="Al")

    def test_a_no_op_update_writes_no_history(self):
        student = StudentFactory()
        before = student.history.count()
        services.student_update(student=student, legal_first_name=student.legal_first_name)
        assert student.history.count() == before
        services.student_update(student=student, legal_first_name="Changed")
        assert student.history.count() == before + 1


class TestGuardians:
    def test_it_keeps_the_raw_phone_and_stores_e164(self):
        district = DistrictFactory()
        guardian = services.guardian_create(
            district=district, first_name="Li", last_name="Moss", mobile_phone_raw="(312) 555-0142"
        )
        assert guardian.mobile_phone_raw == "(312) 555-0142"
        assert guardian.mobile_phone == "+13125550142"

    def test_an_invalid_phone_keeps_the_raw_value_and_no_e164(self):
        guardian = services.guardian_create(
            district=DistrictFactory(), first_name="Li", last_name="Moss", mobile_phone_raw="12"
        )
        assert (guardian.mobile_phone_raw, guardian.mobile_phone) == ("12", "")

    def test_changing_the_raw_phone_renormalises(self):
        guardian = services.guardian_create(
            district=DistrictFactory(), first_name="Li", last_name="Moss", mobile_phone_raw=""
        )
        services.guardian_update(guardian=guardian, mobile_phone_raw="312.555.0177")
        guardian.refresh_from_db()
        assert guardian.mobile_phone == "+13125550177"

    def test_a_new_primary_guardian_demotes_the_old_one(self):
        student = StudentFactory()
        first = services.guardian_create(district=student.district, first_name="A", last_name="B")
        second = services.guardian_create(district=student.district, first_name="C", last_name="D")
        services.guardian_link(student=student, guardian=first, is_primary=True)
        services.guardian_link(student=student, guardian=second, is_primary=True)
        primaries = selectors.student_guardians(student=student).filter(is_primary=True)
        assert [link.guardian_id for link in primaries] == [second.pk]

    def test_it_refuses_a_cross_district_link(self):
        student = StudentFactory()
        stranger = services.guardian_create(
            district=DistrictFactory(), first_name="A", last_name="B"
        )
        with pytest.raises(ApplicationError):
            services.guardian_link(student=student, guardian=stranger)

    def test_contactable_only_hides_guardians_without_contact_rights(self):
        student = StudentFactory()
        allowed = services.guardian_create(district=student.district, first_name="A", last_name="B")
        barred = services.guardian_create(district=student.district, first_name="C", last_name="D")
        services.guardian_link(student=student, guardian=allowed)
        services.guardian_link(student=student, guardian=barred, contact_allowed=False)
        links = selectors.student_guardians(student=student, contactable_only=True)
        assert [link.guardian_id for link in links] == [allowed.pk]


class TestEnrollmentSpans:
    def test_enrolling_sets_the_current_school_and_is_idempotent(self, school):
        student = StudentFactory(district=school.district)
        first = services.student_enroll(student=student, school=school, entry_date=DAY)
        again = services.student_enroll(student=student, school=school, entry_date=DAY)
        assert first.pk == again.pk
        student.refresh_from_db()
        assert student.school_id == school.pk

    def test_enrolling_elsewhere_while_enrolled_is_refused(self, enrolled, school):
        other = SchoolFactory(district=school.district)
        with pytest.raises(ConflictError):
            services.student_enroll(student=enrolled, school=other, entry_date=DAY)

    def test_withdrawal_closes_spans_and_deactivates(self, enrolled, school):
        section = SectionFactory(school=school)
        services.section_enroll_student(student=enrolled, section=section, entry_date=DAY)
        services.student_withdraw(student=enrolled, exit_date=dt.date(2026, 10, 2))
        span = Enrollment.objects.get(student=enrolled)
        assert (span.exit_date, span.exit_reason) == (dt.date(2026, 10, 2), ExitReason.WITHDRAWN)
        assert SectionEnrollment.objects.get(student=enrolled).exit_date == dt.date(2026, 10, 2)
        enrolled.refresh_from_db()
        assert (enrolled.active, enrolled.school_id) == (False, None)
        # Nothing was deleted, and re-entry opens a new span.
        services.student_enroll(student=enrolled, school=school, entry_date=dt.date(2026, 11, 2))
        assert Enrollment.objects.filter(student=enrolled).count() == 2
        enrolled.refresh_from_db()
        assert enrolled.active

    def test_transfer_closes_the_old_span_the_day_before(self, enrolled, school):
        other = SchoolFactory(district=school.district)
        new_span = services.student_transfer(
            student=enrolled, to_school=other, transfer_date=dt.date(2026, 10, 5)
        )
        old_span = Enrollment.objects.get(student=enrolled, school=school)
        assert old_span.exit_date == dt.date(2026, 10, 4)
        assert old_span.exit_reason == ExitReason.TRANSFERRED
        assert (new_span.school_id, new_span.entry_date) == (other.pk, dt.date(2026, 10, 5))
        assert list(selectors.student_roster(school=other, on=dt.date(2026, 10, 5))) == [enrolled]
        assert list(selectors.student_roster(school=school, on=dt.date(2026, 10, 5))) == []
        assert list(selectors.student_roster(school=school, on=dt.date(2026, 10, 4))) == [enrolled]

    def test_withdrawing_a_student_who_is_not_enrolled_is_refused(self):
        with pytest.raises(ApplicationError):
            services.student_withdraw(student=StudentFactory(), exit_date=DAY)


class TestAttendance:
    def test_recording_twice_with_the_same_values_writes_once(self, enrolled):
        record, written = services.attendance_record(
            student=enrolled, date=DAY, status=AttendanceStatus.ABSENT
        )
        again, written_again = services.attendance_record(
            student=enrolled, date=DAY, status=AttendanceStatus.ABSENT
        )
        assert (written, written_again) == (True, False)
        assert record.pk == again.pk
        assert record.history.count() == 1

    def test_recording_a_new_status_updates_the_same_record(self, enrolled):
        services.attendance_record(student=enrolled, date=DAY, status=AttendanceStatus.ABSENT)
        record, written = services.attendance_record(
            student=enrolled, date=DAY, status=AttendanceStatus.PRESENT
        )
        assert written
        assert AttendanceRecord.objects.get().status == AttendanceStatus.PRESENT
        assert record.history.count() == 2

    def test_a_district_code_gives_the_status(self, enrolled):
        code = AttendanceCodeFactory(
            district=enrolled.district, code="EX", status="excused_absence"
        )
        record, _ = services.attendance_record(student=enrolled, date=DAY, code=code)
        assert record.status == AttendanceStatus.EXCUSED_ABSENCE

    def test_another_districts_code_is_refused(self, enrolled):
        with pytest.raises(ApplicationError):
            services.attendance_record(student=enrolled, date=DAY, code=AttendanceCodeFactory())

    def test_a_date_outside_every_enrollment_is_refused(self, enrolled):
        with pytest.raises(ApplicationError, match="not enrolled"):
            services.attendance_record(
                student=enrolled, date=dt.date(2026, 8, 1), status=AttendanceStatus.ABSENT
            )

    def test_an_unknown_status_is_refused(self, enrolled):
        with pytest.raises(ApplicationError):
            services.attendance_record(student=enrolled, date=DAY, status="gone fishing")

    def test_section_and_daily_records_are_separate(self, enrolled, school):
        section = SectionFactory(school=school)
        services.attendance_record(student=enrolled, date=DAY, status=AttendanceStatus.ABSENT)
        services.attendance_record(
            student=enrolled, date=DAY, status=AttendanceStatus.TARDY, section=section, period="2"
        )
        assert AttendanceRecord.objects.filter(student=enrolled, date=DAY).count() == 2
        on_day = selectors.school_attendance_on(school=school, on=DAY)
        assert sorted(r.status for r in on_day) == ["absent", "tardy"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_recordings_of_one_absence_leave_one_record():
    school = SchoolFactory()
    student = StudentFactory(district=school.district)
    services.student_enroll(student=student, school=school, entry_date=dt.date(2026, 8, 17))
    barrier = threading.Barrier(4)
    errors = []

    def record():
        try:
            barrier.wait()
            services.attendance_record(student=student, date=DAY, status=AttendanceStatus.ABSENT)
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=record) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert AttendanceRecord.objects.filter(student=student, date=DAY).count() == 1


def test_a_written_record_is_announced_after_commit(enrolled, django_capture_on_commit_callbacks):
    from attendance.signals import attendance_changed

    seen = []

    def receiver(**kwargs):
        seen.extend((change.previous_status, change.status) for change in kwargs["changes"])

    attendance_changed.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            services.attendance_record(student=enrolled, date=DAY, status=AttendanceStatus.ABSENT)
        with django_capture_on_commit_callbacks(execute=True):
            services.attendance_record(student=enrolled, date=DAY, status=AttendanceStatus.ABSENT)
        with django_capture_on_commit_callbacks(execute=True):
            services.attendance_record(student=enrolled, date=DAY, status=AttendanceStatus.PRESENT)
    finally:
        attendance_changed.disconnect(receiver)
    assert seen == [(None, "absent"), ("absent", "present")]
