// Drives the official socket.io-client against a running Herald hub, as a web or mobile client would.
//
//   node tests/js/interop.mjs '{"url": "http://127.0.0.1:8080", "room": "r1",
//                              "sender_token": "...", "receiver_token": "...", "before": 3, "after": 4}'
//
// Prints exactly one JSON line on stdout: {"ok": true, ...what was observed} and exits 0, or
// {"ok": false, "error": "...", "observed": {...}} and exits 1 (2 when the whole run timed out).
// Every wait is bounded; the whole run is cut off after RUN_TIMEOUT_MS.
// Run by tests/hub/test_js_interop.py.

import { readFileSync } from "node:fs";
import { io } from "socket.io-client";

const WAIT_MS = 5000;
const RUN_TIMEOUT_MS = 18000;

const observed = {};
const sockets = [];

function finish(code, line) {
  for (const socket of sockets) {
    try {
      socket.disconnect();
    } catch {
      // already gone
    }
  }
  process.stdout.write(JSON.stringify(line) + "\n", () => process.exit(code));
}

function fail(message) {
  throw new Error(message);
}

function check(condition, message) {
  if (!condition) fail(message);
}

function same(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  check(a === e, `${what}: expected ${e}, got ${a}`);
}

const watchdog = setTimeout(() => {
  finish(2, { ok: false, error: `the run took longer than ${RUN_TIMEOUT_MS} ms`, observed });
}, RUN_TIMEOUT_MS);

function parseArgs() {
  const raw = process.argv[2];
  if (!raw) fail("usage: node interop.mjs '<json: url, room, sender_token, receiver_token, before, after>'");
  const args = JSON.parse(raw);
  for (const key of ["url", "room", "sender_token", "receiver_token"]) {
    check(typeof args[key] === "string" && args[key], `argument ${key} is required`);
  }
  return { before: 3, after: 4, ...args };
}

// A socket plus a log of every server event it received, in order, with bounded waits on it.
class Client {
  constructor(name, url, token) {
    this.name = name;
    this.events = [];
    this.waiters = [];
    this.socket = io(url, { auth: { token }, transports: ["websocket"] });
    sockets.push(this.socket);
    this.socket.onAny((event, ...args) => this.record(event, args[0]));
    this.socket.on("connect_error", (err) => this.record("connect_error", err));
    this.socket.on("disconnect", (reason) => this.record("disconnect", reason));
  }

  record(event, payload) {
    this.events.push({ event, payload });
    this.waiters = this.waiters.filter((waiter) => !waiter());
  }

  all(event) {
    return this.events.filter((e) => e.event === event).map((e) => e.payload);
  }

  // Resolves with every `event` received so far once there are at least `count` of them.
  waitFor(event, count = 1, timeoutMs = WAIT_MS) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((waiter) => waiter !== ready);
        reject(new Error(`${this.name}: waited ${timeoutMs} ms for ${count} "${event}", got ${this.all(event).length}`));
      }, timeoutMs);
      const ready = () => {
        const seen = this.all(event);
        if (seen.length < count) return false;
        clearTimeout(timer);
        resolve(seen);
        return true;
      };
      if (!ready()) this.waiters.push(ready);
    });
  }

  async call(event, payload) {
    try {
      return await this.socket.timeout(WAIT_MS).emitWithAck(event, payload);
    } catch (err) {
      fail(`${this.name}: no ack for "${event}" within ${WAIT_MS} ms (${err.message})`);
    }
  }
}

function seqsOf(messages) {
  return messages.map((m) => m.seq);
}

function range(from, to) {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

async function sendAll(client, room, fromSeq, toSeq, texts) {
  const acks = [];
  for (const seq of range(fromSeq, toSeq)) {
    const text = `msg ${seq} héllo 👋`;
    texts[seq] = text;
    const ack = await client.call("message:send", { room, client_id: `js-${seq}`, text });
    check(ack && ack.ok === true, `message:send ${seq} was not acked ok: ${JSON.stringify(ack)}`);
    check(ack.message && ack.message.seq === seq, `message:send ${seq} acked seq ${ack.message && ack.message.seq}`);
    check(ack.message.text === text && ack.message.room === room, `message:send ${seq} acked ${JSON.stringify(ack)}`);
    acks.push(ack.message);
  }
  return acks;
}

async function main() {
  const { url, room, sender_token, receiver_token, before, after } = parseArgs();
  const clientVersion = JSON.parse(
    readFileSync(new URL("./node_modules/socket.io-client/package.json", import.meta.url), "utf8"),
  ).version;
  observed.node_version = process.version;
  observed.client_version = clientVersion;
  const texts = {};

  // A refused connection: the server's refusal data reaches connect_error as err.data.
  const refused = new Client("refused", url, "not-a-jwt");
  const [err] = await refused.waitFor("connect_error");
  observed.refused = { message: err.message, data: err.data ?? null, active: refused.socket.active };
  check(err.data && err.data.code === "token_invalid", `bad token: connect_error data ${JSON.stringify(err.data)}`);
  refused.socket.disconnect();

  // Both users connect and are told their rooms.
  const sender = new Client("sender", url, sender_token);
  const receiver = new Client("receiver", url, receiver_token);
  const [[senderReady], [receiverReady]] = await Promise.all([sender.waitFor("ready"), receiver.waitFor("ready")]);
  observed.sender_ready = senderReady;
  observed.receiver_ready = receiverReady;
  check(senderReady.rooms.includes(room), `sender ready does not list ${room}: ${JSON.stringify(senderReady)}`);
  check(receiverReady.rooms.includes(room), `receiver ready does not list ${room}: ${JSON.stringify(receiverReady)}`);

  // Live messages, acked with their seq, broadcast to the other member.
  const first = await sendAll(sender, room, 1, before, texts);
  const live = (await receiver.waitFor("message:new", before)).slice(0, before);
  observed.live = live.map((e) => ({ room: e.room, seq: e.message.seq, text: e.message.text }));
  same(seqsOf(live.map((e) => e.message)), range(1, before), "receiver live seqs");
  same(live.map((e) => e.message), first, "receiver live messages vs the sender's acks");
  check(
    live.every((e) => e.room === room),
    "message:new for another room",
  );
  check(sender.all("message:new").length === 0, "the sender got its own messages back as message:new");

  // Sending the same client_id again returns the first message, not a new one.
  const again = await sender.call("message:send", { room, client_id: "js-1", text: texts[1] });
  observed.resend_ack = { ok: again.ok, id: again.message?.id, seq: again.message?.seq };
  check(again.ok === true && again.message.id === first[0].id, `resend of js-1: ${JSON.stringify(again)}`);

  // A bad payload gets an error ack and leaves the connection alone.
  const invalid = await sender.call("message:send", { room, client_id: "js-no-text" });
  observed.invalid_ack = invalid;
  check(invalid && invalid.ok === false, `message:send without text was accepted: ${JSON.stringify(invalid)}`);
  check(invalid.error?.code === "invalid_payload", `message:send without text: ${JSON.stringify(invalid)}`);
  check(sender.socket.connected, "the sender was disconnected after a bad payload");

  // The receiver goes away; the sender carries on.
  // A client keeps the highest version it has seen per room, and syncs from it (docs/protocol.md).
  const lastSeen = Math.max(...live.map((e) => e.message.version));
  receiver.socket.disconnect();
  await receiver.waitFor("disconnect");
  const liveBeforeAway = receiver.all("message:new").length;
  await sendAll(sender, room, before + 1, before + after, texts);

  // It comes back on the same socket object, is told its rooms again and catches up with sync.
  receiver.socket.connect();
  const readies = await receiver.waitFor("ready", 2);
  observed.receiver_ready_again = readies[1];
  check(readies[1].rooms.includes(room), `receiver ready after reconnect lacks ${room}: ${JSON.stringify(readies[1])}`);
  const sync = await receiver.call("sync", { rooms: { [room]: lastSeen } });
  check(sync && sync.ok === true, `sync failed: ${JSON.stringify(sync)}`);
  const synced = sync.rooms?.[room];
  check(synced && Array.isArray(synced.messages), `sync answer lacks room ${room}: ${JSON.stringify(sync)}`);
  observed.sync = {
    after_version: lastSeen,
    version: synced.version,
    seqs: seqsOf(synced.messages),
    texts: synced.messages.map((m) => m.text),
    has_more: synced.has_more,
  };
  same(seqsOf(synced.messages), range(lastSeen + 1, before + after), "sync seqs");
  same(
    synced.messages.map((m) => m.text),
    range(lastSeen + 1, before + after).map((s) => texts[s]),
    "sync texts",
  );
  check(synced.has_more === false, "sync says has_more");

  // Subscriptions survive the reconnect without joining again: the next message arrives live.
  const next = before + after + 1;
  await sendAll(sender, room, next, next, texts);
  const liveNow = await receiver.waitFor("message:new", liveBeforeAway + 1);
  const lateLive = liveNow.slice(liveBeforeAway).map((e) => e.message.seq);
  observed.live_after_reconnect = lateLive;
  same(lateLive, [next], "receiver live seqs after reconnect (none of the missed ones, then the new one)");

  // Everything the receiver saw, live or synced, is 1..N once each, in order.
  const seen = [...seqsOf(live.map((e) => e.message)), ...observed.sync.seqs, ...lateLive];
  observed.receiver_seqs = seen;
  same(seen, range(1, next), "all seqs the receiver saw");
  observed.total = next;

  // Conversations: the receiver's room list counts what it has not read; an edit made now reaches it
  // live with the next version; reading clears the count and the sender sees the receipt.
  const listed = await receiver.call("rooms:list", {});
  check(listed.ok === true, `rooms:list: ${JSON.stringify(listed)}`);
  const entry = listed.rooms.find((r) => r.id === room);
  observed.unread_before_read = entry?.unread;
  observed.last_message_seq = entry?.last_message?.seq;
  const edited = await sender.call("message:edit", { room, id: first[0].id, text: "edited by js" });
  check(edited.ok === true, `message:edit: ${JSON.stringify(edited)}`);
  const [update] = await receiver.waitFor("message:updated");
  observed.update = { id: update.message.id, text: update.message.text, version: update.message.version };
  const read = await receiver.call("read", { room });
  observed.read_seq = read.seq;
  const [receipt] = await sender.waitFor("read");
  observed.receipt = receipt;
  const after_read = await receiver.call("rooms:list", {});
  observed.unread_after_read = after_read.rooms.find((r) => r.id === room)?.unread;

  const errors = [sender, receiver].flatMap((c) => c.all("connect_error").map((e) => `${c.name}: ${e.message}`));
  check(errors.length === 0, `unexpected connect_error: ${errors.join("; ")}`);
  clearTimeout(watchdog);
  finish(0, { ok: true, ...observed });
}

main().catch((err) => {
  clearTimeout(watchdog);
  finish(1, { ok: false, error: err.message, observed });
});
