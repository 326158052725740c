"""Django admin: every model is registered and its list page renders for staff."""

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

OUR_APPS = {"accounts", "realtime", "notifications", "announcements", "workers"}


def our_models():
    return [model for model in apps.get_models() if model._meta.app_label in OUR_APPS]


@pytest.mark.parametrize("model", our_models(), ids=lambda m: m._meta.label)
def test_every_model_is_registered_and_its_list_renders(admin_client, model):
    assert admin.site.is_registered(model), f"{model._meta.label} is not in Django admin"
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    assert admin_client.get(url).status_code == 200
