// The tenant home's "Live now" list: every event of this tenant and of the user, as a
// sentence, as it arrives (replayed ones included, once each).
import { live } from "./realtime.js";
import { relativeTime } from "./chrome.js";

const list = document.getElementById("live-activity");
// Protocol frames, and bookkeeping events whose effect shows elsewhere (badge, bars).
const QUIET = new Set([
  "hello",
  "ping",
  "pong",
  "error",
  "resync",
  "membership.changed",
  "notification.seen",
  "notification.counts",
  "announcement.active",
  "announcement.dismissed",
]);
const JOB_WORDS = { queued: "was queued", running: "started", succeeded: "finished", failed: "failed", cancelled: "was cancelled" };

/** The event as a sentence a person would say; never raw JSON. */
function describe(event) {
  const data = event.data || {};
  switch (event.type) {
    case "notification.created":
      return `New notification: ${data.notification?.title ?? ""}`;
    case "notification.read":
      return data.ids?.length === 1 ? "A notification was marked read" : `${data.ids?.length ?? 0} notifications were marked read`;
    case "notification.unread":
      return "A notification was marked unread";
    case "notification.archived":
      return "A notification was archived";
    case "notification.unarchived":
      return "A notification was restored";
    case "announcement.published":
      return `Announcement: ${data.title}`;
    case "announcement.updated":
      return `Announcement updated: ${data.title}`;
    case "announcement.ended":
      return "An announcement ended";
    case "job.state":
      return `${data.label} ${JOB_WORDS[data.state] ?? data.state} (${data.owner})`;
    default:
      return data.message || data.title || data.text || event.type.replace(/[._]/g, " ");
  }
}

if (list && live) {
  const empty = document.getElementById("live-activity-empty");
  live.on("*", (event) => {
    if (QUIET.has(event.type) || event.stream === undefined) return;
    if (event.tenant && event.tenant !== list.dataset.tenant) return;
    const item = document.createElement("li");
    item.dataset.eventId = `${event.stream}:${event.offset}`;
    item.dataset.type = event.type;
    item.append(describe(event), " ", relativeTime(event.ts));
    list.prepend(item);
    if (empty) empty.hidden = true;
    while (list.children.length > 50) list.lastChild.remove();
  });
}
