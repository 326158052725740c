// The notification bell, its badge, toasts and the document title, on every signed-in page.
//
// The server is the authority on counts: every notification event carries the new
// {unread, unseen, version} of its tenant, and a socket gets them per tenant on
// connect. We keep, per tenant, the counts with the highest version, so frames
// that arrive late or twice can never make the badge drift.
//
// The bell shows the tenant of the page (or, off tenant pages, the one used last).
// Other tenants' news shows as a dot on the tenant switcher and a count beside
// each tenant in its menu; their notifications never pop up as toasts here. The
// server only ever sends a user their own tenants' counts.
import { live } from "./realtime.js";
import { notificationIcon, notificationText } from "./feed.js";

const API = "/api/v1/notifications";
const TOAST_MS = 8_000;
const TOAST_MAX_AGE_MS = 120_000; // replayed old events update counts but do not pop up
const MAX_TOASTS = 4;
const BELL_ITEMS = 8;

const bell = document.getElementById("notification-bell");
export const bellTenant = bell ? bell.dataset.tenant : null;
const counts = new Map(); // tenant slug -> {unread, unseen, version}
const baseTitle = document.title.replace(/^\(\d+\+?\) /, "");

function csrfToken() {
  const cookie = document.cookie.split("; ").find((part) => part.startsWith("csrftoken="));
  return cookie ? decodeURIComponent(cookie.split("=")[1]) : "";
}

/** Call the notifications API as the logged-in user (session cookie + CSRF token). */
export async function api(path, { method = "GET", tenant, body, params = {}, keepalive = false } = {}) {
  const url = new URL(API + path, location.origin);
  if (tenant) url.searchParams.set("tenant", tenant);
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(key, value);
  }
  const response = await fetch(url, {
    method,
    credentials: "same-origin",
    keepalive,
    headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}`);
  const result = await response.json();
  if (tenant && result && typeof result.version === "number") applyCounts(tenant, result);
  else if (tenant && result && result.counts) applyCounts(tenant, result.counts);
  return result;
}

/** Keep ``next`` if it is at least as new as what we show; re-render. Returns whether it applied. */
export function applyCounts(tenant, next) {
  if (!tenant || !next) return false;
  const current = counts.get(tenant);
  if (current && next.version < current.version) return false;
  counts.set(tenant, { unread: next.unread, unseen: next.unseen, version: next.version });
  render(tenant);
  document.dispatchEvent(new CustomEvent("notifications:counts", { detail: { tenant, counts: counts.get(tenant) } }));
  return true;
}

export function countsOf(tenant) {
  return counts.get(tenant) ?? { unread: 0, unseen: 0, version: 0 };
}

function render(tenant) {
  if (tenant === bellTenant) renderBell();
  else renderElsewhere();
}

function renderBell() {
  if (!bell) return;
  const { unread } = countsOf(bellTenant);
  const badge = bell.querySelector(".badge");
  const before = badge.hidden ? 0 : Number.parseInt(badge.textContent, 10) || 0;
  badge.textContent = unread > 99 ? "99+" : String(unread);
  badge.hidden = unread === 0;
  bell.dataset.unread = String(unread);
  const label = `Notifications in ${bell.dataset.tenantName}: ${unread} unread`;
  bell.querySelector(".bell-button").setAttribute("aria-label", label);
  document.title = unread > 0 ? `(${unread > 99 ? "99+" : unread}) ${baseTitle}` : baseTitle;
  if (unread !== before) {
    const announcer = document.getElementById("notification-announcer");
    if (announcer) announcer.textContent = unread === 1 ? "1 unread notification" : `${unread} unread notifications`;
  }
}

function renderElsewhere() {
  const switcher = document.getElementById("tenant-switcher");
  if (!switcher) return;
  let anyElsewhere = false;
  for (const [tenant, value] of counts) {
    if (tenant === bellTenant) continue;
    const link = switcher.querySelector(`a[href="/t/${CSS.escape(tenant)}/"]`);
    if (link) {
      let pill = link.querySelector(".tenant-unread");
      if (!pill) {
        pill = document.createElement("span");
        pill.className = "tenant-unread";
        link.append(" ", pill);
      }
      pill.textContent = value.unread ? String(value.unread) : "";
      pill.hidden = !value.unread;
      pill.setAttribute("aria-label", `${value.unread} unread`);
    }
    if (value.unread > 0) anyElsewhere = true;
  }
  const summary = switcher.querySelector("summary");
  let dot = summary.querySelector(".tenant-dot");
  if (!dot) {
    dot = document.createElement("span");
    dot.className = "tenant-dot";
    dot.dataset.testid = "tenant-dot";
    dot.setAttribute("role", "img");
    dot.setAttribute("aria-label", "Unread notifications in another tenant");
    summary.append(dot);
  }
  dot.hidden = !anyElsewhere;
}

// ------------------------------------------------------------------------------
// Toasts
// ------------------------------------------------------------------------------
function showToast(notification) {
  const container = document.getElementById("toasts");
  if (!container) return;
  while (container.querySelectorAll(".toast").length >= MAX_TOASTS) container.querySelector(".toast").remove();
  const toast = document.createElement("div");
  toast.className = `toast toast-${notification.level}`;
  toast.dataset.testid = "notification-toast";
  toast.dataset.notificationId = String(notification.id);
  // #toasts is the polite live region: screen readers announce each toast once.
  toast.append(
    notificationIcon(notification),
    notificationText(notification, {
      titleClass: "toast-title",
      onOpen: () => markRead(notification.id, { keepalive: true }),
    }),
  );
  const read = document.createElement("button");
  read.type = "button";
  read.className = "linklike toast-read";
  read.textContent = "Mark read";
  read.setAttribute("aria-label", `Mark “${notification.title}” read`);
  read.addEventListener("click", () => {
    markRead(notification.id);
    toast.remove();
  });
  toast.append(read);
  const close = document.createElement("button");
  close.type = "button";
  close.className = "toast-close";
  close.setAttribute("aria-label", "Dismiss");
  close.textContent = "×";
  close.addEventListener("click", () => toast.remove());
  toast.append(close);
  container.append(toast);
  avoidActions(container);
  let timer = setTimeout(() => toast.remove(), TOAST_MS);
  // A toast being read (hovered or focused) stays until it is left.
  const hold = () => clearTimeout(timer);
  const release = () => {
    clearTimeout(timer);
    timer = setTimeout(() => toast.remove(), TOAST_MS);
  };
  toast.addEventListener("mouseenter", hold);
  toast.addEventListener("focusin", hold);
  toast.addEventListener("mouseleave", release);
  toast.addEventListener("focusout", release);
}

/**
 * Toasts never cover something to click: if the stack overlaps a button or link of the
 * page (a job row's Download or Retry), it moves to the other bottom corner.
 */
function avoidActions(container) {
  const overlaps = () => {
    const box = container.getBoundingClientRect();
    return [...document.querySelectorAll("main button, main a, main input, main select")].some((element) => {
      const r = element.getBoundingClientRect();
      return r.width > 0 && r.left < box.right && r.right > box.left && r.top < box.bottom && r.bottom > box.top;
    });
  };
  container.classList.remove("toasts-left");
  if (overlaps()) {
    container.classList.add("toasts-left");
    if (overlaps()) container.classList.remove("toasts-left");
  }
}

// ------------------------------------------------------------------------------
// The dropdown
// ------------------------------------------------------------------------------
export function markRead(id, { keepalive = false } = {}) {
  return api(`/${id}/read`, { method: "POST", tenant: bellTenant, keepalive }).catch((error) => console.error(error));
}

function bellItem(notification) {
  const item = document.createElement("li");
  item.className = `bell-item level-${notification.level}${notification.read_at ? "" : " unread"}`;
  item.dataset.id = String(notification.id);
  item.dataset.testid = "bell-item";
  item.append(
    notificationIcon(notification),
    notificationText(notification, {
      titleClass: "bell-item-title",
      onOpen: () => markRead(notification.id, { keepalive: true }),
    }),
  );
  if (!notification.read_at) {
    const read = document.createElement("button");
    read.type = "button";
    read.className = "linklike bell-item-read";
    read.textContent = "Mark read";
    read.setAttribute("aria-label", `Mark “${notification.title}” read`);
    read.addEventListener("click", () => markRead(notification.id));
    item.append(read);
  }
  return item;
}

/**
 * Unread notifications of a category that asks for grouping (the bell's
 * data-grouped-categories) fold into one row: "3 new in Members", newest first,
 * with the items one click away. Read ones and other categories stay one per row.
 */
function bellRows(items) {
  // "slug=Label|slug=Label", from notifications/categories.py (group=True).
  const grouped = new Map(
    (bell.dataset.groupedCategories || "").split("|").filter(Boolean).map((pair) => pair.split("=")),
  );
  const groups = new Map();
  for (const notification of items) {
    if (!notification.read_at && grouped.has(notification.category)) {
      if (!groups.has(notification.category)) groups.set(notification.category, []);
      groups.get(notification.category).push(notification);
    }
  }
  const rows = [];
  const done = new Set();
  for (const notification of items) {
    const group = groups.get(notification.category);
    if (!notification.read_at && group && group.length > 1) {
      if (done.has(notification.category)) continue;
      done.add(notification.category);
      rows.push(groupRow(grouped.get(notification.category), group));
    } else {
      rows.push(bellItem(notification));
    }
  }
  return rows;
}

function groupRow(label, members) {
  const row = document.createElement("li");
  row.className = `bell-group unread level-${members[0].level}`;
  row.dataset.category = members[0].category;
  row.dataset.testid = "bell-group";
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  summary.append(notificationIcon(members[0]));
  const text = document.createElement("span");
  text.className = "feed-text";
  const title = document.createElement("span");
  title.className = "bell-item-title";
  title.textContent = `${members.length} new in ${label}`;
  const preview = document.createElement("span");
  preview.className = "feed-preview";
  preview.textContent = members.map((n) => n.title).join(" · ");
  text.append(title, preview);
  summary.append(text);
  const list = document.createElement("ul");
  list.className = "bell-group-items";
  list.append(...members.map(bellItem));
  details.append(summary, list);
  row.append(details);
  return row;
}

function setBellItemRead(ids, read) {
  if (!bell) return;
  for (const id of ids) {
    const item = bell.querySelector(`.bell-item[data-id="${id}"]`);
    if (!item) continue;
    item.classList.toggle("unread", !read);
    const button = item.querySelector(".bell-item-read");
    if (read && button) button.remove();
  }
  for (const group of bell.querySelectorAll(".bell-group")) {
    group.classList.toggle("unread", Boolean(group.querySelector(".bell-item.unread")));
  }
}

async function fillPanel() {
  const list = bell.querySelector(".bell-list");
  const page = await api("", { tenant: bellTenant, params: { state: "all", limit: BELL_ITEMS } });
  list.replaceChildren(...bellRows(page.items));
  if (!page.items.length) {
    const empty = document.createElement("li");
    empty.className = "bell-empty muted";
    empty.textContent = "No notifications yet.";
    list.append(empty);
  }
  const unseen = page.items.filter((n) => !n.seen_at).map((n) => n.id);
  if (unseen.length) await api("/seen", { method: "POST", tenant: bellTenant, body: { ids: unseen } });
}

function setupBell() {
  if (!bell) return;
  const button = bell.querySelector(".bell-button");
  const panel = bell.querySelector(".bell-panel");
  const open = () => {
    // On phones the panel is a sheet fixed under the header, whatever its height.
    const header = bell.closest(".topbar");
    if (header) panel.style.setProperty("--bell-top", `${Math.round(header.getBoundingClientRect().bottom) + 6}px`);
    panel.hidden = false;
    button.setAttribute("aria-expanded", "true");
    fillPanel().catch((error) => console.error(error));
  };
  const close = ({ focus = false } = {}) => {
    if (panel.hidden) return;
    panel.hidden = true;
    button.setAttribute("aria-expanded", "false");
    if (focus) button.focus();
  };
  button.addEventListener("click", () => (panel.hidden ? open() : close()));
  bell.addEventListener("keydown", (event) => {
    if (event.key === "Escape") close({ focus: true });
  });
  document.addEventListener("click", (event) => {
    if (!bell.contains(event.target)) close();
  });
  bell.querySelector('[data-action="read-all"]').addEventListener("click", () =>
    api("/read-all", { method: "POST", tenant: bellTenant }).catch((error) => console.error(error)),
  );
  bell.isOpen = () => !panel.hidden;
  applyCounts(bellTenant, {
    unread: Number(bell.dataset.unread) || 0,
    unseen: Number(bell.dataset.unseen) || 0,
    version: Number(bell.dataset.version) || 0,
  });
}

// ------------------------------------------------------------------------------
// Live events
// ------------------------------------------------------------------------------
function onCreated(event) {
  applyCounts(event.tenant, event.data.counts);
  if (event.tenant !== bellTenant) return;
  const notification = event.data.notification;
  if (bell && bell.isOpen && bell.isOpen()) {
    const list = bell.querySelector(".bell-list");
    list.querySelector(".bell-empty")?.remove();
    list.prepend(bellItem(notification));
    while (list.children.length > BELL_ITEMS) list.lastChild.remove();
  }
  const fresh = Date.now() - Date.parse(event.ts) < TOAST_MAX_AGE_MS;
  if (event.data.toast && fresh) showToast(notification);
}

if (live) {
  setupBell();
  live.on("notification.created", onCreated);
  live.on("notification.read", (event) => {
    applyCounts(event.tenant, event.data.counts);
    if (event.tenant === bellTenant) setBellItemRead(event.data.ids, true);
  });
  live.on("notification.unread", (event) => {
    applyCounts(event.tenant, event.data.counts);
    if (event.tenant === bellTenant) setBellItemRead(event.data.ids, false);
  });
  for (const type of ["notification.seen", "notification.archived", "notification.unarchived"]) {
    live.on(type, (event) => applyCounts(event.tenant, event.data.counts));
  }
  live.on("notification.counts", (event) => {
    applyCounts(event.tenant, event.data.counts);
    if (event.data.all_read && event.tenant === bellTenant && bell) {
      setBellItemRead([...bell.querySelectorAll(".bell-item.unread")].map((item) => item.dataset.id), true);
    }
  });
}
