// The browser side of the real-time core: one socket per browser, shared by its tabs.
//
// Other modules register handlers with `live.on(type, handler)` and send frames with
// `live.send(frame)`; each durable event reaches them once and in order per stream,
// across reconnects and whichever tab holds the socket (live-tab.js). The socket
// itself and its resume protocol are in live-client.js; docs/protocol.md describes both.

import { LiveClient, parsePositions } from "./live-client.js";
import { LiveTab } from "./live-tab.js";

export { LiveClient, parsePositions };

function createClient() {
  const body = document.body;
  if (!body.dataset.user) return null;
  return new LiveTab({
    userId: body.dataset.user,
    path: body.dataset.wsPath || "/ws/",
    positions: body.dataset.positions,
    statusElement: document.getElementById("live-status"),
    workerUrl: body.dataset.liveWorker || null,
  });
}

/** The page's one client. Modules import it and register handlers; app.js starts it. */
export const live = createClient();
if (live) window.liveClient = live;
