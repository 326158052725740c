// The browser side of the real-time core: one socket per page, resumed by cursor.
//
// Other modules register handlers with `live.on(type, handler)`; the client makes
// sure each durable event reaches them once and in order, across reconnects.
// Protocol: docs/protocol.md.

const MAX_BACKOFF_MS = 30_000;
const BASE_BACKOFF_MS = 500;
const STABLE_AFTER_MS = 10_000; // a connection open this long resets the backoff
const GAP_CONFIRM_MS = 1_500; // a heartbeat cursor ahead of ours, still ahead after this: resume
const SEEN_WINDOW = 5_000; // ids remembered for de-duplication; older ones fall under `floor`

// Close codes the server uses (realtime/consumers.py CloseCode).
const CLOSE = {
  MESSAGE_TOO_BIG: 1009,
  SERVICE_RESTART: 1012,
  SESSION_ENDED: 4001,
  ACCOUNT_DISABLED: 4003,
  RATE_LIMITED: 4429,
};

export class LiveClient {
  constructor({ path = "/ws/", cursor = 0, heartbeatSeconds = 25, statusElement = null } = {}) {
    this.path = path;
    this.cursor = Number(cursor) || 0; // the newest durable event id seen: resume after it
    this.floor = this.cursor; // every id at or below this was seen (or predates the page)
    this.seen = new Set(); // ids above the floor already shown
    this.heartbeatMs = heartbeatSeconds * 1000;
    this.statusElement = statusElement;
    this.handlers = new Map();
    this.attempt = 0;
    this.socket = null;
    this.stopped = false;
    this.everConnected = false;
    this.timers = {};
    this.state = "connecting";
  }

  /** Call `handler(event)` for every event of `type` ("*" for all). Returns an unsubscribe function. */
  on(type, handler) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(handler);
    return () => this.handlers.get(type).delete(handler);
  }

  start() {
    this.stopped = false;
    window.addEventListener("online", () => this.reconnectNow());
    window.addEventListener("offline", () => this.setState("offline"));
    this.connect();
  }

  stop() {
    this.stopped = true;
    Object.values(this.timers).forEach(clearTimeout);
    if (this.socket) this.socket.close(1000);
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}${this.path}?after=${this.cursor}`;
  }

  connect() {
    if (this.stopped) return;
    this.setState(this.everConnected ? "reconnecting" : "connecting");
    let socket;
    try {
      socket = new WebSocket(this.url());
    } catch (error) {
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.everConnected = true;
      this.setState("connected");
      this.armDeadline();
      clearTimeout(this.timers.stable);
      this.timers.stable = setTimeout(() => (this.attempt = 0), STABLE_AFTER_MS);
    });
    socket.addEventListener("message", (message) => this.receive(message.data));
    socket.addEventListener("close", (event) => this.closed(socket, event));
  }

  closed(socket, event) {
    if (socket !== this.socket) return;
    clearTimeout(this.timers.deadline);
    clearTimeout(this.timers.stable);
    this.socket = null;
    if (this.stopped) return;
    if (event.code === CLOSE.SESSION_ENDED || event.code === CLOSE.ACCOUNT_DISABLED) {
      this.stopped = true;
      this.setState("offline");
      this.dispatch({ type: "session.ended", data: { code: event.code } });
      return;
    }
    if (event.code === CLOSE.SERVICE_RESTART) {
      // The server is draining: come back soon, spread over a few seconds.
      this.scheduleReconnect(Math.random() * 5_000);
      return;
    }
    if (event.code === CLOSE.RATE_LIMITED) this.attempt = Math.max(this.attempt, 5);
    this.scheduleReconnect();
  }

  /** Exponential backoff with full jitter, capped at 30 s. */
  scheduleReconnect(delay) {
    this.setState(navigator.onLine === false ? "offline" : "reconnecting");
    const ceiling = Math.min(MAX_BACKOFF_MS, BASE_BACKOFF_MS * 2 ** this.attempt);
    this.attempt += 1;
    const wait = delay ?? Math.random() * ceiling;
    clearTimeout(this.timers.reconnect);
    this.timers.reconnect = setTimeout(() => this.connect(), wait);
  }

  reconnectNow() {
    // A socket that stayed open while the network blinked was never lost: say so again.
    if (!this.stopped && this.socket?.readyState === WebSocket.OPEN) this.setState("connected");
    if (this.stopped || (this.socket && this.socket.readyState <= 1)) return;
    clearTimeout(this.timers.reconnect);
    this.connect();
  }

  /** No frame at all for two heartbeats: the connection is dead even if TCP has not noticed. */
  armDeadline() {
    clearTimeout(this.timers.deadline);
    this.timers.deadline = setTimeout(() => {
      if (this.socket) this.socket.close(4000, "heartbeat timeout");
    }, this.heartbeatMs * 2 + 5_000);
  }

  send(frame) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(frame));
    }
  }

  receive(text) {
    this.armDeadline();
    let event;
    try {
      event = JSON.parse(text);
    } catch {
      return;
    }
    if (event.id !== null && event.id !== undefined && !this.firstTime(event.id)) return;
    switch (event.type) {
      case "hello":
        // The cursor is not taken from hello: the socket was opened with ?after=<cursor>
        // (0 on a server with no events yet), and the replay that follows hello
        // carries everything after it; adopting hello's cursor would drop that replay.
        if (event.data.heartbeat) this.heartbeatMs = event.data.heartbeat * 1000;
        this.armDeadline();
        break;
      case "ping":
        this.checkGap(event.data.cursor);
        break;
      case "resync":
        this.cursor = this.floor = event.data.cursor;
        this.seen.clear();
        if (!this.hasHandlers("resync")) {
          location.reload();
          return;
        }
        break;
      default:
        break;
    }
    this.dispatch(event);
  }

  /**
   * True the first time a durable id arrives. Ids usually arrive in order, but an
   * event the server resends after a drop may be older than the newest one seen.
   */
  firstTime(id) {
    if (id <= this.floor || this.seen.has(id)) return false;
    this.seen.add(id);
    if (this.seen.size > SEEN_WINDOW) {
      const oldest = Math.min(...this.seen);
      this.seen.delete(oldest);
      this.floor = Math.max(this.floor, oldest);
    }
    if (id > this.cursor) {
      this.cursor = id;
      document.body.dataset.cursor = String(id);
    }
    return true;
  }

  /** The server knows of a newer event than we saw: if it does not arrive shortly, replay. */
  checkGap(serverCursor) {
    if (!(serverCursor > this.cursor)) return;
    clearTimeout(this.timers.gap);
    this.timers.gap = setTimeout(() => {
      if (serverCursor > this.cursor) this.send({ type: "resume", after: this.cursor });
    }, GAP_CONFIRM_MS);
  }

  hasHandlers(type) {
    return (this.handlers.get(type)?.size ?? 0) > 0;
  }

  dispatch(event) {
    for (const key of [event.type, "*"]) {
      for (const handler of this.handlers.get(key) ?? []) {
        try {
          handler(event);
        } catch (error) {
          console.error("live handler failed", event.type, error);
        }
      }
    }
  }

  setState(state) {
    this.state = state;
    const element = this.statusElement;
    if (!element) return;
    element.dataset.state = state;
    const label = element.querySelector(".label");
    if (label) label.textContent = state;
  }
}

function createClient() {
  const body = document.body;
  if (!body.dataset.user) return null;
  return new LiveClient({
    path: body.dataset.wsPath || "/ws/",
    cursor: body.dataset.cursor,
    statusElement: document.getElementById("live-status"),
  });
}

/** The page's one client. Modules import it and register handlers; app.js starts it. */
export const live = createClient();
if (live) window.liveClient = live;
