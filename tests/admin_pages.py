"""Reading admin pages in tests: the home page's Needs attention panel, a changelist's rows."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

from django.urls import reverse


def attention_panel(client: Any) -> dict[str, str]:
    """The panel's lines, text → link."""
    page = client.get(reverse("admin:index"))
    assert page.status_code == 200
    panel = page.text.split('<section id="needs-attention"', 1)[1].split("</section>", 1)[0]
    lines = {}
    for href, text in re.findall(r'<a href="([^"]+)">([^<]+)</a>', panel):
        lines[unescape(text)] = unescape(href)
    if not lines:
        assert "Nothing needs your attention." in panel
    return lines


def changelist_count(client: Any, url: str) -> int:
    """How many rows the changelist behind a panel link shows (not a redirect to ?e=1)."""
    page = client.get(url)
    assert page.status_code == 200, url
    return page.context["cl"].result_count
