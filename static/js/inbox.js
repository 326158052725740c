// The inbox page: tabs (unread, all, archived), category filter, infinite scroll,
// and per-notification actions. It reads and marks through the same API as the
// bell, and follows the user's other tabs and devices through live events.
import { live } from "./realtime.js";
import { api, countsOf } from "./notifications.js";
import { relativeTime } from "./chrome.js";
import { actorName } from "./feed.js";

const root = document.getElementById("inbox");
const PAGE = 20;

if (root) {
  const tenant = root.dataset.tenant;
  const list = document.getElementById("inbox-list");
  const empty = document.getElementById("inbox-empty");
  const more = document.getElementById("inbox-more");
  const category = document.getElementById("inbox-category");
  const tabs = [...root.querySelectorAll('[role="tab"]')];
  const unreadCount = root.querySelector('[data-testid="inbox-unread-count"]');
  const view = { state: "all", category: "", cursor: null, loading: false, generation: 0 };

  const matches = (notification) => {
    if (view.category && notification.category !== view.category) return false;
    if (view.state === "archived") return Boolean(notification.archived_at);
    if (notification.archived_at) return false;
    return view.state === "all" || !notification.read_at;
  };

  const button = (label, action, id, title) => {
    const element = document.createElement("button");
    element.type = "button";
    element.className = "button secondary small";
    element.dataset.action = action;
    element.textContent = label;
    element.setAttribute("aria-label", `${label}: ${title}`);
    element.addEventListener("click", () => act(action, id));
    return element;
  };

  function renderItem(notification) {
    const item = document.createElement("li");
    item.className = `inbox-item level-${notification.level}`;
    item.dataset.id = String(notification.id);
    item.dataset.category = notification.category;
    item.notification = notification;
    const head = document.createElement("div");
    head.className = "inbox-item-head";
    const level = document.createElement("span");
    level.className = `pill level-pill level-${notification.level}`;
    level.textContent = notification.level;
    const title = document.createElement(notification.link ? "a" : "strong");
    title.className = "inbox-item-title";
    title.textContent = notification.title;
    if (notification.link) {
      title.href = notification.link;
      title.addEventListener("click", () => {
        if (!notification.read_at) api(`/${notification.id}/read`, { method: "POST", tenant, keepalive: true });
      });
    }
    head.append(level, " ", title);
    const body = document.createElement("div");
    body.className = "inbox-item-body";
    // body_html is rendered from safe Markdown and sanitised (nh3) on the server.
    body.innerHTML = notification.body_html;
    const meta = document.createElement("div");
    meta.className = "inbox-item-meta muted";
    // The same relative time as the bell ("2 min. ago"), the exact moment as its tooltip.
    meta.append(
      relativeTime(notification.created_at),
      ` · ${notification.category}`,
      notification.actor ? ` · ${actorName(notification.actor)}` : "",
    );
    const actions = document.createElement("div");
    actions.className = "inbox-item-actions";
    if (notification.archived_at) {
      actions.append(button("Restore", "unarchive", notification.id, notification.title));
    } else {
      actions.append(
        notification.read_at
          ? button("Mark unread", "unread", notification.id, notification.title)
          : button("Mark read", "read", notification.id, notification.title),
        button("Archive", "archive", notification.id, notification.title),
      );
    }
    item.classList.toggle("unread", !notification.read_at);
    item.append(head, body, meta, actions);
    return item;
  }

  function findItem(id) {
    return list.querySelector(`.inbox-item[data-id="${id}"]`);
  }

  /** Apply a change to the notifications shown: re-render them, or drop those the tab no longer lists. */
  function update(ids, change) {
    for (const id of ids) {
      const item = findItem(id);
      if (!item) continue;
      const notification = { ...item.notification, ...change };
      if (matches(notification)) item.replaceWith(renderItem(notification));
      else item.remove();
    }
    empty.hidden = list.children.length > 0 || !more.hidden;
  }

  async function act(action, id) {
    const now = new Date().toISOString();
    const change = {
      read: { read_at: now },
      unread: { read_at: null },
      archive: { archived_at: now },
      unarchive: { archived_at: null },
    }[action];
    try {
      await api(`/${id}/${action}`, { method: "POST", tenant });
      update([id], change);
    } catch (error) {
      console.error(error);
    }
  }

  async function load({ reset = false } = {}) {
    if (view.loading && !reset) return;
    if (reset) {
      view.cursor = null;
      view.generation += 1;
      list.replaceChildren();
    }
    const generation = view.generation;
    view.loading = true;
    list.setAttribute("aria-busy", "true");
    try {
      const page = await api("", {
        tenant,
        params: { state: view.state, category: view.category, cursor: view.cursor, limit: PAGE },
      });
      if (generation !== view.generation) return; // a newer tab or filter replaced this request
      for (const notification of page.items) {
        if (!findItem(notification.id)) list.append(renderItem(notification));
      }
      view.cursor = page.next_cursor;
      more.hidden = !page.next_cursor;
      empty.hidden = list.children.length > 0;
    } catch (error) {
      console.error(error);
    } finally {
      if (generation === view.generation) {
        view.loading = false;
        list.setAttribute("aria-busy", "false");
      }
    }
  }

  function selectTab(tab) {
    for (const other of tabs) {
      const selected = other === tab;
      other.setAttribute("aria-selected", String(selected));
      other.tabIndex = selected ? 0 : -1;
    }
    document.getElementById("inbox-panel").setAttribute("aria-labelledby", tab.id);
    view.state = tab.dataset.state;
    load({ reset: true });
  }

  tabs.forEach((tab, index) => {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      const next = tabs[(index + step + tabs.length) % tabs.length];
      next.focus();
      selectTab(next);
    });
  });
  category.addEventListener("change", () => {
    view.category = category.value;
    load({ reset: true });
  });
  more.addEventListener("click", () => load());
  root.querySelector('[data-action="read-all"]').addEventListener("click", () =>
    api("/read-all", { method: "POST", tenant }).catch((error) => console.error(error)),
  );
  // Infinite scroll: the "Load more" button loads by itself when it scrolls into view.
  new IntersectionObserver((entries) => {
    if (entries.some((entry) => entry.isIntersecting) && !more.hidden) load();
  }).observe(more);

  const showUnread = () => {
    unreadCount.textContent = String(countsOf(tenant).unread);
  };
  document.addEventListener("notifications:counts", (event) => {
    if (event.detail.tenant === tenant) showUnread();
  });

  if (live) {
    const mine = (handler) => (event) => {
      if (event.tenant === tenant) handler(event);
    };
    live.on(
      "notification.created",
      mine((event) => {
        const notification = event.data.notification;
        if (!matches(notification) || findItem(notification.id)) return;
        list.prepend(renderItem(notification));
        empty.hidden = true;
      }),
    );
    live.on("notification.read", mine((event) => update(event.data.ids, { read_at: event.ts })));
    live.on("notification.unread", mine((event) => update(event.data.ids, { read_at: null })));
    live.on("notification.archived", mine((event) => update(event.data.ids, { archived_at: event.ts })));
    live.on("notification.unarchived", mine(() => load({ reset: true })));
    live.on(
      "notification.counts",
      mine((event) => {
        if (!event.data.all_read) return;
        const ids = [...list.querySelectorAll(".inbox-item.unread")]
          .map((item) => Number(item.dataset.id))
          .filter((id) => id <= event.data.up_to);
        update(ids, { read_at: event.ts });
      }),
    );
  }
  showUnread();
  load({ reset: true });
}
