"""Web Push counters, beside the platform's other metrics on /metrics."""

from prometheus_client import Counter

PUSH_SENT = Counter("liveplatform_push_sent_total", "Web Push messages the push service accepted")
PUSH_FAILED = Counter("liveplatform_push_failed_total", "Web Push sends that failed, by reason", ["reason"])
PUSH_GONE = Counter(
    "liveplatform_push_subscriptions_gone_total", "Subscriptions deleted: the push service said 404/410"
)
PUSH_SKIPPED = Counter(
    "liveplatform_push_skipped_total", "Notifications not pushed, by reason (connected, preference)", ["reason"]
)
