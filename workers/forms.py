"""The start forms of the job kinds, one per kind that takes input."""

from __future__ import annotations

from django import forms


class ExportForm(forms.Form):
    """An export takes no input: it exports what the owner may read."""


class ImportMembersForm(forms.Form):
    file = forms.FileField(label="CSV file (email,role)")


class BroadcastForm(forms.Form):
    title = forms.CharField(max_length=200)
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=5000)


FORMS: dict[str, type[forms.Form]] = {
    "export": ExportForm,
    "import_members": ImportMembersForm,
    "broadcast": BroadcastForm,
}
