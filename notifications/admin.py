from django.contrib import admin

from .models import Notification, NotificationCounter, Preference, TenantCategory


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    """Read-only: state changes go through notifications.services so counters stay right."""

    list_display = ["title", "tenant", "recipient", "category", "level", "created_at", "read_at", "archived_at"]
    list_filter = ["level", "category", "tenant"]
    search_fields = ["title", "recipient__email", "tenant__slug"]
    list_select_related = ["tenant", "recipient"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(NotificationCounter)
class NotificationCounterAdmin(admin.ModelAdmin):
    list_display = ["user", "tenant", "unread", "unseen", "version"]
    list_select_related = ["tenant", "user"]
    search_fields = ["user__email", "tenant__slug"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(TenantCategory)
class TenantCategoryAdmin(admin.ModelAdmin):
    list_display = ["label", "slug", "tenant", "in_app", "email", "required"]
    list_filter = ["tenant", "required"]


@admin.register(Preference)
class PreferenceAdmin(admin.ModelAdmin):
    list_display = ["user", "tenant", "category", "in_app", "email"]
    list_filter = ["tenant", "category"]
    search_fields = ["user__email"]
