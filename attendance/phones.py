"""Phone number normalisation. SIS exports hold numbers in every format people type."""

from __future__ import annotations

import phonenumbers


def phone_to_e164(raw: str, *, region: str = "US") -> str:
    """Return ``raw`` as E.164 (``+15555550123``), or ``""`` when it is not a valid number.

    An invalid number is not an error here: the raw value is kept beside it and the guardian is
    simply not reachable by SMS on that number until someone fixes it.
    """
    if not raw or not raw.strip():
        return ""
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return ""
    if not phonenumbers.is_valid_number(parsed):
        return ""
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
