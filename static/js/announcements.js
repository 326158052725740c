// Live announcement banners and one-time modals on every signed-in page.
//
// The server renders the active, undismissed announcements into #announcements
// (templates/announcements/_banners.html); this module keeps them live:
//   announcement.published  -> show it (as a banner, or as a modal if its style is modal)
//   announcement.updated    -> change it in place (only if it is shown here)
//   announcement.ended      -> remove it
//   announcement.dismissed  -> this user closed it in some tab: remove it here too
//   announcement.active     -> state on (re)connect: the full list; anything else goes
import { live } from "./realtime.js";

const banners = document.getElementById("announcements");
const modals = document.getElementById("announcement-modals");

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

function label(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** The same markup as templates/announcements/_banner.html. */
function build(data, display) {
  const section = document.createElement("section");
  section.className = `announcement announcement-${data.severity}`;
  section.dataset.announcementId = String(data.id);
  section.dataset.severity = data.severity;
  section.dataset.display = display;
  section.setAttribute("role", data.severity === "critical" ? "alert" : "status");
  section.setAttribute("aria-label", `Announcement: ${data.title}`);

  const badge = document.createElement("span");
  badge.className = "announcement-badge";
  badge.textContent = label(data.severity);

  const text = document.createElement("div");
  text.className = "announcement-text";
  const title = document.createElement("strong");
  title.className = "announcement-title";
  title.textContent = data.title;
  const source = document.createElement("span");
  source.className = "announcement-source";
  source.textContent = data.tenant_name || "Platform";
  const body = document.createElement("div");
  body.className = "announcement-body";
  body.innerHTML = data.body_html; // sanitised on the server (liveplatform.rendering)
  text.append(title, " ", source, body);
  section.append(badge, text);

  if (display === "modal") {
    const close = document.createElement("button");
    close.type = "button";
    close.className = "button announcement-close";
    close.dataset.action = "close";
    close.textContent = data.dismissable ? "Got it" : "Acknowledge";
    section.append(close);
  } else if (data.dismissable) {
    const dismiss = document.createElement("button");
    dismiss.type = "button";
    dismiss.className = "announcement-dismiss";
    dismiss.dataset.action = "dismiss";
    dismiss.setAttribute("aria-label", `Dismiss announcement ${data.title}`);
    dismiss.textContent = "×";
    section.append(dismiss);
  }
  section._announcement = data;
  return section;
}

function findBanner(id) {
  return banners.querySelector(`:scope > [data-announcement-id="${id}"]`);
}

function findModal(id) {
  return modals.querySelector(`:scope > dialog[data-announcement-id="${id}"]`);
}

function remove(id) {
  findBanner(id)?.remove();
  const dialog = findModal(id);
  if (dialog) {
    if (dialog.open) dialog.close();
    dialog.remove();
    openNextModal();
  }
}

/** Insert a banner, most severe first (critical, warning, info), replacing an old copy. */
function showBanner(data) {
  const fresh = build(data, "banner");
  const old = findBanner(data.id);
  if (old) {
    old.replaceWith(fresh);
    return;
  }
  const rank = { critical: 0, warning: 1, info: 2 };
  const after = [...banners.children].find((el) => rank[el.dataset.severity] > rank[data.severity]);
  banners.insertBefore(fresh, after || null);
}

function showModal(data) {
  let dialog = findModal(data.id);
  if (!dialog) {
    dialog = document.createElement("dialog");
    dialog.className = "announcement-modal";
    dialog.dataset.announcementId = String(data.id);
    modals.append(dialog);
  }
  dialog.setAttribute("aria-label", `Announcement: ${data.title}`);
  dialog.replaceChildren(build(data, "modal"));
  openNextModal();
}

/** One modal at a time; the next opens when the current one closes. */
function openNextModal() {
  if (modals.querySelector("dialog[open]")) return;
  const next = modals.querySelector("dialog:not([data-skipped])");
  if (next && typeof next.showModal === "function") next.showModal();
}

/** Show (or refresh) an announcement in the form it currently has, or `display` if new. */
function upsert(data, display) {
  if (findModal(data.id)) {
    showModal(data);
  } else if (findBanner(data.id)) {
    showBanner(data);
  } else if (display === "modal") {
    showModal(data);
  } else {
    showBanner(data);
  }
}

function dataOf(element) {
  return element._announcement || null;
}

async function dismiss(id) {
  const response = await fetch(`/api/v1/announcements/${id}/dismiss`, {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
  });
  return response.ok;
}

/** The user closed it here: dismissable ones disappear; an acknowledged critical modal becomes a banner. */
function closedHere(id, dismissable, data) {
  if (dismissable) {
    remove(id);
    return;
  }
  const dialog = findModal(id);
  if (dialog) {
    remove(id);
    if (data) showBanner(data);
  }
}

function fromElement(section) {
  // Server-rendered elements carry no data object; rebuild what the banner needs.
  return (
    dataOf(section) || {
      id: Number(section.dataset.announcementId),
      severity: section.dataset.severity,
      title: section.querySelector(".announcement-title")?.textContent || "",
      tenant_name: section.querySelector(".announcement-source")?.textContent || "",
      body_html: section.querySelector(".announcement-body")?.innerHTML || "",
      dismissable: section.querySelector("[data-action=dismiss]") !== null ||
        section.querySelector("[data-action=close]")?.textContent === "Got it",
    }
  );
}

function onClick(event) {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const section = button.closest("[data-announcement-id]");
  if (!section) return;
  const data = fromElement(section);
  const id = data.id;
  button.disabled = true;
  dismiss(id).then((ok) => {
    button.disabled = false;
    if (ok) closedHere(id, data.dismissable, { ...data, dismissable: false });
  });
}

if (banners && modals) {
  banners.addEventListener("click", onClick);
  modals.addEventListener("click", onClick);
  // Esc closes a dialog without acknowledging it; the next page load shows it again.
  modals.addEventListener(
    "close",
    (event) => {
      if (event.target.isConnected) event.target.dataset.skipped = "1";
      openNextModal();
    },
    true,
  );
  openNextModal();

  if (live) {
    live.on("announcement.published", (event) => upsert(event.data, event.data.style));
    live.on("announcement.updated", (event) => {
      if (findBanner(event.data.id) || findModal(event.data.id)) upsert(event.data, event.data.style);
    });
    live.on("announcement.ended", (event) => remove(event.data.id));
    live.on("announcement.dismissed", (event) => {
      const section = findModal(event.data.id)?.querySelector("[data-announcement-id]");
      closedHere(event.data.id, event.data.dismissable, section ? { ...fromElement(section), dismissable: false } : null);
    });
    live.on("announcement.active", (event) => {
      const wanted = new Map(event.data.announcements.map((item) => [String(item.id), item]));
      for (const element of [...banners.children, ...modals.children]) {
        if (!wanted.has(element.dataset.announcementId)) remove(element.dataset.announcementId);
      }
      for (const item of wanted.values()) {
        if (item.display === "banner" && findModal(item.id)) remove(item.id); // acknowledged elsewhere
        upsert(item, item.display);
      }
    });
  }
}
