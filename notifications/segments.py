"""SMS length in segments. Providers bill and rate-limit per segment, not per message.

GSM-7 messages fit 160 characters in one segment, 153 per segment when split (the rest is the
concatenation header); characters of the extension table (``€ [ ] { } ...``) take two septets.
Any character outside GSM-7 turns the whole message into UCS-2: 70 UTF-16 code units, 67 per
segment when split. One curly quote or non-breaking space can double the cost.
"""

from __future__ import annotations

from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")


@dataclass(frozen=True)
class SmsLength:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int
    per_segment: int

    def __str__(self) -> str:
        return f"{self.units} {self.encoding} units, {self.segments} segment(s)"


GSM7 = GSM7_BASIC | GSM7_EXTENSION


def sms_length(text: str) -> SmsLength:
    used = set(text)  # per distinct character, not per character: every message is measured
    if used <= GSM7:
        units = len(text) + sum(text.count(ch) for ch in used & GSM7_EXTENSION)
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi, encoding = 70, 67, "UCS-2"
    if units <= single:
        return SmsLength(encoding, units, 1 if units else 0, single)
    return SmsLength(encoding, units, -(-units // multi), multi)


# Characters that sneak in from word processors and force UCS-2 for no visible benefit.
_LOOKALIKES = str.maketrans(
    {"\xa0": " ", "‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-", "…": "..."}
)


def sms_clean(text: str) -> str:
    """Replace typographic look-alikes with their GSM-7 equivalents (healthchecks does the same
    for the non-breaking space)."""
    return text.translate(_LOOKALIKES).strip()
