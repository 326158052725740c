// The SharedWorker that holds one WebSocket for every tab of this browser and user
// (static/js/live-tab.js starts it, named after the user). Each tab talks to it through
// its MessagePort; the hub (live-hub.js) relays frames and brings new tabs up to date.
import { LiveClient } from "./live-client.js";
import { LiveHub } from "./live-hub.js";

const ports = new Map(); // tab id -> MessagePort
let options = { path: "/ws/", heartbeatSeconds: 25 };

const hub = new LiveHub({
  post(tab, message) {
    if (tab === null) for (const port of ports.values()) port.postMessage(message);
    else ports.get(tab)?.postMessage(message);
  },
  makeClient: (positions) => new LiveClient({ path: options.path, positions, heartbeatSeconds: options.heartbeatSeconds }),
});

self.addEventListener("connect", (connection) => {
  const port = connection.ports[0];
  port.addEventListener("message", ({ data: message }) => {
    if (message.kind === "join") {
      ports.set(message.tab, port);
      options = { path: message.path || options.path, heartbeatSeconds: message.heartbeatSeconds || options.heartbeatSeconds };
    } else if (message.kind === "leave") {
      ports.delete(message.tab);
    }
    hub.receive(message);
  });
  port.start();
});
