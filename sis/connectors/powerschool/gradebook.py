"""Participation grades into PowerTeacher Pro (PowerSchool's XTE gradebook API).

Facts from /work/shared/reference/sis-apis.md §1.6: plugins may save *assignment scores only*;
OAuth clients pass ``users_dcid`` (and the year or term) on every call;

- ``GET /ws/xte/teacher_category?users_dcid&year_id``: the teacher's categories;
- ``POST /ws/xte/section/assignment/?users_dcid``: an assignment, its ``_assignmentsections[]``
  (``sectionsdcid, name, duedate, scoretype, scoreentrypoints, totalpointvalue, weight,
  iscountedinfinalgrades, _assignmentcategoryassociations[]``);
- ``PUT /ws/xte/score?users_dcid&status=A&term_id``: ``assignment_scores[]``;
- 409 is a validation error or a locked term (permanent), 412 "Resubmit" is retried once.

So a grade goes to one "Participation" assignment per section and grading period, created the
first time (as the section's teacher, in the teacher's category of that name) and remembered in
the connection's column store, then every score is a ``PUT`` to it: a replace, safe to repeat.
The reference names no way to read a score back, so ``grades_verifiable`` is False and the
write-back sender ends these items "accepted, not verifiable".

Not from the reference (PowerTeacher Pro's table and column names, marked where used): the
assignment's id in the POST answer (``_assignmentsections[].assignmentsectionid``), the score
item's fields, the category's ``teachercategoryid``, and the staff resource's ``users_dcid``.
"""

from __future__ import annotations

from typing import Any

from sis.connectors.base import Capability
from sis.connectors.errors import ConfigurationError, ConnectorError, NotFound
from sis.connectors.powerschool import mapping
from sis.connectors.powerschool.queries import PowerSchoolQueries
from sis.connectors.records import GradeWrite


class PowerSchoolGradebook(PowerSchoolQueries):
    grades_verifiable = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._teachers: dict[str, str] = {}  # section DCID → teacher's users DCID

    def write_grade(self, grade: GradeWrite, *, idempotency_key: str) -> None:
        self.require(Capability.WRITE_GRADES)
        term_id = grade.term_id.rsplit(":", 1)[-1]  # our term source ids are "<school>:<id>"
        if not term_id.isdigit():
            raise ConnectorError(
                f"{self.label} needs the grading period's term id to write a grade; the grading "
                "period is not one synced from this PowerSchool."
            )
        users_dcid = self.section_users_dcid(grade.section_id)
        assignment = self.column_store.get_or_create(
            grade.line_item_id,
            lambda: self.assignment_create(grade=grade, users_dcid=users_dcid, term_id=term_id),
        )
        score = {
            # PowerTeacher Pro's ASSIGNMENTSCORE columns (not in the reference).
            "assignmentsectionid": int(assignment),
            "studentsdcid": int(grade.student_id),
            "scorepoints": grade.score,
            "actualscoreentered": f"{grade.score:g}",
            "actualscorekind": "REAL_SCORE",
        }
        self._resubmitting(
            lambda: self.scores_write(
                users_dcid=users_dcid, term_id=term_id, assignment_scores=[score]
            )
        )

    def scores_write(
        self, *, users_dcid: str, term_id: str, assignment_scores: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """Write PowerTeacher Pro assignment scores (``PUT /ws/xte/score``)."""
        self.require(Capability.WRITE_GRADES)
        response = self.request(
            "PUT",
            "/ws/xte/score",
            params={"users_dcid": users_dcid, "status": "A", "term_id": term_id},
            json={"assignment_scores": assignment_scores},
            retry_writes=True,  # a score PUT replaces: sending it twice is harmless
        )
        return dict(response.json() or {})

    def assignment_create(self, *, grade: GradeWrite, users_dcid: str, term_id: str) -> str:
        """Create the participation assignment of ``grade``'s section and grading period
        (``POST /ws/xte/section/assignment/``) and return its assignment-section id."""
        category = self.category_id(users_dcid=users_dcid, year_id=str(int(term_id) // 100))
        section = {
            "sectionsdcid": int(grade.section_id),
            "name": grade.title,
            "duedate": grade.date.isoformat(),
            "scoretype": "POINTS",
            "scoreentrypoints": grade.score_max,
            "totalpointvalue": grade.score_max,
            "weight": 1,
            "iscountedinfinalgrades": True,
            "_assignmentcategoryassociations": [
                {"teachercategoryid": int(category), "isprimary": True}
            ],
        }
        # Not retried by the gateway: a POST that reached PowerSchool would make a second one.
        response = self._resubmitting(
            lambda: self.request(
                "POST",
                "/ws/xte/section/assignment/",
                params={"users_dcid": users_dcid},
                json={"_assignmentsections": [section]},
            )
        )
        data = response.json() or {}
        created = data.get("_assignmentsections") if isinstance(data, dict) else None
        for item in mapping.as_list(created):
            if (
                isinstance(item, dict)
                and str(item.get("sectionsdcid")) == str(grade.section_id)
                and item.get("assignmentsectionid") is not None
            ):
                return str(item["assignmentsectionid"])
        raise ConnectorError(f"{self.label} created the assignment but sent back no id for it.")

    def category_id(self, *, users_dcid: str, year_id: str) -> str:
        """The teacher's category named ``gradebook_category`` (``GET
        /ws/xte/teacher_category``); a teacher without one is a permanent error to fix there."""
        wanted = self.options.gradebook_category
        data = self.get_json(
            "/ws/xte/teacher_category", params={"users_dcid": users_dcid, "year_id": year_id}
        )
        items = data if isinstance(data, list) else mapping.as_list(data.get("teacher_category"))
        for item in items:
            if isinstance(item, dict) and str(item.get("name", "")).casefold() == wanted.casefold():
                return str(item["teachercategoryid"])
        raise ConnectorError(
            f"The section's teacher has no PowerTeacher Pro category named {wanted!r} for year "
            f"{year_id}; add it in PowerTeacher Pro or set the connection's gradebook_category."
        )

    def section_users_dcid(self, section_id: str) -> str:
        """Whom PowerTeacher Pro calls are made as: the connection's ``gradebook_users_dcid``
        when set, else the section's teacher (``GET /ws/v1/section/{dcid}`` →
        ``staff_id``, then ``GET /ws/v1/staff/{id}`` → ``users_dcid``)."""
        if self.options.gradebook_users_dcid:
            return str(self.options.gradebook_users_dcid)
        if section_id not in self._teachers:
            try:
                section = self.get_json(
                    f"/ws/v1/section/{section_id}", path_template="/ws/v1/section/{id}"
                ).get("section")
                staff_id = (section or {}).get("staff_id")
                staff = (
                    self.get_json(f"/ws/v1/staff/{staff_id}", path_template="/ws/v1/staff/{id}")
                    if staff_id
                    else {}
                ).get("staff") or {}
            except NotFound:
                raise ConnectorError(
                    f"{self.label} does not know section {section_id} (or its teacher)."
                ) from None
            users_dcid = staff.get("users_dcid")
            if not users_dcid:
                raise ConfigurationError(
                    f"{self.label} names no teacher account (users_dcid) for section "
                    f"{section_id}; set the connection's gradebook_users_dcid option."
                )
            self._teachers[section_id] = str(users_dcid)
        return self._teachers[section_id]

    def _resubmitting(self, call: Any) -> Any:
        """``call()``, once more when PowerSchool answers 412 ("Resubmit")."""
        try:
            return call()
        except ConnectorError as exc:
            if exc.status != 412:
                raise
            return call()
