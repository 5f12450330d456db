// One WebSocket to /api/ws for the whole page. It reconnects with backoff and resumes from the
// last id it saw; the server replays what was missed or sends a fresh snapshot.

export class Stream extends EventTarget {
  constructor() {
    super();
    this.lastId = null;
    this.socket = null;
    this.delay = 500;
    this.stopped = false;
    this.connected = false;
    // Set by the app while a view loads (see app.js).
    this.backlog = null;
  }

  start() {
    this.stopped = false;
    this.open();
  }

  stop() {
    this.stopped = true;
    if (this.socket) this.socket.close();
  }

  open() {
    const url = new URL("/api/ws", window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    if (this.lastId) url.searchParams.set("last_event_id", this.lastId);
    const socket = new WebSocket(url);
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.delay = 500;
      this.setConnected(true);
    });
    socket.addEventListener("message", (event) => {
      // One message per frame, or an array of the messages that were waiting together.
      const decoded = JSON.parse(event.data);
      for (const message of Array.isArray(decoded) ? decoded : [decoded]) {
        if (message.type === "ping") continue;
        if (message.id) this.lastId = message.id;
        this.dispatchEvent(new CustomEvent(message.type, { detail: message.data }));
      }
    });
    socket.addEventListener("close", () => {
      this.setConnected(false);
      if (this.stopped) return;
      setTimeout(() => this.open(), this.delay);
      this.delay = Math.min(this.delay * 2, 10_000);
    });
  }

  setConnected(connected) {
    this.connected = connected;
    this.dispatchEvent(new CustomEvent("connection", { detail: { connected } }));
  }
}
