from django.urls import path

from . import views

urlpatterns = [
    path("t/<slug:tenant_slug>/jobs/", views.JobListView.as_view(), name="job_list"),
    path("t/<slug:tenant_slug>/jobs/start/<slug:kind>/", views.StartJobView.as_view(), name="job_start"),
    path("t/<slug:tenant_slug>/jobs/<int:job_id>/", views.JobDetailView.as_view(), name="job_detail"),
    path("t/<slug:tenant_slug>/jobs/<int:job_id>/cancel/", views.CancelJobView.as_view(), name="job_cancel"),
    path("t/<slug:tenant_slug>/jobs/<int:job_id>/retry/", views.RetryJobView.as_view(), name="job_retry"),
    path("t/<slug:tenant_slug>/jobs/<int:job_id>/download/", views.DownloadJobView.as_view(), name="job_download"),
]
