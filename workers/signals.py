"""Signals of the workers app."""

from django.dispatch import Signal

# Sent once, after commit, when a job reaches a final state: kwargs ``job``.
job_finished = Signal()
