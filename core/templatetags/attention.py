"""``{% needs_attention as items %}`` for the admin's home page (core/attention.py)."""

from __future__ import annotations

from typing import Any

from django import template

from core.attention import AttentionCount, attention_counts

register = template.Library()


@register.simple_tag(takes_context=True)
def needs_attention(context: dict[str, Any]) -> list[AttentionCount]:
    return attention_counts(context["request"])
