"""``{% active_announcements as list %}``: the banners every signed-in page renders on the server."""

from __future__ import annotations

from typing import Any

from django import template

from announcements.services import active_for

register = template.Library()


@register.simple_tag(takes_context=True)
def active_announcements(context: dict[str, Any]) -> list[dict[str, Any]]:
    """The active, undismissed announcements for the signed-in user (empty for anonymous)."""
    user = context.get("user")
    if user is None or not user.is_authenticated:
        return []
    return active_for(user)
