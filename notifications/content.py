"""What a notification is made of: its fields' rules, and its JSON shape in events and the API.

Kept apart from the services that create and change notifications so that every module
that needs the rules or the shape (the API's schemas, the group commit, the snapshot)
can import them without importing the services.
"""

from __future__ import annotations

import re
from typing import Any

from .models import Level, Notification, NotificationCounter

CATEGORY_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")
TITLE_MAX = 200
BODY_MAX = 10_000
LINK_MAX = 500
# Rows per statement for recipient lists (IN lists and the counter upsert):
# under SQLite's 999-parameter limit, and few round trips on PostgreSQL.
CHUNK = 900


def is_internal_link(link: str) -> bool:
    """A link inside the platform: an absolute path, not another site (``//host``) or a scheme."""
    return (
        link.startswith("/")
        and not link.startswith("//")
        and "\\" not in link
        and not any(ch.isspace() or ord(ch) < 32 for ch in link)
        and len(link) <= LINK_MAX
    )


def validate_content(*, category: str, title: str, body: str, level: str, link: str) -> dict[str, str]:
    """Field-by-field problems with a notification's content (empty when it is valid)."""
    errors = {}
    if not isinstance(category, str) or not CATEGORY_RE.match(category):
        errors["category"] = "Use 1-50 lowercase letters, digits, '-' or '_', starting with a letter or digit."
    if not isinstance(title, str) or not title.strip():
        errors["title"] = "A title is required."
    elif len(title) > TITLE_MAX:
        errors["title"] = f"At most {TITLE_MAX} characters."
    if not isinstance(body, str) or len(body) > BODY_MAX:
        errors["body"] = f"At most {BODY_MAX} characters."
    if level not in Level.values:
        errors["level"] = f"One of {', '.join(Level.values)}."
    if link and not is_internal_link(link):
        errors["link"] = "A path inside the platform, starting with '/'."
    return errors


# ------------------------------------------------------------------------------
# Serialisation: what sockets and the API see of a notification
# ------------------------------------------------------------------------------
def notification_data(notification: Notification, *, actor_label: str | None = None) -> dict[str, Any]:
    """The JSON shape of a notification in events and in the API."""
    if actor_label is None and notification.actor_id:
        actor_label = getattr(notification.actor, "email", None)
    return {
        "id": notification.pk,
        "category": notification.category,
        "level": notification.level,
        "title": notification.title,
        "body_html": notification.body_html,
        "link": notification.link,
        "actor": actor_label,
        "data": notification.data,
        "created_at": _iso(notification.created_at),
        "seen_at": _iso(notification.seen_at),
        "read_at": _iso(notification.read_at),
        "archived_at": _iso(notification.archived_at),
    }


def _iso(moment) -> str | None:
    # Events are stored in a JSONField: plain strings, not datetimes.
    return moment.isoformat() if moment is not None else None


def counts_data(counter: NotificationCounter | dict | None) -> dict[str, int]:
    """The badge's numbers as every event and the API carry them."""
    if counter is None:
        return {"unread": 0, "unseen": 0, "version": 0}
    if isinstance(counter, dict):
        return {"unread": counter["unread"], "unseen": counter["unseen"], "version": counter["version"]}
    return {"unread": counter.unread, "unseen": counter.unseen, "version": counter.version}
