from __future__ import annotations

import gettext
import re
from pathlib import Path

from django.conf import settings
from django.utils import translation

LOCALE = Path(settings.BASE_DIR) / "locale"


def _po_entries(path: Path) -> list[tuple[str, str]]:
    """(msgid, first msgstr) pairs of a .po file (enough of the format for our own files)."""
    entries, current, key = [], {}, None
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        match = re.match(r'^(msgid|msgid_plural|msgstr(?:\[0\])?|msgstr\[\d\]) (".*")$', line)
        if match:
            key = match.group(1).replace("[0]", "")
            current[key] = match.group(2)[1:-1]
        elif line.startswith('"') and key:
            current[key] += line[1:-1]
        elif not line.strip():
            if current.get("msgid"):
                entries.append((current["msgid"], current.get("msgstr", "")))
            current, key = {}, None
    return entries


def test_every_portal_string_has_a_spanish_translation():
    entries = _po_entries(LOCALE / "es/LC_MESSAGES/django.po")
    assert len(entries) > 50
    assert [msgid for msgid, msgstr in entries if not msgstr] == []


def test_the_compiled_catalogue_matches_the_po_file():
    with open(LOCALE / "es/LC_MESSAGES/django.mo", "rb") as fh:
        catalogue = gettext.GNUTranslations(fh)
    for msgid, msgstr in _po_entries(LOCALE / "es/LC_MESSAGES/django.po"):
        msgid = msgid.encode().decode("unicode_escape").encode("latin-1").decode("utf-8")
        msgstr = msgstr.encode().decode("unicode_escape").encode("latin-1").decode("utf-8")
        assert catalogue.gettext(msgid) == msgstr, f"run compilemessages: {msgid!r} is stale"


def test_django_serves_the_spanish_strings():
    with translation.override("es"):
        assert translation.gettext("Send me a code") == "Enviarme un código"
