from django.contrib import admin

from .models import ConnectionTicket, OutboxEvent


@admin.register(OutboxEvent)
class OutboxEventAdmin(admin.ModelAdmin):
    """Durable events waiting for their stream, read-only: rows here for long mean Redis is refusing publishes."""

    list_display = ["id", "event_type", "stream", "created_at"]
    list_filter = ["event_type"]
    search_fields = ["stream", "event_type"]
    readonly_fields = ["stream", "event_type", "frame_rest", "extra", "idempotency_key", "created_at"]

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
