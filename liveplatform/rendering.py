"""Safe Markdown: the one renderer for user-written titles and bodies.

Notifications and announcements accept a small Markdown subset. It is rendered on
the server and sanitised with nh3 (a binding of the ammonia sanitiser): scripts,
event-handler attributes, styles and `javascript:` links cannot survive, and every
link gets `rel="noopener noreferrer nofollow"`.
"""

from __future__ import annotations

import markdown
import nh3

ALLOWED_TAGS = {"p", "br", "strong", "em", "code", "pre", "ul", "ol", "li", "a", "blockquote"}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}
ALLOWED_SCHEMES = {"http", "https", "mailto"}


def render_markdown(text: str) -> str:
    """Render the safe Markdown subset to sanitised HTML (empty string for empty input)."""
    if not text:
        return ""
    html = markdown.markdown(text, extensions=[], output_format="html")
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=ALLOWED_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )
