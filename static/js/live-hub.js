// One live connection shared by the tabs of a browser: run by the SharedWorker
// (live-worker.js) or, where there is none, by the tab elected leader (live-tab.js).
//
// The hub relays every frame its client accepts to every tab, once. A tab that joins
// later says where its page stands in each stream (the positions the server rendered
// into it); the hub sends it the recent events it lacks from a short buffer per stream,
// or a `resync` for a stream the buffer no longer reaches back to, and asks the server
// for fresh state frames (`snapshot`). So every tab gets every event once, in order per
// stream, whenever it opened.

import { parsePositions } from "./live-client.js";

const BUFFER_PER_STREAM = 200;

export class LiveHub {
  /**
   * `post(tab, message)`: deliver to one tab, or to every tab when `tab` is null.
   * `makeClient(positions)`: a LiveClient starting from a resume token.
   */
  constructor({ post, makeClient }) {
    this.post = post;
    this.makeClient = makeClient;
    this.client = null;
    this.buffers = new Map(); // stream -> recent durable events, oldest first
    this.hello = null;
    this.tabs = new Set();
  }

  /** A tab opened (or the leader changed): bring it up to date, starting the connection if none runs. */
  join(tab, positions) {
    this.tabs.add(tab);
    if (!this.client || this.client.stopped) {
      this.start(positions);
      this.post(tab, stateEvent(this.client.state));
      return;
    }
    this.post(tab, stateEvent(this.client.state));
    if (!this.hello) return; // not connected yet: the tab gets hello and everything after it live
    this.post(tab, { kind: "event", event: this.hello });
    for (const [stream, page] of parsePositions(positions)) {
      const now = this.client.positions.get(stream);
      if (!now || (now.epoch === page.epoch && page.offset >= now.offset)) continue;
      const missed = (this.buffers.get(stream) || []).filter((event) => event.offset > page.offset);
      if (now.epoch === page.epoch && missed.length && missed[0].offset === page.offset + 1) {
        for (const event of missed) this.post(tab, { kind: "event", event });
      } else {
        const reason = now.epoch === page.epoch ? "too_far_behind" : "history_lost";
        const data = { stream, reason, offset: now.offset, epoch: now.epoch };
        this.post(tab, { kind: "event", event: { type: "resync", id: null, data } });
      }
    }
    this.client.send({ type: "snapshot" });
  }

  start(positions) {
    this.buffers.clear();
    this.hello = null;
    this.client = this.makeClient(positions);
    this.client.on("resync", () => {}); // the tabs decide what a resync means for their page
    this.client.on("*", (event) => this.relay(event));
    this.client.start();
  }

  relay(event) {
    if (event.type === "hello") this.hello = event;
    if (event.stream !== undefined && event.offset !== undefined) {
      const buffer = this.buffers.get(event.stream) || [];
      if (buffer.length && buffer[buffer.length - 1].epoch !== event.epoch) buffer.length = 0;
      buffer.push(event);
      if (buffer.length > BUFFER_PER_STREAM) buffer.shift();
      this.buffers.set(event.stream, buffer);
    }
    this.post(null, { kind: "event", event });
  }

  /** A tab closed; the last one out closes the connection. */
  leave(tab) {
    this.tabs.delete(tab);
    if (!this.tabs.size && this.client) {
      this.client.stop();
      this.client = null;
    }
  }

  /** Handle a message from a tab: join, leave, send a frame, reconnect now, drop the connection (tests). */
  receive(message) {
    if (message.kind === "join") this.join(message.tab, message.positions);
    else if (message.kind === "leave") this.leave(message.tab);
    else if (message.kind === "send") this.client?.send(message.frame);
    else if (message.kind === "reconnect") this.client?.reconnectNow();
    else if (message.kind === "drop") this.client?.socket?.close();
  }

  stop() {
    this.client?.stop();
    this.client = null;
  }
}

function stateEvent(state) {
  return { kind: "event", event: { type: "live.state", data: { state } } };
}
