// A tab's side of the live connection: one WebSocket per browser, shared by its tabs.
//
// Where the browser has SharedWorker, the socket lives in live-worker.js and this tab
// talks to it through a MessagePort. Where it has not (Chrome on Android), the tabs
// elect a leader with the Web Locks API; the leader holds the socket and relays over a
// BroadcastChannel, and when it closes the next tab in the lock's queue takes over and
// resumes from the positions it has seen. Where neither exists, the tab opens its own.
//
// Modules use it as they used the per-page client: `live.on(type, handler)`,
// `live.send(frame)`. Each tab dispatches each durable event once, in order per stream,
// and shows its own connection status.

import { LiveClient, dispatchTo, parsePositions, showStatus } from "./live-client.js";
import { LiveHub } from "./live-hub.js";

export class LiveTab {
  constructor({ userId, path = "/ws/", positions = "", heartbeatSeconds = 25, statusElement = null, workerUrl = null }) {
    this.userId = userId;
    this.path = path;
    this.positions = parsePositions(positions);
    this.heartbeatSeconds = heartbeatSeconds;
    this.statusElement = statusElement;
    this.workerUrl = workerUrl;
    this.tab = crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`;
    this.handlers = new Map();
    this.state = "connecting";
    this.connectionState = "connecting";
    this.mode = null; // "shared", "leader", "follower" or "direct"
    this.toHub = () => {};
  }

  /** Call `handler(event)` for every event of `type` ("*" for all). Returns an unsubscribe function. */
  on(type, handler) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(handler);
    return () => this.handlers.get(type).delete(handler);
  }

  /** Send a frame to the server over the browser's one socket. */
  send(frame) {
    this.toHub({ kind: "send", frame });
  }

  /** Close the socket as a network failure would (tests): it reconnects and resumes. */
  dropConnection() {
    this.toHub({ kind: "drop" });
  }

  start() {
    globalThis.addEventListener("offline", () => this.showState("offline"));
    globalThis.addEventListener("online", () => {
      this.showState(this.connectionState);
      this.toHub({ kind: "reconnect" });
    });
    if (typeof SharedWorker === "function" && this.workerUrl) this.startShared();
    else if (navigator.locks && typeof BroadcastChannel === "function") this.startElected();
    else this.startDirect();
  }

  /** The resume token of this tab's positions: `stream:offset:epoch,...`. */
  token() {
    return [...this.positions].map(([stream, p]) => `${stream}:${p.offset}:${p.epoch}`).join(",");
  }

  joinMessage() {
    return { kind: "join", tab: this.tab, positions: this.token(), path: this.path, heartbeatSeconds: this.heartbeatSeconds };
  }

  startShared() {
    this.mode = "shared";
    let worker;
    try {
      worker = new SharedWorker(this.workerUrl, { type: "module", name: `live:${this.userId}` });
    } catch {
      this.startElected();
      return;
    }
    worker.addEventListener("error", () => {
      if (this.mode === "shared") this.startElected(); // the worker script failed to load
    });
    const port = worker.port;
    port.addEventListener("message", ({ data }) => this.fromHub(data));
    port.start();
    this.toHub = (message) => port.postMessage(message);
    this.toHub(this.joinMessage());
    globalThis.addEventListener("pagehide", () => this.toHub({ kind: "leave", tab: this.tab }));
  }

  startElected() {
    this.mode = "follower";
    const channel = new BroadcastChannel(`live:${this.userId}`);
    let hub = null;
    this.toHub = (message) => {
      if (hub) hub.receive(message);
      else channel.postMessage({ ...message, toLeader: true });
    };
    channel.addEventListener("message", ({ data }) => {
      if (data.toLeader) {
        if (hub) hub.receive(data);
      } else if (data.kind === "leader") {
        if (!hub) channel.postMessage({ ...this.joinMessage(), toLeader: true });
      } else if (!hub && (data.to === null || data.to === this.tab)) {
        this.fromHub(data);
      }
    });
    globalThis.addEventListener("pagehide", () => this.toHub({ kind: "leave", tab: this.tab }));
    channel.postMessage({ ...this.joinMessage(), toLeader: true });
    // The lock is held until this page goes away; the next tab waiting for it leads then.
    navigator.locks.request(`live:${this.userId}`, () => {
      this.mode = "leader";
      hub = new LiveHub({
        post: (tab, message) => {
          if (tab === null || tab === this.tab) this.fromHub(message);
          if (tab !== this.tab) channel.postMessage({ ...message, to: tab });
        },
        makeClient: (positions) => this.makeClient(positions),
      });
      hub.join(this.tab, this.token());
      channel.postMessage({ kind: "leader", to: null });
      return new Promise(() => {});
    });
  }

  startDirect() {
    this.mode = "direct";
    const hub = new LiveHub({ post: (tab, message) => this.fromHub(message), makeClient: (p) => this.makeClient(p) });
    this.toHub = (message) => hub.receive(message);
    hub.join(this.tab, this.token());
  }

  makeClient(positions) {
    return new LiveClient({ path: this.path, positions, heartbeatSeconds: this.heartbeatSeconds });
  }

  fromHub(message) {
    if (message.kind === "event") this.receive(message.event);
  }

  /** One event from the hub: each durable event once per tab, resyncs and status handled here. */
  receive(event) {
    if (event.type === "live.state") {
      this.connectionState = event.data.state;
      this.showState(navigator.onLine === false ? "offline" : event.data.state);
    } else if (event.stream !== undefined && event.offset !== undefined) {
      const known = this.positions.get(event.stream);
      if (known && known.epoch === event.epoch && event.offset <= known.offset) return; // this tab has it
      this.positions.set(event.stream, { offset: event.offset, epoch: event.epoch });
    } else if (event.type === "hello") {
      for (const [stream, p] of Object.entries(event.data.positions || {})) {
        if (!this.positions.has(stream)) this.positions.set(stream, { offset: p.offset, epoch: p.epoch });
      }
    } else if (event.type === "resync") {
      const data = event.data;
      if (data.offset !== undefined) this.positions.set(data.stream, { offset: data.offset, epoch: data.epoch });
      if (!this.handlers.get("resync")?.size) {
        location.reload();
        return;
      }
    }
    this.dispatch(event);
  }

  dispatch(event) {
    dispatchTo(this.handlers, event);
  }

  showState(state) {
    this.state = state;
    showStatus(this.statusElement, state);
  }
}
