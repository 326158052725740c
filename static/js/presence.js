// Who of the tenant is online, kept live: the Members page's dots and the home page's
// "Online now" list. On every (re)connect the page sends `presence.watch`; the server
// answers with the full list, then sends diffs of who joined and who left (at most
// about one frame per second per tenant). Protocol: docs/protocol.md, "Presence".
import { live } from "./realtime.js";

const roots = [...document.querySelectorAll("[data-presence-tenant]")];
const tenant = roots[0]?.dataset.presenceTenant;
const me = Number(document.body.dataset.user);
const online = new Map(); // user id -> {email, since (Date)}

function sinceText(since) {
  return since.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function render() {
  for (const dot of document.querySelectorAll("[data-presence-user]")) {
    const member = online.get(Number(dot.dataset.presenceUser));
    dot.classList.toggle("online", Boolean(member));
    const label = member ? `online since ${sinceText(member.since)}` : "offline";
    dot.setAttribute("aria-label", label);
    dot.title = label;
  }
  const count = online.size;
  for (const element of document.querySelectorAll("[data-presence-count]")) {
    element.textContent =
      count === 0 ? "Nobody is online right now." : count === 1 ? "1 member online now." : `${count} members online now.`;
  }
  for (const list of document.querySelectorAll("[data-presence-list]")) {
    const items = [...online.entries()]
      .sort(([a, x], [b, y]) => (a === me ? -1 : b === me ? 1 : x.since - y.since))
      .map(([id, member]) => {
        const item = document.createElement("li");
        item.dataset.user = id;
        const dot = document.createElement("span");
        dot.className = "presence-dot online";
        dot.setAttribute("aria-hidden", "true");
        const name = document.createElement("span");
        name.textContent = id === me ? `${member.email} (you)` : member.email;
        const time = document.createElement("time");
        time.dateTime = member.since.toISOString();
        time.textContent = `since ${sinceText(member.since)}`;
        item.append(dot, name, time);
        return item;
      });
    list.replaceChildren(...items);
  }
}

let listedAt = null; // at_ms of the last full list: diffs handed out before it are in it
let early = []; // diffs that arrived before the full list they follow

function apply(event) {
  if (event.tenant !== tenant) return;
  const data = event.data;
  if (data.full) {
    online.clear();
    for (const member of data.online) online.set(member.user, { email: member.email, since: new Date(member.since_ms) });
    listedAt = data.at_ms;
    for (const diff of early) if (diff.data.at_ms >= listedAt) change(diff);
    early = [];
  } else if (listedAt === null) {
    early.push(event);
    return;
  } else if (data.at_ms >= listedAt) {
    change(event);
  }
  render();
}

function change(event) {
  for (const id of event.data.left) online.delete(id);
  for (const member of event.data.joined) {
    online.set(member.user, { email: member.email, since: new Date(member.since_ms) });
  }
}

if (tenant && live) {
  // Every (re)connect: watch again; the server answers with the full list, then diffs.
  live.on("hello", () => {
    listedAt = null;
    early = [];
    live.send({ type: "presence.watch", tenant });
  });
  live.on("presence", apply);
}
