"""The composer form: the fields an admin fills in; the rules live in services.clean_fields."""

from __future__ import annotations

from django import forms

from .models import Announcement

DATETIME_FORMAT = "%Y-%m-%dT%H:%M"


class DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, **kwargs):
        super().__init__(format=DATETIME_FORMAT, **kwargs)


class AnnouncementForm(forms.Form):
    """Compose or edit an announcement; ``scope`` appears only for platform staff."""

    scope = forms.ChoiceField(choices=Announcement.Scope.choices, initial=Announcement.Scope.TENANT)
    title = forms.CharField(max_length=200)
    body = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6}),
        required=False,
        help_text="Markdown: **bold**, *italics*, [links](https://…), lists, `code`.",
    )
    severity = forms.ChoiceField(choices=Announcement.Severity.choices, initial=Announcement.Severity.INFO)
    style = forms.ChoiceField(choices=Announcement.Style.choices, initial=Announcement.Style.BANNER)
    audience = forms.ChoiceField(choices=Announcement.AudienceFilter.choices, initial=Announcement.AudienceFilter.ALL)
    starts_at = forms.DateTimeField(
        required=False,
        widget=DateTimeLocalInput(),
        input_formats=[DATETIME_FORMAT, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
        label="Starts at (UTC)",
        help_text="Leave empty to publish now.",
    )
    ends_at = forms.DateTimeField(
        required=False,
        widget=DateTimeLocalInput(),
        input_formats=[DATETIME_FORMAT, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
        label="Ends at (UTC)",
        help_text="Leave empty to keep it until you end it.",
    )
    dismissable = forms.BooleanField(
        required=False, initial=True, help_text="Critical announcements can never be dismissed."
    )

    def __init__(self, *args, allow_platform: bool = False, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if not allow_platform or editing:
            del self.fields["scope"]

    def service_kwargs(self) -> dict:
        """The cleaned values, named as the services take them."""
        data = dict(self.cleaned_data)
        data.setdefault("scope", Announcement.Scope.TENANT)
        return data

    @staticmethod
    def initial_for(announcement: Announcement) -> dict:
        return {
            "title": announcement.title,
            "body": announcement.body,
            "severity": announcement.severity,
            "style": announcement.style,
            "audience": announcement.audience,
            "starts_at": announcement.starts_at,
            "ends_at": announcement.ends_at,
            "dismissable": announcement.dismissable,
        }
