// The page chrome on every signed-in page: the collapsed menu on phones, the header's
// "jobs running" indicator, and relative times ("2 min ago") that stay current.
import { live } from "./realtime.js";

const FINAL_JOB_STATES = new Set(["succeeded", "failed", "cancelled"]);

function setupMenu() {
  const toggle = document.getElementById("nav-toggle");
  const header = toggle?.closest(".topbar");
  if (!toggle || !header) return;
  const set = (open) => {
    header.classList.toggle("nav-open", open);
    toggle.setAttribute("aria-expanded", String(open));
  };
  toggle.addEventListener("click", () => set(!header.classList.contains("nav-open")));
  header.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && header.classList.contains("nav-open")) {
      set(false);
      toggle.focus();
    }
  });
}

function setupJobsIndicator() {
  const link = document.getElementById("jobs-running");
  if (!link || !live) return;
  const tenant = document.body.dataset.tenant;
  const running = new Set((link.dataset.ids || "").split(",").filter(Boolean).map(Number));
  const label = link.querySelector(".jobs-running-label");
  const render = () => {
    link.hidden = running.size === 0;
    label.textContent = running.size === 1 ? "1 job running" : `${running.size} jobs running`;
  };
  const track = (event) => {
    if (event.tenant && tenant && event.tenant !== tenant) return;
    const job = event.data;
    if (FINAL_JOB_STATES.has(job.state)) running.delete(job.id);
    else running.add(job.id);
    render();
  };
  live.on("job.state", track);
  live.on("job.progress", track);
  render();
}

const UNITS = [
  ["year", 365 * 24 * 3600],
  ["month", 30 * 24 * 3600],
  ["week", 7 * 24 * 3600],
  ["day", 24 * 3600],
  ["hour", 3600],
  ["minute", 60],
];
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto", style: "short" });

/** "just now", "2 min. ago", "yesterday": how long ago ``iso`` was, as people say it. */
export function timeAgo(iso, now = Date.now()) {
  const seconds = Math.round((Date.parse(iso) - now) / 1000);
  if (Math.abs(seconds) < 45) return "just now";
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size || unit === "minute") return relative.format(Math.round(seconds / size), unit);
  }
  return "just now";
}

/** A <time> that says how long ago, with the exact moment as its tooltip; kept current. */
export function relativeTime(iso) {
  const element = document.createElement("time");
  element.dateTime = iso;
  element.className = "relative-time";
  element.title = new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  element.textContent = timeAgo(iso);
  return element;
}

function refreshRelativeTimes() {
  for (const element of document.querySelectorAll("time.relative-time")) {
    const text = timeAgo(element.dateTime);
    if (element.textContent !== text) element.textContent = text;
  }
}

/** Destructive forms carry data-confirm: ask before they submit. */
function setupConfirmations() {
  document.addEventListener("submit", (event) => {
    const form = event.target;
    const question = form instanceof HTMLFormElement ? form.dataset.confirm : undefined;
    if (question && !window.confirm(question)) event.preventDefault();
  });
}

/** Server-rendered UTC moments (<time data-local>) shown in the browser's zone, with the zone named. */
function localiseTimes() {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  for (const element of document.querySelectorAll("time[data-local]")) {
    const moment = new Date(element.dateTime);
    if (Number.isNaN(moment.getTime())) continue;
    element.textContent = moment.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }
  for (const element of document.querySelectorAll("[data-local-zone]")) element.textContent = `(${zone})`;
}

setupMenu();
setupConfirmations();
localiseTimes();
setupJobsIndicator();
refreshRelativeTimes();
setInterval(refreshRelativeTimes, 15_000);
// A section re-rendered by the server (home.js) has fresh UTC times to show.
document.addEventListener("chrome:refresh", () => {
  localiseTimes();
  refreshRelativeTimes();
});
