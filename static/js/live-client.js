// One WebSocket to the platform, resumed by stream positions: used by the SharedWorker
// that holds the socket for every tab of a browser (live-worker.js), by the leader tab
// where there is no SharedWorker, and directly where neither can be shared.
//
// Handlers registered with `on(type, handler)` get each durable event once and in
// order per stream, across reconnects. A durable frame names its stream, its offset in
// that stream and the stream's epoch; the client keeps its position in each stream and
// hands them back on reconnect (`?pos=`). Protocol: docs/protocol.md.

const MAX_BACKOFF_MS = 30_000;
const BASE_BACKOFF_MS = 500;
const STABLE_AFTER_MS = 10_000; // a connection open this long resets the backoff
const GAP_CONFIRM_MS = 1_500; // a heartbeat position ahead of ours, still ahead after this: resume

// Close codes the server uses (realtime/consumers.py CloseCode).
const CLOSE = {
  MESSAGE_TOO_BIG: 1009,
  SERVICE_RESTART: 1012,
  SESSION_ENDED: 4001,
  ACCOUNT_DISABLED: 4003,
  RATE_LIMITED: 4429,
};

export class LiveClient {
  constructor({ path = "/ws/", positions = "", heartbeatSeconds = 25, statusElement = null } = {}) {
    this.path = path;
    // stream -> {offset, epoch}: every event of the stream up to `offset` was seen (or predates the page).
    this.positions = parsePositions(positions);
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
    // A page, or the SharedWorker that holds the socket for every tab (live-worker.js).
    globalThis.addEventListener("online", () => this.reconnectNow());
    globalThis.addEventListener("offline", () => this.setState("offline"));
    this.connect();
  }

  stop() {
    this.stopped = true;
    Object.values(this.timers).forEach(clearTimeout);
    if (this.socket) this.socket.close(1000);
  }

  /** The resume token: `stream:offset:epoch` for each stream, comma-separated. */
  token(streams = null) {
    return [...this.positions]
      .filter(([stream]) => !streams || streams.includes(stream))
      .map(([stream, p]) => `${stream}:${p.offset}:${p.epoch}`)
      .join(",");
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}${this.path}?pos=${encodeURIComponent(this.token())}`;
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
    if (event.stream !== undefined && !this.firstTime(event)) return;
    switch (event.type) {
      case "hello":
        // Streams the page had no position in (a tenant joined since) start where the
        // server stands; the others keep the page's, and their replay follows hello.
        for (const [stream, p] of Object.entries(event.data.positions || {})) {
          if (!this.positions.has(stream)) this.positions.set(stream, { offset: p.offset, epoch: p.epoch });
        }
        if (event.data.heartbeat) this.heartbeatMs = event.data.heartbeat * 1000;
        this.armDeadline();
        break;
      case "ping":
        this.checkGap(parsePositions(event.data.positions));
        break;
      case "resync":
        // That stream's history is gone (or too far behind): its state must be fetched anew.
        this.positions.set(event.data.stream, { offset: event.data.offset, epoch: event.data.epoch });
        if (!this.hasHandlers("resync") && typeof document !== "undefined") {
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
   * True the first time a durable event arrives: the next offset of its stream. One
   * already seen (a replay overlapping live delivery) is dropped; one past a gap asks
   * for a replay of that stream from our position, which brings it again in order. An
   * event of a new epoch means the stream's history was lost: handlers get a resync.
   */
  firstTime(event) {
    const known = this.positions.get(event.stream);
    if (known && known.epoch === event.epoch) {
      if (event.offset <= known.offset) return false;
      if (event.offset > known.offset + 1) {
        this.send({ type: "resume", positions: this.token([event.stream]) });
        return false;
      }
    } else if (known) {
      this.dispatch({ type: "resync", stream: event.stream, data: { stream: event.stream, reason: "history_lost" } });
    }
    this.positions.set(event.stream, { offset: event.offset, epoch: event.epoch });
    return true;
  }

  /** The server knows of newer events than we saw: if they do not arrive shortly, ask for a replay. */
  checkGap(serverPositions) {
    const behind = () =>
      [...serverPositions]
        .filter(([stream, top]) => {
          const known = this.positions.get(stream);
          return known && known.epoch === top.epoch && top.offset > known.offset;
        })
        .map(([stream]) => stream);
    if (!behind().length) return;
    clearTimeout(this.timers.gap);
    this.timers.gap = setTimeout(() => {
      const streams = behind();
      if (streams.length) this.send({ type: "resume", positions: this.token(streams) });
    }, GAP_CONFIRM_MS);
  }

  hasHandlers(type) {
    return (this.handlers.get(type)?.size ?? 0) > 0;
  }

  dispatch(event) {
    dispatchTo(this.handlers, event);
  }

  setState(state) {
    this.state = state;
    this.dispatch({ type: "live.state", data: { state } });
    showStatus(this.statusElement, state);
  }
}

/** Call the handlers of the event's type, then the "*" ones; one that throws does not stop the others. */
export function dispatchTo(handlers, event) {
  for (const key of [event.type, "*"]) {
    for (const handler of handlers.get(key) ?? []) {
      try {
        handler(event);
      } catch (error) {
        console.error("live handler failed", event.type, error);
      }
    }
  }
}

/** Show a connection state in the page's status indicator (if it has one). */
export function showStatus(element, state) {
  if (!element) return;
  element.dataset.state = state;
  const label = element.querySelector(".label");
  if (label) label.textContent = state;
}

/** `stream:offset:epoch,...` as a Map of stream -> {offset, epoch}. */
export function parsePositions(token) {
  const positions = new Map();
  for (const entry of (token || "").split(",")) {
    const [stream, offset, epoch] = entry.split(":");
    if (stream && epoch) positions.set(stream, { offset: Number(offset), epoch });
  }
  return positions;
}
