"""The notification categories the platform knows, with their default delivery.

A category is a short slug that preferences key on. Producers in the code use the
ones below; the trigger API may name others (any slug), which get the defaults of
``UNKNOWN``. Tenant admins override the defaults per tenant (``TenantCategory``)
and may mark a category required; users choose per category (``Preference``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CategoryDefaults:
    """What the platform does for a category until a tenant admin says otherwise."""

    slug: str
    label: str
    description: str = ""
    in_app: bool = True
    email: bool = False
    required: bool = False
    # Several unread ones fold into one row of the bell ("3 new in Comments").
    group: bool = False


BUILTIN_CATEGORIES: dict[str, CategoryDefaults] = {
    c.slug: c
    for c in [
        CategoryDefaults("general", "General", "Messages sent to you by your team or its services.", email=True),
        CategoryDefaults(
            "members", "Members", "Someone joined or left the tenant (admins only).", email=False, group=True
        ),
        CategoryDefaults("comments", "Comments", "Someone replied to or mentioned you.", email=False, group=True),
        CategoryDefaults("jobs", "Jobs", "A background job you started has finished.", email=True),
        CategoryDefaults("announcements", "Announcements", "Critical announcements from administrators.", email=True),
    ]
}


def defaults_for(slug: str) -> CategoryDefaults:
    """The built-in defaults of a category; unknown categories show toasts and do not email."""
    if slug in BUILTIN_CATEGORIES:
        return BUILTIN_CATEGORIES[slug]
    return CategoryDefaults(slug, slug.replace("-", " ").replace("_", " ").capitalize())


def grouped_categories() -> dict[str, str]:
    """Slug to label of the categories whose unread notifications the bell folds together."""
    return {c.slug: c.label for c in BUILTIN_CATEGORIES.values() if c.group}
