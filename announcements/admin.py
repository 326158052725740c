"""Django admin for announcements: staff publish, edit, end and delete through the same services."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.utils import timezone

from . import services
from .models import Announcement, AuditLogEntry, Dismissal

EDITABLE = ["title", "body", "severity", "style", "audience", "starts_at", "ends_at", "dismissable"]


class AnnouncementAdminForm(forms.ModelForm):
    class Meta:
        model = Announcement
        fields = ["scope", "tenant", *EDITABLE]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "starts_at" in self.fields:
            self.fields["starts_at"].required = False
            self.fields["starts_at"].help_text = "Leave empty to publish now."

    def clean(self):
        """The services' rules, so a save never fails after the form said yes."""
        cleaned = super().clean()
        if "starts_at" in self.fields and not cleaned.get("starts_at"):
            cleaned["starts_at"] = timezone.now()
        values = {field: cleaned.get(field, getattr(self.instance, field)) for field in EDITABLE}
        values["scope"] = cleaned.get("scope", self.instance.scope)
        services.clean_fields(values)
        return cleaned


@admin.register(Announcement)
class AnnouncementAdmin(admin.ModelAdmin):
    """Saving goes through ``do_publish_announcement`` / ``do_update_announcement``, so live delivery,
    scheduling and the audit log behave exactly as in the composer."""

    list_display = ["title", "scope", "tenant", "severity", "style", "starts_at", "ends_at", "state", "author"]
    list_filter = ["scope", "severity", "style", "state", "tenant"]
    search_fields = ["title", "body"]
    fields = ["scope", "tenant", *EDITABLE, "state", "activated_at", "ended_at", "author", "created_at"]
    readonly_fields = ["state", "activated_at", "ended_at", "author", "created_at"]
    actions = ["end_now"]
    form = AnnouncementAdminForm

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "scope", "tenant"] if obj is not None else fields

    def save_model(self, request, obj: Announcement, form, change: bool) -> None:
        values = {field: form.cleaned_data.get(field) for field in EDITABLE}
        if change:
            updated = services.do_update_announcement(obj, actor=request.user, changes=values, via="admin")
        else:
            services.check_may_publish(request.user, scope=obj.scope, tenant=obj.tenant)
            updated = services.do_publish_announcement(
                actor=request.user, scope=obj.scope, tenant=obj.tenant, via="admin", **values
            )
        obj.pk = updated.pk
        obj.refresh_from_db()

    def delete_model(self, request, obj: Announcement) -> None:
        services.do_delete_announcement(obj, actor=request.user, via="admin")

    def delete_queryset(self, request, queryset) -> None:
        for announcement in queryset:
            services.do_delete_announcement(announcement, actor=request.user, via="admin")

    @admin.action(description="End the selected announcements now")
    def end_now(self, request, queryset) -> None:
        for announcement in queryset:
            services.do_end_announcement(announcement, actor=request.user, via="admin")


@admin.register(AuditLogEntry)
class AuditLogEntryAdmin(admin.ModelAdmin):
    list_display = ["created_at", "action", "announcement_title", "tenant", "actor", "via"]
    list_filter = ["action", "tenant"]
    readonly_fields = [f.name for f in AuditLogEntry._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Dismissal)
class DismissalAdmin(admin.ModelAdmin):
    list_display = ["announcement", "user", "created_at"]
    raw_id_fields = ["announcement", "user"]
