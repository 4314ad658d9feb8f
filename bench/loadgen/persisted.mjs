// Scenario 2, persisted chat: `clients` websockets, each sending `message:send` with an ack into
// its own room, at a total rate that rises step by step (spread round-robin over the clients).
// Latency is from the send to the ack, which both servers give only after the row is committed.
//
// Arguments (JSON): {urls, secret, clients: [{user, room}], rates: [total messages/s], step_s,
//   warmup_s, drain_s, payload_bytes, connect_concurrency, max_run_s}

import {
  RawClient,
  Histogram,
  closeAll,
  connectAll,
  cpuMeter,
  emit,
  parseArgs,
  mintToken,
  sleep,
  watchdog,
} from "./common.mjs";

const args = parseArgs();
watchdog((args.max_run_s ?? 300) * 1000);

const OK = Buffer.from('"ok":true');
let clients = [];
let step = null; // {hist, acked, errors, pending: Map per client}

function makeClient(i) {
  const spec = args.clients[i];
  const client = new RawClient(args.urls[i % args.urls.length], mintToken(args.secret, spec.user), {
    onAck: (id, buf) => {
      const sentAt = client.pending.get(id);
      if (sentAt === undefined) return;
      client.pending.delete(id);
      const s = client.step;
      if (!s) return;
      if (buf.indexOf(OK) >= 0) {
        s.hist.record(performance.now() - sentAt);
        s.acked++;
      } else {
        s.errors++;
        if (!s.firstError) s.firstError = buf.toString().slice(0, 300);
      }
    },
  });
  client.room = spec.room;
  client.pending = new Map();
  client.step = null;
  return client;
}

async function runStep(k, rate, seconds, record) {
  const s = { hist: new Histogram(), acked: 0, errors: 0, firstError: null };
  step = s;
  for (const c of clients) {
    c.pending.clear();
    c.step = s;
  }
  if (record) emit({ event: "step_start", step: k, rate });
  const cpu = cpuMeter();
  const pad = "x".repeat(Math.max(0, (args.payload_bytes ?? 100) - 16));
  let sent = 0;
  // Exactly rate x seconds messages, spread over the step (a loop ending on the clock sent a few
  // less, and acked/s then fell short of the offered rate with nothing lost).
  const total = Math.round(rate * seconds);
  const t0 = performance.now();
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate));
    while (sent < due) {
      const c = clients[sent % clients.length];
      const id = c.emit("message:send", { room: c.room, client_id: `p${k}-${sent}`, text: `m${sent}:${pad}` }, true);
      c.pending.set(id, performance.now());
      sent++;
    }
    await sleep(2);
  }
  const until = performance.now() + (args.drain_s ?? 3) * 1000;
  while (s.acked + s.errors < sent && performance.now() < until) await sleep(20);
  const used = cpu();
  const result = {
    step: k,
    rate,
    sent,
    seconds,
    acked: s.acked,
    errors: s.errors,
    first_error: s.firstError,
    acked_per_s: s.acked / seconds,
    p50_ms: s.hist.percentile(50, sent),
    p99_ms: s.hist.percentile(99, sent),
    max_ms: s.hist.percentile(100, sent),
    generator_cpu: used.cpu_s / used.wall_s,
  };
  for (const c of clients) c.step = null;
  if (record) emit({ event: "step_end", ...result });
  return result;
}

async function main() {
  const conn = await connectAll(args.clients.length, args.connect_concurrency ?? 50, makeClient);
  clients = conn.clients;
  if (conn.failures) throw new Error(`${conn.failures} clients could not connect: ${conn.firstError}`);
  emit({ event: "connected", clients: clients.length });
  let k = 0;
  await runStep(k++, args.rates[0], args.warmup_s ?? 2, false);
  const ramp = [];
  for (const rate of args.rates) {
    const r = await runStep(k++, rate, args.step_s ?? 5, true);
    ramp.push(r);
    if (r.p99_ms === Infinity || r.p99_ms > 2000 || r.errors > r.sent / 10) break;
  }
  emit({ event: "result", clients: clients.length, ramp });
}

main()
  .catch((err) => {
    emit({ event: "error", error: String(err.stack || err) });
    process.exitCode = 1;
  })
  .finally(() => {
    closeAll(clients);
    setTimeout(() => process.exit(), 200).unref();
  });
