"""``{{ user|person }}``: a person's name as sentences on the home page say it."""

from __future__ import annotations

from django import template

from ..home import person as person_name

register = template.Library()


@register.filter
def person(user) -> str:
    """The part of the user's email before the @, capitalised ("alice@acme.test" reads "Alice")."""
    return person_name(user)
