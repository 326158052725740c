"""Django admin for jobs: the traceback is here, for platform staff."""

from django.contrib import admin

from .models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "kind",
        "tenant",
        "owner",
        "state",
        "progress_done",
        "progress_total",
        "attempt",
        "created_at",
    )
    list_filter = ("state", "kind", "tenant")
    search_fields = ("owner__email", "task_id")
    raw_id_fields = ("owner", "retry_of")
    readonly_fields = (
        "task_id",
        "created_at",
        "started_at",
        "finished_at",
        "heartbeat_at",
        "cancel_requested_at",
        "error",
        "traceback",
        "result",
        "result_file",
    )
