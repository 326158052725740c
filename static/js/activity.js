// The tenant home's live activity feed: shows every event of this tenant and of the user.
import { live } from "./realtime.js";

const list = document.getElementById("live-activity");
const QUIET = new Set(["hello", "ping", "pong", "error", "resync", "membership.changed"]);

function describe(event) {
  const data = event.data || {};
  return data.title || data.message || data.text || JSON.stringify(data).slice(0, 120);
}

if (list && live) {
  live.on("*", (event) => {
    if (QUIET.has(event.type) || event.stream === undefined) return;
    if (event.tenant && event.tenant !== list.dataset.tenant) return;
    const item = document.createElement("li");
    item.dataset.eventId = `${event.stream}:${event.offset}`;
    item.dataset.type = event.type;
    const kind = document.createElement("code");
    kind.textContent = event.type;
    const text = document.createElement("span");
    text.textContent = ` ${describe(event)}`;
    const time = document.createElement("time");
    time.dateTime = event.ts;
    time.textContent = new Date(event.ts).toLocaleTimeString();
    item.append(time, " ", kind, text);
    list.prepend(item);
    while (list.children.length > 50) list.lastChild.remove();
  });
}
