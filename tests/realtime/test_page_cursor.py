"""A page's socket resumes from positions taken before the page read its data."""

import pytest
from django.http import HttpResponse
from django.template import RequestContext, Template
from django.urls import path

from realtime.audience import Audience, user_group
from realtime.events import publish
from realtime.streams import decode_positions, stream_store


def page_changed_while_rendering(request):
    """A page whose data was read, then an event published before the template rendered."""
    publish("test.changed", {"state": "cancelled"}, audience=Audience.user(request.user.pk))
    return HttpResponse(Template("{{ realtime_positions }}").render(RequestContext(request)))


urlpatterns = [path("page/", page_changed_while_rendering)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.urls(__name__)
@pytest.mark.stack
def test_an_event_published_while_a_page_renders_is_replayed_to_its_socket(client, make_member):
    """Tests that the page's position in the user's stream predates the event, so the socket replays it."""
    alice = make_member(email="alice@acme.test")
    stream = user_group(alice.pk)
    publish("test.before", {}, audience=Audience.user(alice.pk))
    before = stream_store().positions([stream])[stream]
    client.force_login(alice)

    response = client.get("/page/")

    assert response.status_code == 200
    assert stream_store().positions([stream])[stream].offset == before.offset + 1, "the view's event was published"
    page = decode_positions(response.content.decode())
    assert page[stream] == before, "the page would resume after an event its data does not show"
    assert set(page) == {stream, "platform", *(f"tenant.{m.tenant_id}" for m in alice.memberships.all())}
