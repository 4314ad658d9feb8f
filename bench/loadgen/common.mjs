// Shared parts of the load generators: a lean Socket.IO client speaking raw Engine.IO v4 framing
// over `ws` (no socket.io-client parsing per message), HS256 tokens, a latency histogram, and the
// bounded run scaffolding.  Every generator takes one JSON argument and prints JSON lines on
// stdout: progress events ({"event": ...}) and one final {"event": "result", ...}.

import { createHmac } from "node:crypto";
import WebSocket from "ws";

export const CONNECT_TIMEOUT_MS = 15000;

export function parseArgs() {
  const raw = process.argv[2];
  if (!raw) throw new Error("usage: node <generator>.mjs '<json arguments>'");
  return JSON.parse(raw);
}

export function emit(line) {
  process.stdout.write(JSON.stringify(line) + "\n");
}

// Ends the process after `ms` whatever happens: every run is bounded in time.
export function watchdog(ms) {
  const timer = setTimeout(() => {
    emit({ event: "error", error: `the generator ran longer than ${ms} ms` });
    process.exit(2);
  }, ms);
  timer.unref();
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function mintToken(secret, sub, ttlSeconds = 7200) {
  const enc = (obj) => Buffer.from(JSON.stringify(obj)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const head = `${enc({ alg: "HS256", typ: "JWT" })}.${enc({ sub, iat: now, exp: now + ttlSeconds })}`;
  return `${head}.${createHmac("sha256", secret).update(head).digest("base64url")}`;
}

// Latencies in 0.1 ms buckets up to 60 s; percentiles over an expected total, so that a message
// that never arrived counts as slower than every one that did.
export class Histogram {
  constructor() {
    this.buckets = new Uint32Array(600001);
    this.count = 0;
  }

  record(ms) {
    let i = Math.round(ms * 10);
    if (i < 0) i = 0;
    else if (i > 600000) i = 600000;
    this.buckets[i]++;
    this.count++;
  }

  percentile(p, expected = this.count) {
    const total = Math.max(expected, this.count);
    if (total === 0) return null;
    const rank = Math.ceil((p / 100) * total);
    if (rank > this.count) return Infinity;
    let seen = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      seen += this.buckets[i];
      if (seen >= rank) return i / 10;
    }
    return Infinity;
  }
}

export function cpuMeter() {
  const start = process.cpuUsage();
  const t0 = performance.now();
  return () => {
    const used = process.cpuUsage(start);
    const wallMs = performance.now() - t0;
    return { cpu_s: (used.user + used.system) / 1e6, wall_s: wallMs / 1000 };
  };
}

const EVENT_PREFIX = 0x32; // '2' of "42"
const ACK_PREFIX = 0x33; // '3' of "43"

// One Socket.IO connection on namespace "/", websocket transport only.
//   onEvent(buf): a raw `42[...]` frame (Buffer); onAck(id, buf): the raw `43<id>[...]` frame.
export class RawClient {
  constructor(baseUrl, token, { onEvent = null, onAck = null } = {}) {
    this.url = `${baseUrl.replace(/^http/, "ws")}/socket.io/?EIO=4&transport=websocket`;
    this.token = token;
    this.onEvent = onEvent;
    this.onAck = onAck;
    this.nextId = 0;
    this.ws = null;
    this.closed = false;
  }

  connect() {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error("connect timed out")), CONNECT_TIMEOUT_MS);
      let done = false;
      const fail = (err) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.close();
        reject(err);
      };
      const ws = new WebSocket(this.url, { skipUTF8Validation: true });
      this.ws = ws;
      ws.on("error", fail);
      ws.on("close", () => {
        this.closed = true;
        fail(new Error("closed before ready"));
      });
      ws.on("message", (data) => {
        const kind = data[0];
        if (kind === 0x34 /* '4' message */) {
          const sub = data[1];
          if (sub === EVENT_PREFIX) {
            if (!done && data.includes('"ready"')) {
              done = true;
              clearTimeout(timer);
              resolve(this);
              return;
            }
            if (this.onEvent) this.onEvent(data);
          } else if (sub === ACK_PREFIX) {
            if (this.onAck) {
              let id = 0;
              let i = 2;
              for (; i < data.length && data[i] >= 0x30 && data[i] <= 0x39; i++) id = id * 10 + (data[i] - 0x30);
              this.onAck(id, data);
            }
          } else if (sub === 0x34 /* '44' connect error */) {
            fail(new Error(`refused: ${data.toString()}`));
          }
        } else if (kind === 0x32 /* '2' ping */) {
          ws.send("3");
        } else if (kind === 0x30 /* '0' open */) {
          ws.send(`40${JSON.stringify({ token: this.token })}`);
        }
      });
    });
  }

  // Emit an event; returns the ack id when `withAck`.
  emit(event, data, withAck = false) {
    if (withAck) {
      const id = this.nextId++;
      this.ws.send(`42${id}${JSON.stringify([event, data])}`);
      return id;
    }
    this.ws.send(`42${JSON.stringify([event, data])}`);
    return null;
  }

  close() {
    if (this.ws && !this.closed) {
      this.closed = true;
      try {
        this.ws.terminate();
      } catch {
        // already gone
      }
    }
  }
}

// Connect `count` clients with at most `concurrency` handshakes in flight; make(i) builds client i.
export async function connectAll(count, concurrency, make) {
  const clients = new Array(count);
  let next = 0;
  let failures = 0;
  let firstError = null;
  async function worker() {
    while (next < count) {
      const i = next++;
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          clients[i] = await make(i).connect();
          break;
        } catch (err) {
          firstError ??= String(err.message || err);
          if (attempt === 2) failures++;
          else await sleep(100);
        }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return { clients: clients.filter(Boolean), failures, firstError };
}

// Parse the decimal number that starts at buf[i] (digits and one '.'), without making a string.
export function readNumber(buf, i) {
  let value = 0;
  let scale = 0;
  for (; i < buf.length; i++) {
    const c = buf[i];
    if (c === 0x2e) scale = 1;
    else if (c >= 0x30 && c <= 0x39) {
      if (scale) {
        scale *= 10;
        value += (c - 0x30) / scale;
      } else value = value * 10 + (c - 0x30);
    } else break;
  }
  return [value, i];
}

export function closeAll(clients) {
  for (const c of clients) c.close();
}
