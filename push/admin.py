from django.contrib import admin

from .models import PushSubscription


@admin.register(PushSubscription)
class PushSubscriptionAdmin(admin.ModelAdmin):
    list_display = ["user", "device", "created_at", "last_sent_at", "failures"]
    search_fields = ["user__email", "device"]
    readonly_fields = ["endpoint", "p256dh", "auth", "created_at", "last_sent_at", "failures"]
