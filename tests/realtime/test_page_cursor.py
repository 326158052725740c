"""A page's socket resumes from a cursor taken before the page read its data."""

import pytest
from django.http import HttpResponse
from django.template import RequestContext, Template
from django.urls import path

from realtime.audience import Audience
from realtime.events import publish
from realtime.services import latest_cursor


def page_changed_while_rendering(request):
    """A page whose data was read, then an event committed before the template rendered."""
    request.read_at = latest_cursor()  # the view's data reflects events up to here
    publish("test.changed", {"state": "cancelled"}, audience=Audience.user(request.user.pk))
    return HttpResponse(Template("{{ realtime_cursor }}").render(RequestContext(request)))


urlpatterns = [path("page/", page_changed_while_rendering)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.urls(__name__)
def test_an_event_committed_while_a_page_renders_is_replayed_to_its_socket(client, make_member):
    """Tests that the page's cursor predates the event, so the socket resumes before it (not after)."""
    alice = make_member(email="alice@acme.test")
    publish("test.before", {}, audience=Audience.user(alice.pk))
    before = latest_cursor()
    client.force_login(alice)

    response = client.get("/page/")

    assert response.status_code == 200
    assert latest_cursor() > before, "the view's event was stored"
    assert int(response.content) == before, "the page would resume after an event its data does not show"
