from django.contrib import admin

from .models import ConnectionTicket, Event, RetentionMark, SendMark


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    """The replay log, read-only: events are written by the publish path alone."""

    list_display = ["id", "type", "audience", "tenant", "user", "created_at"]
    list_filter = ["audience", "type", "tenant"]
    search_fields = ["type", "user__email", "tenant__slug"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ConnectionTicket)
class ConnectionTicketAdmin(admin.ModelAdmin):
    list_display = ["user", "created_at", "expires_at", "used_at"]
    list_filter = [("used_at", admin.EmptyFieldListFilter)]
    search_fields = ["user__email"]
    readonly_fields = ["digest", "user", "created_at", "expires_at", "used_at"]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(RetentionMark)
class RetentionMarkAdmin(admin.ModelAdmin):
    list_display = ["pruned_through", "updated_at"]


@admin.register(SendMark)
class SendMarkAdmin(admin.ModelAdmin):
    """Read-only: how far durable events have been handed to the channel layer."""

    list_display = ["sent_through"]
    readonly_fields = ["sent_through"]

    def has_add_permission(self, request) -> bool:
        return False
