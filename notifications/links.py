"""The link to the parent portal that guardians' messages carry.

A template writes ``{{ portal_link }}``; rendering puts :data:`MARK` there, and what is stored
(the notification's content, the delivery's body) keeps the mark. The link itself, which signs
its guardian in (single use, expiring), is minted only when the message is handed to its
provider (:func:`links_for`), so no stored message, admin page or log holds a working
credential, and a retried delivery carries a fresh link. The portal app supplies the links
(:func:`link_maker_set`, from its ``AppConfig.ready``); without it the mark becomes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from notifications.models import Delivery, Notification

MARK = "[portal-link]"


@dataclass(frozen=True)
class LinkMaker:
    # One link per guardian id given, in order (guardians may repeat).
    make: Callable[[Sequence[int]], list[str]]
    # The length of a link as sent, for counting an SMS's segments before it is minted.
    length: Callable[[], int]


_maker: LinkMaker | None = None


def link_maker_set(maker: LinkMaker | None) -> None:
    global _maker
    _maker = maker


def link_length() -> int:
    return _maker.length() if _maker is not None else 0


def as_sent(text: str) -> str:
    """``text`` with the mark replaced by a stand-in of a real link's length (an SMS's
    segments are counted on what will be sent)."""
    return text.replace(MARK, "x" * link_length()) if MARK in text else text


def links_for(deliveries: Sequence[Delivery]) -> dict[int, str]:
    """A freshly minted link for each of ``deliveries`` whose subject or body has the mark
    (delivery id → link; none minted when no message asks for one)."""
    marked = [d for d in deliveries if MARK in d.body or MARK in d.subject]
    if not marked:
        return {}
    if _maker is None:
        return {d.pk: "" for d in marked}
    guardians = dict(
        Notification.objects.filter(pk__in={d.notification_id for d in marked}).values_list(
            "pk", "guardian_id"
        )
    )
    urls = _maker.make([guardians[d.notification_id] for d in marked])
    return {d.pk: url for d, url in zip(marked, urls, strict=True)}


def with_link(text: str, link: str | None) -> str:
    return text.replace(MARK, link or "") if MARK in text else text


def without_link_lines(text: str) -> str:
    """``text`` without the lines that carry the mark (a digest keeps one link, its own)."""
    if MARK not in text:
        return text
    return "\n".join(line for line in text.split("\n") if MARK not in line).strip()
