// The tenant home page stays live: its sections are re-rendered by the server
// (?part=live) shortly after any event that changes them; running jobs' bars move
// through jobs.js, which owns the #jobs table on this page too.
import { live } from "./realtime.js";
import { notificationIcon } from "./feed.js";

const home = document.getElementById("home");
const REFRESH_AFTER_MS = 300; // several events in a burst cause one refresh
const REFRESHING = [
  "notification.created",
  "notification.read",
  "notification.unread",
  "notification.archived",
  "notification.unarchived",
  "notification.counts",
  "announcement.published",
  "announcement.updated",
  "announcement.ended",
  "announcement.dismissed",
  "job.state",
  "membership.changed",
];

function drawIcons(root) {
  for (const slot of root.querySelectorAll(".notif-icon[data-category]:empty")) {
    slot.replaceWith(notificationIcon({ category: slot.dataset.category, level: slot.dataset.level }));
  }
}

if (home && live) {
  let timer = null;
  const refresh = async () => {
    const response = await fetch(home.dataset.refreshUrl, { credentials: "same-origin" });
    if (!response.ok) return;
    const template = document.createElement("template");
    template.innerHTML = await response.text();
    drawIcons(template.content);
    for (const slot of template.content.querySelectorAll("[id$='-slot']")) {
      document.getElementById(slot.id)?.replaceWith(slot);
    }
    document.dispatchEvent(new CustomEvent("chrome:refresh"));
  };
  const soon = (event) => {
    if (event.tenant && event.tenant !== home.dataset.tenant) return;
    if (event.type === "job.state" && !["succeeded", "failed", "cancelled"].includes(event.data.state)) return;
    clearTimeout(timer);
    timer = setTimeout(() => refresh().catch((error) => console.error(error)), REFRESH_AFTER_MS);
  };
  for (const type of REFRESHING) live.on(type, soon);
  drawIcons(home);
}
