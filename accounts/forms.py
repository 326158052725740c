from django import forms

from .models import Membership


class AddMemberForm(forms.Form):
    """An admin adds someone to their tenant by email."""

    email = forms.EmailField()
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.MEMBER)
