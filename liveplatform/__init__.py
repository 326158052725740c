"""The Django project package (named liveplatform/, since platform/ would shadow the stdlib)."""

from .celery import app as celery_app

__all__ = ("celery_app",)
