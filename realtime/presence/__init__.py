"""Presence: which members of a tenant are online now, across every web process.

``store``: the entries in Redis and the per-tick script; ``tracker``: one process's
sockets, counted and written once a second; ``services``: reads for pages and the API,
filtered through tenant membership. The frame is described in docs/protocol.md.
"""
