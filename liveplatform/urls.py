"""Root URLs. Tenant pages live under /t/<tenant-slug>/."""

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.utils.functional import lazy
from django.views.generic import RedirectView

from push.views import service_worker

from .api import api
from .health import healthz, readyz
from .observability import metrics_view

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    # Browsers ask for /favicon.ico on pages that name no icon (the admin, plain-text answers);
    # lazy: under production the hashed name exists only once collectstatic has run.
    path("favicon.ico", RedirectView.as_view(url=lazy(static, str)("img/favicon.svg"), permanent=True)),
    # The service worker's scope is the folder it is served from: the root, for every page.
    path("sw.js", service_worker, name="service_worker"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/v1/", api.urls),
    path("", include("accounts.urls")),
    path("", include("notifications.urls")),
    path("", include("announcements.urls")),
    path("", include("workers.urls")),
]

handler400 = "liveplatform.errors.bad_request"
handler403 = "liveplatform.errors.permission_denied"
handler404 = "liveplatform.errors.page_not_found"
handler500 = "liveplatform.errors.server_error"
