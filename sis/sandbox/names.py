"""Generated names, phone numbers and school names for the sandbox (no real people)."""

from __future__ import annotations

FIRST = (
    "Ava",
    "Liam",
    "Mia",
    "Noah",
    "Zoe",
    "Ethan",
    "Lena",
    "Omar",
    "Iris",
    "Mateo",
    "Nora",
    "Kai",
    "Ruby",
    "Elias",
    "Hazel",
    "Jonah",
    "Leila",
    "Felix",
    "Maya",
    "Aaron",
    "Chloe",
    "Diego",
    "Emma",
    "Hugo",
    "Ines",
    "Jasper",
    "Keira",
    "Luca",
    "Maren",
    "Nico",
    "Olive",
    "Pablo",
    "Quinn",
    "Rosa",
    "Sami",
    "Tessa",
    "Uma",
    "Victor",
    "Wren",
    "Xavi",
    "Yara",
    "Zane",
    "Amara",
    "Bodhi",
    "Cora",
    "Dante",
    "Elin",
    "Farah",
    "Gus",
    "Hana",
    "Ivo",
    "Juno",
    "Kofi",
    "Lior",
)
LAST = (
    "Abbott",
    "Barnes",
    "Castillo",
    "Dawson",
    "Ellison",
    "Fischer",
    "Garza",
    "Hale",
    "Ibarra",
    "Jensen",
    "Kowalski",
    "Lindqvist",
    "Moreno",
    "Nakamura",
    "Okafor",
    "Park",
    "Quintero",
    "Reyes",
    "Sandoval",
    "Tanaka",
    "Underwood",
    "Vasquez",
    "Whitaker",
    "Xiong",
    "Yilmaz",
    "Zimmer",
    "Alvarez",
    "Brennan",
    "Chowdhury",
    "Delgado",
    "Eriksen",
    "Fontaine",
    "Gallo",
    "Haddad",
    "Ishikawa",
    "Juarez",
    "Kaur",
    "Lambert",
    "Mensah",
    "Novak",
    "Olsen",
    "Petrov",
    "Rahman",
    "Sato",
    "Thornton",
    "Ueda",
    "Varga",
    "Walsh",
    "Yamada",
    "Zhou",
    "Becker",
    "Cruz",
)
MIDDLE = ("A", "B", "C", "D", "E", "J", "L", "M", "R", "S", "T", "")
PLACES = (
    "Cedar",
    "Maple",
    "Riverside",
    "Hillcrest",
    "Lakeview",
    "Oakwood",
    "Pinecrest",
    "Willow",
    "Brookside",
    "Fairview",
    "Meadow",
    "Stonebridge",
    "Sunset",
    "Highland",
    "Prairie",
    "Elm",
)
LEVEL_WORD = {"elementary": "Elementary", "middle": "Middle School", "high": "High School"}


def _mix(*values: int) -> int:
    from sis.sandbox.district import mix

    return mix(*values)


def person(seed: int, kind: int, index: int) -> tuple[str, str]:
    h = _mix(seed, kind, index)
    return FIRST[h % len(FIRST)], LAST[(h >> 20) % len(LAST)]


def middle(seed: int, index: int) -> str:
    return MIDDLE[_mix(seed, 5, index) % len(MIDDLE)]


def school_name(seed: int, index: int, level: str) -> str:
    place = PLACES[(index // 3 + seed) % len(PLACES)]
    suffix = f" {index // (3 * len(PLACES)) + 1}" if index >= 3 * len(PLACES) else ""
    return f"{place}{suffix} {LEVEL_WORD[level]}"


def phone(h: int) -> str:
    """A fictional US number in the reserved 555-0100..0199 range."""
    area = 200 + h % 700
    return f"({area}) 555-01{(h >> 12) % 100:02d}"
