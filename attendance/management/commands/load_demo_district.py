from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from tqdm import tqdm

from attendance.demo import load_demo_district


class Command(BaseCommand):
    help = "Create the demo district (schools, students, guardians, enrollments) if missing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--students-per-school", type=int, default=30)

    def handle(self, *args: Any, **options: Any) -> None:
        per_school = options["students_per_school"]
        with tqdm(total=per_school * 2, desc="Demo district", unit="student") as bar:
            district = load_demo_district(students_per_school=per_school, progress=bar.update)
        self.stdout.write(self.style.SUCCESS(f"Demo district ready: {district.name}"))
