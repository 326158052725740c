"""Composer pages: per tenant for its admins, and platform-wide for staff."""

from django.urls import path

from . import views

app_name = "announcements"

urlpatterns = [
    path("t/<slug:tenant_slug>/announcements/", views.AnnouncementListView.as_view(), name="list"),
    path("t/<slug:tenant_slug>/announcements/new/", views.AnnouncementCreateView.as_view(), name="new"),
    path("t/<slug:tenant_slug>/announcements/preview/", views.AnnouncementPreviewView.as_view(), name="preview"),
    path("t/<slug:tenant_slug>/announcements/<int:pk>/edit/", views.AnnouncementEditView.as_view(), name="edit"),
    path("t/<slug:tenant_slug>/announcements/<int:pk>/end/", views.AnnouncementEndView.as_view(), name="end"),
    path("t/<slug:tenant_slug>/announcements/<int:pk>/delete/", views.AnnouncementDeleteView.as_view(), name="delete"),
    path("platform/announcements/", views.PlatformAnnouncementListView.as_view(), name="platform_list"),
    path("platform/announcements/new/", views.PlatformAnnouncementCreateView.as_view(), name="platform_new"),
    path("platform/announcements/preview/", views.PlatformAnnouncementPreviewView.as_view(), name="platform_preview"),
    path("platform/announcements/<int:pk>/edit/", views.PlatformAnnouncementEditView.as_view(), name="platform_edit"),
    path("platform/announcements/<int:pk>/end/", views.PlatformAnnouncementEndView.as_view(), name="platform_end"),
    path(
        "platform/announcements/<int:pk>/delete/",
        views.PlatformAnnouncementDeleteView.as_view(),
        name="platform_delete",
    ),
]
