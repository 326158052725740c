from django.urls import path

from . import views

urlpatterns = [
    path("t/<slug:tenant_slug>/notifications/", views.InboxView.as_view(), name="notifications_inbox"),
    path(
        "t/<slug:tenant_slug>/notifications/preferences/",
        views.PreferencesView.as_view(),
        name="notifications_preferences",
    ),
]
