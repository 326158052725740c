// How one notification reads, in the bell, in toasts and on the home page: an icon for
// its category tinted by its level, the title, a short preview of the body, the actor
// and a relative time that stays current (chrome.js refreshes every time.relative-time).
import { relativeTime } from "./chrome.js";

const SVG = "http://www.w3.org/2000/svg";
// 24x24 outline paths, one per built-in category; unknown categories get the level's.
const ICONS = {
  general: "M6 16V11a6 6 0 0 1 12 0v5l2 2H4zm4 4h4",
  comments: "M4 5h16v11H8l-4 4zm4 4h8m-8 3h5",
  members: "M12 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8zm-7 8c0-3.3 3.1-6 7-6s7 2.7 7 6",
  jobs: "M12 3v3m0 12v3M3 12h3m12 0h3M6 6l2 2m8 8 2 2M6 18l2-2m8-8 2-2M12 9a3 3 0 1 0 0 6 3 3 0 0 0 0-6z",
  announcements: "M4 10v4h3l6 4V6L7 10zm13-1a4 4 0 0 1 0 6",
  info: "M12 8h.01M11 12h1v5h1M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18z",
  success: "M5 12l4 4 10-10",
  warning: "M12 3 2 20h20zm0 6v5m0 3h.01",
  error: "M6 6l12 12M18 6 6 18",
};
const LEVEL_WORDS = { info: "Info", success: "Success", warning: "Warning", error: "Error" };

/** The icon of a notification: its category's drawing in its level's colour (decorative). */
export function notificationIcon(notification) {
  const wrapper = document.createElement("span");
  wrapper.className = `notif-icon level-icon-${notification.level}`;
  wrapper.setAttribute("aria-hidden", "true");
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "18");
  svg.setAttribute("height", "18");
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", ICONS[notification.category] || ICONS[notification.level] || ICONS.info);
  path.setAttribute("fill", "none");
  path.setAttribute("stroke", "currentColor");
  path.setAttribute("stroke-width", "2");
  path.setAttribute("stroke-linecap", "round");
  path.setAttribute("stroke-linejoin", "round");
  svg.append(path);
  wrapper.append(svg);
  return wrapper;
}

/** Plain text of the server-sanitised body, for a preview (a <template> runs and loads nothing). */
export function bodyText(notification) {
  if (!notification.body_html) return "";
  const template = document.createElement("template");
  template.innerHTML = notification.body_html;
  return template.content.textContent.replace(/\s+/g, " ").trim();
}

/** Who did it, as people read it: the part of the email before the @. */
export function actorName(actor) {
  if (!actor) return "";
  const name = actor.split("@")[0];
  return name.charAt(0).toUpperCase() + name.slice(1);
}

/** The text block of a notification: title (a link when it has one), preview, meta line. */
export function notificationText(notification, { onOpen, titleClass = "feed-title" } = {}) {
  const text = document.createElement("div");
  text.className = "feed-text";
  const title = document.createElement(notification.link ? "a" : "span");
  title.className = titleClass;
  title.textContent = notification.title;
  if (notification.link) {
    title.href = notification.link;
    if (onOpen) title.addEventListener("click", onOpen);
  }
  text.append(title);
  const preview = bodyText(notification);
  if (preview) {
    const body = document.createElement("span");
    body.className = "feed-preview";
    body.dataset.testid = "notification-preview";
    body.textContent = preview;
    text.append(body);
  }
  const meta = document.createElement("span");
  meta.className = "feed-meta";
  const level = document.createElement("span");
  level.className = "visually-hidden";
  level.textContent = `${LEVEL_WORDS[notification.level] || notification.level}: `;
  meta.append(level);
  if (notification.actor) meta.append(`${actorName(notification.actor)} · `);
  meta.append(relativeTime(notification.created_at));
  text.append(meta);
  return text;
}
