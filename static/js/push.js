// "Notify me on this device" on the preferences page: registers the site's service
// worker (/sw.js), subscribes this browser with the platform's VAPID key, and stores the
// subscription (POST /api/v1/push/subscriptions). The page lists the user's devices;
// each can be removed (DELETE). Which notifications are pushed is the "Push" column.

const section = document.getElementById("push-devices");

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

function keyBytes(base64url) {
  const padded = (base64url + "===".slice((base64url.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
}

function deviceName() {
  const agent = navigator.userAgent;
  const browser = /Edg\//.test(agent) ? "Edge" : /Firefox\//.test(agent) ? "Firefox" : /Chrome\//.test(agent) ? "Chrome" : /Safari\//.test(agent) ? "Safari" : "A browser";
  const system = /Android/.test(agent) ? "Android" : /iPhone|iPad/.test(agent) ? "iOS" : /Mac OS X/.test(agent) ? "macOS" : /Windows/.test(agent) ? "Windows" : /Linux/.test(agent) ? "Linux" : "";
  return system ? `${browser} on ${system}` : browser;
}

async function subscribe(say) {
  const key = await fetch("/api/v1/push/key", { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!key.ok) throw new Error((await key.json()).detail || "push is not available");
  if ((await Notification.requestPermission()) !== "granted") {
    say("Notifications are blocked for this site: allow them in the browser's site settings, then try again.");
    return false;
  }
  const registration = await navigator.serviceWorker.register("/sw.js", { scope: "/" });
  await navigator.serviceWorker.ready;
  const subscription = await registration.pushManager.subscribe({
    userVisibleOnly: true,
    applicationServerKey: keyBytes((await key.json()).public_key),
  });
  const stored = await fetch("/api/v1/push/subscriptions", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken(), Accept: "application/json" },
    body: JSON.stringify({ ...subscription.toJSON(), device: deviceName() }),
  });
  if (!stored.ok) throw new Error((await stored.json()).detail || `HTTP ${stored.status}`);
  return true;
}

if (section) {
  const button = section.querySelector("[data-push-subscribe]");
  const status = section.querySelector("[data-push-status]");
  const say = (text) => {
    status.textContent = text;
  };
  if (!("serviceWorker" in navigator && "PushManager" in window && "Notification" in window)) {
    button.disabled = true;
    say("This browser cannot receive push notifications.");
  }
  button.addEventListener("click", async () => {
    button.disabled = true;
    say("Asking the browser…");
    try {
      if (await subscribe(say)) location.reload();
    } catch (error) {
      say(`This device could not be subscribed: ${error.message}`);
    } finally {
      button.disabled = false;
    }
  });
  section.addEventListener("click", async (event) => {
    const remove = event.target.closest("[data-push-remove]");
    if (!remove) return;
    const response = await fetch(`/api/v1/push/subscriptions/${remove.dataset.pushRemove}`, {
      method: "DELETE",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
    });
    if (response.ok || response.status === 404) {
      remove.closest("li").remove();
      if (!section.querySelector("[data-push-list] li")) section.querySelector("[data-push-empty]").hidden = false;
      say("Removed: that device gets no more push notifications.");
    } else {
      say(`Could not remove it (HTTP ${response.status}).`);
    }
  });
}
