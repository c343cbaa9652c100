"""``{% needs_attention as items %}`` for the admin's home page (core/attention.py)."""

from __future__ import annotations

from typing import Any

from django import template

from core.attention import AttentionLine, attention_lines

register = template.Library()


@register.simple_tag(takes_context=True)
def needs_attention(context: dict[str, Any]) -> list[AttentionLine]:
    return attention_lines(context["request"])
