"""System check: say at start-up when Web Push is off because it has no keys."""

from django.core.checks import Warning, register


@register()
def push_configured(app_configs, **kwargs):
    """Warn (once, at start-up) that production without VAPID keys sends no push."""
    from .vapid import vapid_keys

    if vapid_keys() is not None:
        return []
    return [
        Warning(
            "Web Push is off: WEBPUSH_VAPID_PUBLIC_KEY and WEBPUSH_VAPID_PRIVATE_KEY are not set.",
            hint="Run `manage.py generate_vapid_keys` and set both (and WEBPUSH_VAPID_SUBJECT, a mailto: address).",
            id="push.W001",
        )
    ]
