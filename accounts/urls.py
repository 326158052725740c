from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("welcome/", views.NoTenantView.as_view(), name="no_tenant"),
    path("platform/", views.PlatformHomeView.as_view(), name="platform_home"),
    path("t/<slug:tenant_slug>/", views.TenantHomeView.as_view(), name="tenant_home"),
    path("t/<slug:tenant_slug>/members/", views.MembersView.as_view(), name="tenant_members"),
    path("t/<slug:tenant_slug>/api-keys/", views.ApiKeysView.as_view(), name="tenant_api_keys"),
]
