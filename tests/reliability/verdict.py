"""The fault tests' verdict: every client got every event of its streams once, in order, as the streams hold them."""

from __future__ import annotations

import time

from realtime.streams import Entry, Position, RedisStreamStore
from tests.reliability.clients import ClientState, Fleet
from tests.reliability.harness import OwnStack
from tests.support.processes import wait_for


def history(store: RedisStreamStore, stream: str, since: Position) -> list[Entry] | None:
    """The stream's entries after ``since`` up to its top, or None if the history no longer has them all."""
    top = store.positions([stream])[stream]
    recovery = store.recover(stream, since, max(1, top.offset - since.offset))
    return recovery.entries if recovery.recovered else None


def missed(store: RedisStreamStore, since: dict[str, Position]) -> dict[str, list[Entry]]:
    """Per stream, every entry after the position in ``since``: what a client standing there must be sent."""
    found = {}
    for stream, position in since.items():
        entries = history(store, stream, position)
        assert entries is not None, f"{stream}: the history no longer reaches back to {position}"
        found[stream] = entries
    return found


def outbox_rows() -> int:
    """Durable events committed but not yet in their stream (a killed producer, a refused publish)."""
    from realtime.models import OutboxEvent

    return OutboxEvent.objects.count()


def wait_until_published(
    store: RedisStreamStore, streams: set[str], quiet_for: float = 3.0, timeout: float = 120.0
) -> dict[str, Position]:
    """Wait until nothing more is being published to ``streams``; return their tops.

    Publishers stop before the verdict, but work they started may still publish:
    tasks waiting in the broker, jobs finishing, an API call in flight, rows the
    outbox relay has yet to publish. The expectations are read from the streams
    only once no top has moved for ``quiet_for`` seconds and the outbox is empty, or
    a client would be blamed for missing an event published a moment later.
    """
    seen = {"tops": store.positions(streams), "since": time.monotonic()}

    def quiet() -> bool:
        tops = store.positions(streams)
        if tops != seen["tops"] or outbox_rows():
            seen.update(tops=tops, since=time.monotonic())
        return time.monotonic() - seen["since"] >= quiet_for

    wait_for(quiet, timeout=timeout, interval=0.25, message=f"no new event for {quiet_for}s, outbox empty")
    return seen["tops"]


def wait_until_caught_up(fleet: Fleet, timeout: float = 90.0) -> dict[str, Position]:
    """Wait until every client stands at the top of every stream it follows; return the tops."""
    tops = wait_until_published(fleet.store, set().union(*(c.streams for c in fleet.clients)))

    def caught_up() -> bool:
        return all(c.positions.get(stream) == tops[stream] for c in fleet.clients for stream in c.streams)

    try:
        wait_for(caught_up, timeout=timeout, interval=0.5, message="every client caught up")
    except TimeoutError:
        pass  # the assertion below says who is missing what
    return tops


def stream_problems(client: ClientState, stream: str, top: Position, store: RedisStreamStore, lost_ok: bool) -> list:
    """What is wrong with one client's events of one stream (empty: exactly the stream, once, in order).

    Each run must be consecutive offsets from where the client entered it; the last
    run must end at the stream's top and hold exactly the stream's history from its
    entry on (the same frames, in offset order). Without ``lost_ok`` the client never
    left its page's epoch and position; with it (Redis restarted without its data), it
    may enter the stream's one new epoch once, as told (resync or a new epoch's event).
    """
    problems = []
    runs = client.runs.get(stream, [])
    for run in runs:
        want = list(range(run.entered + 1, run.entered + 1 + len(run.offsets)))
        if run.offsets != want:
            problems.append(f"{stream}@{run.epoch}: offsets {run.offsets[:10]}… not consecutive from {run.entered}")
    later = runs[1:]
    if not lost_ok and later:
        problems.append(f"{stream}: left its page's position: {[(r.how, r.epoch, r.entered) for r in later]}")
    if lost_ok and (len({run.epoch for run in runs}) > 2 or any(r.how not in ("resync", "new_epoch") for r in later)):
        problems.append(f"{stream}: more than one new epoch: {[(r.how, r.epoch, r.entered) for r in later]}")
    final = client.positions.get(stream)
    if final != top:
        problems.append(f"{stream}: stands at {final}, the stream's top is {top}")
        return problems
    last = runs[-1]
    entries = history(store, stream, Position(last.entered, last.epoch))
    if entries is not None and [entry.frame(stream, last.epoch) for entry in entries] != last.texts:
        problems.append(f"{stream}: the frames received differ from the stream's history after {last.entered}")
    return problems


def assert_exact_sequences(fleet: Fleet, lost_ok: bool = False) -> dict[str, int]:
    """Per client and stream: every event of the stream after the page's position, once each, in offset order.

    ``lost_ok``: Redis lost its data (a restart), so each stream may start one new epoch,
    and a client is told to resync it once (``history_lost``), then follows it exactly.
    """
    tops = wait_until_caught_up(fleet)
    problems = []
    for client in fleet.clients:
        foreign = set(client.runs) - client.streams
        if foreign:
            problems.append(f"{client.user.email}: events of streams not theirs: {sorted(foreign)}")
        for stream in sorted(client.streams):
            found = stream_problems(client, stream, tops[stream], fleet.store, lost_ok)
            problems.extend(f"{client.user.email}: {problem}" for problem in found)
        told = [data for data in client.resyncs if not lost_ok or data.get("reason") != "history_lost"]
        if told:
            problems.append(f"{client.user.email}: told to resync {told}")
    assert not problems, "\n".join(problems[:60])
    per_client = [client.accepted for client in fleet.clients]
    return {
        "clients": len(fleet.clients),
        "events_per_client_min": min(per_client),
        "events_per_client_max": max(per_client),
        "duplicates_dropped": sum(c.raw - c.accepted - c.gaps for c in fleet.clients),
        "gaps_resumed": sum(c.gaps for c in fleet.clients),
        "resyncs": sum(len(c.resyncs) for c in fleet.clients),
        "reconnects": sum(len(c.opened) - 1 for c in fleet.clients),
    }


def error_lines(text: str) -> list[str]:
    """Log lines at ERROR or worse, and tracebacks."""
    return [line for line in text.splitlines() if " ERROR " in line or "Traceback" in line or " CRITICAL " in line]


def describe(fleet: Fleet, stack: OwnStack | None = None) -> str:
    """What each client and the stack's logs look like (printed when a wait fails)."""
    lines = [
        f"{c.user.email}: connected={c.connected} opens={len(c.opened)} last_open={c.opened[-1:]} "
        f"closes={c.closes[-4:]} received={c.accepted} positions={c.token()}"
        for c in fleet.clients
    ]
    if stack is not None:
        lines += error_lines(stack.logs())[-40:]
        lines.append(stack.daphne.output()[-3000:])
    return "\n".join(lines)
