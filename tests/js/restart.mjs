// The official socket.io-client, with its default options, across a graceful restart of the node.
//
//   node tests/js/restart.mjs '{"url": "http://127.0.0.1:8080", "room": "r1", "token": "...",
//                               "before": 3, "total": 7}'
//
// Sends `before` acked messages, then waits (the test restarts the node meanwhile and posts more
// messages) until it holds every seq from 1 to `total` of the room, exactly once, catching up with
// `sync` after each `ready` and on a seq gap, as docs/protocol.md tells a client to (a sync that
// overlaps live events is skipped by seq; `duplicates` counts message:new sent twice).  Prints one
// JSON line: {"ok": true, closing, disconnect_reasons, readies, seqs, duplicates} and exits 0, or
// {"ok": false, "error", "observed"} and exits 1 (2 when the run timed out).
// Run by tests/hub/test_shutdown.py.

import { io } from "socket.io-client";

const RUN_TIMEOUT_MS = 40000;
const args = JSON.parse(process.argv[2] ?? "{}");
const observed = { closing: [], disconnect_reasons: [], readies: 0, seqs: [], duplicates: 0, acked: [] };
let socket;

function finish(code, line) {
  clearTimeout(watchdog);
  const text = JSON.stringify(line) + "\n"; // before disconnecting, which is observed too
  socket?.disconnect();
  process.stdout.write(text, () => process.exit(code));
}

const watchdog = setTimeout(() => {
  finish(2, { ok: false, error: `the run took longer than ${RUN_TIMEOUT_MS} ms`, observed });
}, RUN_TIMEOUT_MS);

const held = new Set();
let last = 0; // the highest seq such that 1..last are all held

const live = new Set(); // seqs that came as message:new: the server must never send one twice

function take(message) {
  if (held.has(message.seq)) return; // a sync overlapping live events: skipped by seq, as docs/protocol.md says
  held.add(message.seq);
  observed.seqs.push(message.seq);
  while (held.has(last + 1)) last += 1;
  if (last >= args.total) finish(0, { ok: true, ...observed });
}

async function catchUp() {
  for (;;) {
    const answer = await socket.timeout(5000).emitWithAck("sync", { rooms: { [args.room]: last } });
    if (!answer.ok) throw new Error(`sync: ${answer.error.code}`);
    const { messages, has_more } = answer.rooms[args.room];
    for (const message of messages) take(message);
    if (!has_more) return;
  }
}

function run() {
  socket = io(args.url, { auth: { token: args.token } }); // default options: polling, then the upgrade
  socket.on("closing", (payload) => observed.closing.push(payload));
  socket.on("disconnect", (reason) => observed.disconnect_reasons.push(reason));
  socket.on("message:new", ({ room, message }) => {
    if (room !== args.room) return;
    if (live.has(message.seq)) observed.duplicates += 1;
    live.add(message.seq);
    if (message.seq > last + 1) catchUp().catch(fail); // a gap: fetch what is missing
    else if (message.seq === last + 1) take(message);
  });
  socket.on("ready", () => {
    observed.readies += 1;
    catchUp()
      .then(() => (observed.readies === 1 ? sendBefore() : undefined))
      .catch(fail);
  });
}

async function sendBefore() {
  for (let i = 0; i < args.before; i += 1) {
    const ack = await socket
      .timeout(5000)
      .emitWithAck("message:send", { room: args.room, client_id: `before-${i}`, text: `before ${i}` });
    if (!ack.ok) throw new Error(`message:send: ${ack.error.code}`);
    observed.acked.push(ack.message.seq);
    if (ack.message.seq === last + 1) take(ack.message);
  }
}

function fail(error) {
  finish(1, { ok: false, error: String(error?.message ?? error), observed });
}

run();
