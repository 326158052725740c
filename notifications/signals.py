"""Signals other apps listen to, so that notifications needs no import of them.

``notifications_created`` is sent once the transaction that created notifications has
committed, with ``tenant`` and ``notifications`` (the new rows). Web Push (push/)
listens to it.
"""

from django.dispatch import Signal

notifications_created = Signal()
