"""Channel layers: the default ``PumpedRedisChannelLayer``, and a fan-out layer.

``PumpedRedisChannelLayer`` (``CHANNEL_LAYER_BACKEND=redis``, the default) is
channels-redis's ``RedisChannelLayer`` with a receive loop a closing socket cannot
cancel and fewer Redis round trips; see its docstring. ``GroupFanoutChannelLayer``
(``CHANNEL_LAYER_BACKEND=fanout``, ``realtime.layers.fanout``) fans a group message
out inside each server process over Redis pub/sub.
"""

from .fanout import DEFAULT_CAPACITY, GroupFanoutChannelLayer, GroupFanoutLoopLayer
from .group_calls import join_groups, leave_groups, send_to_groups
from .pump import ForeignChannel, ReceiveAborted
from .pumped import PumpedRedisChannelLayer

__all__ = [
    "DEFAULT_CAPACITY",
    "ForeignChannel",
    "GroupFanoutChannelLayer",
    "GroupFanoutLoopLayer",
    "PumpedRedisChannelLayer",
    "ReceiveAborted",
    "join_groups",
    "leave_groups",
    "send_to_groups",
]
