// Every signed-in page: start the live client and the shared UI pieces.
import { live } from "./realtime.js";
import "./notifications.js";
import "./announcements.js";
import "./chrome.js";

if (live) {
  live.on("session.ended", () => setTimeout(() => location.reload(), 1_000));
  live.on("membership.changed", (event) => {
    const here = document.body.dataset.tenant;
    if (here && !event.data.tenants.some((tenant) => tenant.slug === here)) location.reload();
  });
  live.start();
}
