"""Prometheus metrics of the real-time core (exposed by the metrics endpoint)."""

from prometheus_client import Counter, Gauge, Histogram

EVENTS_PUBLISHED = Counter("liveplatform_events_published_total", "Events published, by type", ["type"])
EVENTS_DELIVERED = Counter("liveplatform_events_delivered_total", "Event frames sent to sockets, by type", ["type"])
EVENTS_REPLAYED = Counter("liveplatform_events_replayed_total", "Durable events sent by replay on reconnect")
EVENTS_REPAIRED = Counter(
    "liveplatform_events_repaired_total", "Durable events resent because the channel layer dropped them"
)
RESYNCS = Counter("liveplatform_resyncs_total", "Resync frames sent (cursor too old or unknown)")
PUBLISH_FAILURES = Counter("liveplatform_publish_failures_total", "Live sends that failed (clients replay them)")
OPEN_SOCKETS = Gauge("liveplatform_open_sockets", "Open WebSockets, by route", ["route"], multiprocess_mode="livesum")
CONNECTS = Counter("liveplatform_socket_connects_total", "Accepted socket connections, by route", ["route"])
DISCONNECTS = Counter("liveplatform_socket_disconnects_total", "Socket disconnections, by route", ["route"])
REFUSED = Counter("liveplatform_socket_refused_total", "Refused handshakes, by reason", ["reason"])
PUBLISH_TO_SEND = Histogram(
    "liveplatform_publish_to_send_seconds",
    "Time from the event's timestamp until a process had written it to all its sockets (once per event and process)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

# Deployment and observability (liveplatform/observability.py serves these).
OVER_CAPACITY_DROPS = Counter(
    "liveplatform_channel_layer_dropped_total",
    "Messages dropped because a socket's queue was full (core layer: where group_send ran; fanout: receiving process)",
)
API_REQUESTS = Counter(
    "liveplatform_api_requests_total", "HTTP API requests, by method and status", ["method", "status"]
)
API_LATENCY = Histogram(
    "liveplatform_api_request_seconds",
    "HTTP API request duration, by method",
    ["method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
