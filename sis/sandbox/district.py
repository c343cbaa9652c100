"""The sandbox's district: a neutral in-memory model both API dialects render from.

:class:`GeneratedDistrict` computes every record from ``(seed, index)`` on demand, so a district
of 200,000 students costs a few kilobytes, not a list of 200,000 dicts. Layout (documented in
docs/sandbox.md):

- schools cycle elementary / middle / high; student ``i`` goes to school ``i % n_schools`` and
  has local index ``r = i // n_schools`` there;
- each school has 6 periods with ``m`` sections each (about 25 students a section); student ``r``
  takes in period ``p`` section ``(r + 7p) % m``; teacher ``q`` teaches section ``q`` of every
  period; one administrator per school;
- student ``i`` has 1–3 guardians following a period-7 pattern (average 2), so the guardian at a
  given position of the listing is found by arithmetic;
- section enrollments are listed as ``6 * i + p``.

A change script (:meth:`District.advance`) applies deterministic changes per day on top as small
overlays, and records them so tests can ask what changed.
"""

from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sis.sandbox import names

YEAR_START = dt.date(2026, 8, 17)
YEAR_END = dt.date(2027, 6, 4)
SEMESTER_SPLIT = dt.date(2027, 1, 8)
BASE_MODIFIED = dt.datetime(2026, 8, 1, tzinfo=dt.UTC)
PERIODS = 6
CLASS_SIZE = 25
STUDENTS_PER_SCHOOL = 500
GUARDIAN_PATTERN = (2, 1, 3, 2, 2, 1, 3)  # 14 guardians per 7 students
LEVELS = ("elementary", "middle", "high")
LEVEL_GRADES = {
    "elementary": ("KG", "1", "2", "3", "4", "5"),
    "middle": ("6", "7", "8"),
    "high": ("9", "10", "11", "12"),
}
SUBJECTS = ("Mathematics", "English", "Science", "Social Studies", "Art", "Physical Education")
RELATIONSHIPS = ("mother", "father", "guardian", "grandparent", "relative")

MASK = (1 << 64) - 1


def mix(*values: int) -> int:
    """A fast deterministic hash of small ints: Python's tuple hash of ints does not depend on
    PYTHONHASHSEED (only str/bytes hashing is randomised), and it is computed in C."""
    return hash(values) & MASK


def day_timestamp(day: int) -> dt.datetime:
    return BASE_MODIFIED + dt.timedelta(days=day)


@dataclass
class Change:
    day: int
    kind: (
        str  # edit | new_student | withdrawal | transfer | section_change | guardian_phone | delete
    )
    entity: str  # student | guardian | section_enrollment
    id: str
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "kind": self.kind,
            "entity": self.entity,
            "id": self.id,
            "detail": self.detail,
        }


class District:
    """Interface shared by the generated district and Grand Bend (listing by position)."""

    name = "Sandbox District"

    def __init__(self) -> None:
        self.day = 0
        self.changes: list[Change] = []
        # Overlays written by the change script: id -> changed fields (and day of change).
        self.overrides: dict[str, dict[str, dict[str, Any]]] = {
            "student": {},
            "guardian": {},
            "section_enrollment": {},
        }

    # Subclasses implement these: counts and records by position, and lookups by id.
    def count(self, kind: str) -> int:
        raise NotImplementedError

    def base_item(self, kind: str, index: int) -> dict[str, Any]:
        raise NotImplementedError

    def index_of(self, kind: str, item_id: str) -> int | None:
        raise NotImplementedError

    def item(self, kind: str, index: int) -> dict[str, Any]:
        item = self.base_item(kind, index)
        override = self.overrides.get(kind, {}).get(str(item["id"]))
        if override:
            item = {**item, **override}
        if kind == "section_enrollment":
            student_override = self.overrides["student"].get(str(item["student"]))
            if student_override:
                item = self._section_enrollment_for_student(item, student_override)
        return item

    def _section_enrollment_for_student(
        self, item: dict[str, Any], student: dict[str, Any]
    ) -> dict[str, Any]:
        return item

    def get(self, kind: str, item_id: str) -> dict[str, Any] | None:
        index = self.index_of(kind, str(item_id))
        if index is None or index >= self.count(kind):
            return None
        return self.item(kind, index)

    def iter(self, kind: str, start: int = 0, stop: int | None = None) -> Any:
        stop = self.count(kind) if stop is None else min(stop, self.count(kind))
        for index in range(start, stop):
            yield self.item(kind, index)

    def advance(self, days: int = 1) -> list[Change]:
        """Apply the change script for the next ``days`` days; returns the changes made."""
        made: list[Change] = []
        for _ in range(days):
            self.day += 1
            made.extend(self.apply_day(self.day))
        self.changes.extend(made)
        return made

    def apply_day(self, day: int) -> list[Change]:
        return []

    def changes_on(self, day: int | None = None) -> list[Change]:
        return [c for c in self.changes if day is None or c.day == day]


class GeneratedDistrict(District):
    """A deterministic district of ``students`` students generated from ``seed``."""

    def __init__(self, *, students: int = 200, seed: int = 1) -> None:
        super().__init__()
        if not 1 <= students <= 200_000:
            raise ValueError("students must be between 1 and 200,000")
        self.seed = seed
        self.base_students = students
        self.added_students = 0
        self.n_schools = max(3, -(-students // STUDENTS_PER_SCHOOL))
        # Sections per period per school, from the school's base enrolment.
        self.m = [max(1, -(-self._base_in_school(s) // CLASS_SIZE)) for s in range(self.n_schools)]
        self.section_offsets = [0]
        for s in range(self.n_schools):
            self.section_offsets.append(self.section_offsets[-1] + PERIODS * self.m[s])
        self.staff_offsets = [0]
        for s in range(self.n_schools):
            self.staff_offsets.append(self.staff_offsets[-1] + self.m[s] + 1)
        # Ids of deleted guardians (tobedeleted), sorted, for compacted listings.
        self.deleted_guardians: list[int] = []
        self.name = f"Sandbox District {seed}"

    # ---------------------------------------------------------------- sizes ------------------
    def _base_in_school(self, s: int) -> int:
        n = self.base_students
        return n // self.n_schools + (1 if s < n % self.n_schools else 0)

    @property
    def n_students(self) -> int:
        return self.base_students + self.added_students

    def _guardians_before(self, i: int) -> int:
        full, rest = divmod(i, 7)
        return full * 14 + sum(GUARDIAN_PATTERN[(k + self.seed) % 7] for k in range(rest))

    def guardian_count_of(self, i: int) -> int:
        return GUARDIAN_PATTERN[(i % 7 + self.seed) % 7]

    def count(self, kind: str) -> int:
        if kind == "school":
            return self.n_schools
        if kind == "term":
            return 3 * self.n_schools
        if kind == "course":
            return len(SUBJECTS) * self.n_schools
        if kind == "section":
            return self.section_offsets[-1]
        if kind == "staff":
            return self.staff_offsets[-1]
        if kind == "student":
            return self.n_students
        if kind == "guardian":
            return self._guardians_before(self.n_students)
        if kind == "section_enrollment":
            return PERIODS * self.n_students
        raise KeyError(kind)

    # ---------------------------------------------------------------- ids --------------------
    # Numeric ids so the PowerSchool dialect can use them as DCIDs.
    def index_of(self, kind: str, item_id: str) -> int | None:
        try:
            value = int(item_id)
        except ValueError:
            return None
        base = {
            "school": 100,
            "term": 1000,
            "course": 5000,
            "section": 50000,
            "staff": 20000,
            "student": 100000,
            "guardian": 1000000,
            "section_enrollment": 10000000,
        }[kind]
        index = value - base
        return index if index >= 0 else None

    def school_positions(self, kind: str, school_id: int) -> range:
        s = int(school_id) - 100
        if not 0 <= s < self.n_schools:
            return range(0)
        if kind == "term":
            return range(3 * s, 3 * s + 3)
        if kind == "course":
            return range(len(SUBJECTS) * s, len(SUBJECTS) * (s + 1))
        if kind == "section":
            return range(self.section_offsets[s], self.section_offsets[s + 1])
        if kind == "staff":
            return range(self.staff_offsets[s], self.staff_offsets[s + 1])
        raise KeyError(kind)

    # ---------------------------------------------------------------- records ----------------
    def base_item(self, kind: str, index: int) -> dict[str, Any]:
        return getattr(self, f"_{kind}")(index)

    def _school(self, s: int) -> dict[str, Any]:
        level = LEVELS[s % 3]
        name = names.school_name(self.seed, s, level)
        grades = LEVEL_GRADES[level]
        return {
            "id": 100 + s,
            "number": str(100 + s),
            "name": name,
            "level": level,
            "low_grade": grades[0],
            "high_grade": grades[-1],
            "state_id": f"TX-{900 + s}",
            "modified": BASE_MODIFIED,
        }

    def _term(self, t: int) -> dict[str, Any]:
        s, n = divmod(t, 3)
        school_year_id = 1000 + 3 * s
        if n == 0:
            return {
                "id": 1000 + t,
                "name": "2026-2027",
                "abbreviation": "26-27",
                "kind": "school_year",
                "start": YEAR_START,
                "end": YEAR_END,
                "parent": None,
                "school": 100 + s,
                "yearid": 36,
                "term_number": 0,
                "modified": BASE_MODIFIED,
            }
        start, end = (
            (YEAR_START, SEMESTER_SPLIT)
            if n == 1
            else (SEMESTER_SPLIT + dt.timedelta(days=3), YEAR_END)
        )
        return {
            "id": 1000 + t,
            "name": f"Semester {n}",
            "abbreviation": f"S{n}",
            "kind": "semester",
            "start": start,
            "end": end,
            "parent": school_year_id,
            "school": 100 + s,
            "yearid": 36,
            "term_number": n,
            "modified": BASE_MODIFIED,
        }

    def _course(self, c: int) -> dict[str, Any]:
        s, k = divmod(c, len(SUBJECTS))
        level = LEVELS[s % 3]
        return {
            "id": 5000 + c,
            "code": f"{level[0].upper()}{k + 1:02d}-{100 + s}",
            "title": f"{SUBJECTS[k]} ({level.title()})",
            "school": 100 + s,
            "modified": BASE_MODIFIED,
        }

    def _school_of_section(self, index: int) -> int:
        return bisect.bisect_right(self.section_offsets, index) - 1

    def _section(self, index: int) -> dict[str, Any]:
        s = self._school_of_section(index)
        local = index - self.section_offsets[s]
        p, q = divmod(local, self.m[s])
        return {
            "id": 50000 + index,
            "school": 100 + s,
            "course": 5000 + s * len(SUBJECTS) + p,
            "term": 1000 + 3 * s,
            "teacher": 20000 + self.staff_offsets[s] + q,
            "period": str(p + 1),
            "section_number": f"{p + 1}{q + 1:02d}",
            "name": f"{SUBJECTS[p]} {p + 1}-{q + 1}",
            "modified": BASE_MODIFIED,
        }

    def section_id(self, s: int, p: int, q: int) -> int:
        return 50000 + self.section_offsets[s] + p * self.m[s] + q % self.m[s]

    def _staff(self, index: int) -> dict[str, Any]:
        s = bisect.bisect_right(self.staff_offsets, index) - 1
        local = index - self.staff_offsets[s]
        first, last = names.person(self.seed, 7, index)
        role = "administrator" if local == self.m[s] else "teacher"
        return {
            "id": 20000 + index,
            "local_id": f"T{20000 + index}",
            "first": first,
            "last": last,
            "email": f"{first}.{last}.{20000 + index}@staff.example.org".lower(),
            "role": role,
            "school": 100 + s,
            "modified": BASE_MODIFIED,
        }

    def _student(self, i: int) -> dict[str, Any]:
        s = i % self.n_schools
        r = i // self.n_schools
        level = LEVELS[s % 3]
        grades = LEVEL_GRADES[level]
        grade_index = (r + mix(self.seed, 3, i)) % len(grades)
        grade = grades[grade_index]
        h = mix(self.seed, 1, i)
        first, last = names.person(self.seed, 1, i)
        gender = "F" if h & 1 else "M"
        age = 5 + (grade_index + {"elementary": 0, "middle": 6, "high": 9}[level])
        birth = dt.date(2026 - age, 1 + h % 12, 1 + (h >> 8) % 28)
        first_guardian = 1000000 + self._guardians_before(i)
        return {
            "id": 100000 + i,
            "local_id": str(200000 + i),
            "state_id": f"S{700000 + i}",
            "first": first,
            "middle": names.middle(self.seed, i),
            "last": last,
            "birth_date": birth,
            "grade": grade,
            "gender": gender,
            "school": 100 + s,
            "entry_date": YEAR_START,
            "exit_date": None,
            "enroll_status": "A",
            "email": f"{first}.{last}.{i}@students.example.org".lower(),
            "guardians": [first_guardian + k for k in range(self.guardian_count_of(i))],
            "deleted": False,
            "modified": BASE_MODIFIED,
        }

    def _student_of_guardian(self, g: int) -> tuple[int, int]:
        full, rest = divmod(g, 14)
        i = full * 7
        while True:
            n = self.guardian_count_of(i)
            if rest < n:
                return i, rest
            rest -= n
            i += 1

    def _guardian(self, g: int) -> dict[str, Any]:
        i, k = self._student_of_guardian(g)
        _, student_last = names.person(self.seed, 1, i)
        first, last = names.person(self.seed, 2, g)
        if k == 0:
            last = student_last
        h = mix(self.seed, 4, g)
        relationship = ("mother", "father")[k] if k < 2 else RELATIONSHIPS[2 + h % 3]
        return {
            "id": 1000000 + g,
            "first": first,
            "last": last,
            "email": f"{first}.{last}.{g}@example.org".lower(),
            "mobile": names.phone(h),
            "home": names.phone(h >> 16) if h % 3 == 0 else "",
            "work": "",
            "relationship": relationship,
            "custody": k < 2 or h % 4 != 0,
            "contact_allowed": h % 17 != 0,
            "lives_with": k == 0 or h % 2 == 0,
            "emergency": k < 2,
            "priority": k + 1,
            "student": 100000 + i,
            "school": 100 + i % self.n_schools,
            "deleted": False,
            "modified": BASE_MODIFIED,
        }

    def _section_enrollment(self, index: int) -> dict[str, Any]:
        i, p = divmod(index, PERIODS)
        s = i % self.n_schools
        r = i // self.n_schools
        return {
            "id": 10000000 + index,
            "student": 100000 + i,
            "section": self.section_id(s, p, r + 7 * p),
            "school": 100 + s,
            "entry_date": YEAR_START,
            "exit_date": None,
            "deleted": False,
            "modified": BASE_MODIFIED,
        }

    def _section_enrollment_for_student(
        self, item: dict[str, Any], student: dict[str, Any]
    ) -> dict[str, Any]:
        # A transferred student takes the same periods in the new school's sections; a
        # withdrawn one has every section enrollment ended on the withdrawal date.
        i = int(item["student"]) - 100000
        p = (int(item["id"]) - 10000000) % PERIODS
        s = int(student.get("school", 100 + i % self.n_schools)) - 100
        shift = int(self.overrides["section_enrollment"].get(str(item["id"]), {}).get("shift", 0))
        updated = {
            **item,
            "school": 100 + s,
            "section": self.section_id(s, p, i // self.n_schools + 7 * p + shift),
        }
        if student.get("exit_date"):
            updated["exit_date"] = student["exit_date"]
            updated["modified"] = student["modified"]
        if student.get("deleted"):
            updated["deleted"] = True
        if student.get("school_changed_day"):
            updated["modified"] = student["modified"]
        return updated

    # ---------------------------------------------------------------- change script ----------
    def apply_day(self, day: int) -> list[Change]:
        """About 1% of students change per day, in a fixed mix of change kinds."""
        n = self.n_students
        per_kind = max(1, n // 700)
        when = day_timestamp(day)
        made: list[Change] = []

        def pick(kind_no: int, k: int) -> int:
            return mix(self.seed, 100 + day, kind_no, k) % n

        for k in range(per_kind):
            i = pick(1, k)
            sid = str(100000 + i)
            current = self.item("student", i)
            new_last = names.person(self.seed, 9, day * 1000 + k)[1]
            self.overrides["student"].setdefault(sid, {}).update(
                {"last": new_last, "modified": when}
            )
            made.append(
                Change(
                    day,
                    "edit",
                    "student",
                    sid,
                    {"field": "last_name", "old": current["last"], "new": new_last},
                )
            )
        for _ in range(per_kind):
            i = self.n_students
            self.added_students += 1
            sid = str(100000 + i)
            self.overrides["student"][sid] = {"entry_date": when.date(), "modified": when}
            for g in range(self.guardian_count_of(i)):
                gid = str(1000000 + self._guardians_before(i) + g)
                self.overrides["guardian"][gid] = {"modified": when}
            made.append(Change(day, "new_student", "student", sid, {}))
        for k in range(per_kind):
            i = pick(3, k)
            sid = str(100000 + i)
            self.overrides["student"].setdefault(sid, {}).update(
                {"exit_date": when.date(), "enroll_status": "I", "modified": when}
            )
            made.append(Change(day, "withdrawal", "student", sid, {"exit_date": str(when.date())}))
        for k in range(per_kind):
            i = pick(4, k)
            sid = str(100000 + i)
            current = self.item("student", i)
            old_school = int(current["school"]) - 100
            # Same level, next school of that level (when there is one).
            # Same level when the district has another school of that level.
            step = 3 if self.n_schools >= 6 else 1
            new_school = (old_school + step) % self.n_schools
            self.overrides["student"].setdefault(sid, {}).update(
                {
                    "school": 100 + new_school,
                    "entry_date": when.date(),
                    "modified": when,
                    "school_changed_day": day,
                }
            )
            made.append(
                Change(
                    day,
                    "transfer",
                    "student",
                    sid,
                    {"from": 100 + old_school, "to": 100 + new_school},
                )
            )
        for k in range(per_kind):
            i = pick(5, k)
            p = k % PERIODS
            eid = str(10000000 + PERIODS * i + p)
            entry = self.overrides["section_enrollment"].setdefault(eid, {})
            entry["shift"] = int(entry.get("shift", 0)) + 1
            entry["modified"] = when
            student = self.overrides["student"].setdefault(str(100000 + i), {})
            student.setdefault("modified", self.item("student", i)["modified"])
            after = self.item("section_enrollment", PERIODS * i + p)
            made.append(
                Change(
                    day, "section_change", "section_enrollment", eid, {"section": after["section"]}
                )
            )
        for k in range(per_kind):
            g = mix(self.seed, 200 + day, k) % self.count("guardian")
            gid = str(1000000 + g)
            phone = names.phone(mix(self.seed, 300 + day, k))
            self.overrides["guardian"].setdefault(gid, {}).update(
                {"mobile": phone, "modified": when}
            )
            made.append(Change(day, "guardian_phone", "guardian", gid, {"mobile": phone}))
        g = mix(self.seed, 400 + day) % self.count("guardian")
        gid = str(1000000 + g)
        if not self.overrides["guardian"].get(gid, {}).get("deleted"):
            self.overrides["guardian"].setdefault(gid, {}).update(
                {"deleted": True, "modified": when}
            )
            bisect.insort(self.deleted_guardians, g)
            made.append(Change(day, "delete", "guardian", gid, {}))
        return made


# ---------------------------------------------------------------- listing helpers ---------------
class Compacted:
    """``range(count)`` without the (few, sorted) ``skipped`` positions, by arithmetic."""

    def __init__(self, count: int, skipped: list[int]) -> None:
        self.count = count
        self.skipped = [s for s in skipped if s < count]

    def __len__(self) -> int:
        return self.count - len(self.skipped)

    def __getitem__(self, k: int) -> int:
        x = k
        for s in self.skipped:
            if s <= x:
                x += 1
            else:
                break
        return x


def school_positions(district: District, kind: str, school_id: int) -> Any:
    """Positions of ``kind`` records belonging to one school (a range when generated)."""
    finder = getattr(district, "school_positions", None)
    if finder is not None:
        return finder(kind, school_id)
    raise KeyError(kind)


def changed_positions(district: District, kind: str, since: dt.datetime) -> Any:
    """Positions of ``kind`` records modified after ``since`` (the delta listing)."""
    if since < BASE_MODIFIED or not isinstance(district, GeneratedDistrict):
        return [
            i for i in range(district.count(kind)) if district.item(kind, i)["modified"] > since
        ]
    if kind in ("student", "guardian"):
        base = 100000 if kind == "student" else 1000000
        ids = sorted(
            int(k) - base
            for k, v in district.overrides[kind].items()
            if v.get("modified") and v["modified"] > since
        )
        return [i for i in ids if i < district.count(kind)]
    if kind == "section_enrollment":
        positions: set[int] = set()
        for k, v in district.overrides["student"].items():
            if (
                v.get("modified")
                and v["modified"] > since
                and (v.get("exit_date") or v.get("school_changed_day") or v.get("entry_date"))
            ):
                i = int(k) - 100000
                positions.update(PERIODS * i + p for p in range(PERIODS))
        for k, v in district.overrides["section_enrollment"].items():
            if v.get("modified") and v["modified"] > since:
                positions.add(int(k) - 10000000)
        return sorted(p for p in positions if p < district.count(kind))
    return []
