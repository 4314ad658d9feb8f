// Scenario 1, room fan-out: `subscribers` websockets in one room, one publisher sending
// `message:send` at rising rates (messages/s); every subscriber gets each message as
// `message:new`.  End-to-end latency is from just before the publisher's send to the frame's
// arrival at a subscriber (one process, one clock).
//
// Arguments (JSON): {urls: [base URLs, subscribers spread round-robin], secret, room,
//   subscribers: [user ids], publisher: user id, rates: [messages/s], step_s, warmup_s, drain_s,
//   fixed_rate, payload_bytes, connect_concurrency, max_run_s}
// Each step prints {"event": "step_start"|"step_end", ...} so the runner can sample the server.

import {
  RawClient,
  Histogram,
  closeAll,
  connectAll,
  cpuMeter,
  emit,
  mintToken,
  parseArgs,
  readNumber,
  sleep,
  watchdog,
} from "./common.mjs";

const args = parseArgs();
watchdog((args.max_run_s ?? 300) * 1000);

const MARK = Buffer.from('"text":"T');
const steps = []; // index k: {hist, count}
let subscribers = [];
let publisher = null;

let lastEventAt = 0;

function onMessage(buf) {
  lastEventAt = performance.now();
  const at = buf.indexOf(MARK);
  if (at < 0) return;
  const [k, i] = readNumber(buf, at + MARK.length);
  const [t0] = readNumber(buf, i + 1);
  const step = steps[k];
  if (step) step.hist.record(performance.now() - t0);
}

function text(k, seq) {
  const head = `T${k}:${performance.now().toFixed(3)}:${seq}:`;
  return head + "x".repeat(Math.max(0, (args.payload_bytes ?? 100) - head.length));
}

// Publish at `rate` messages/s for `seconds`, paced by a 2 ms ticker; returns the count sent.
async function publish(k, rate, seconds) {
  let sent = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  while (performance.now() < end) {
    const due = Math.floor(((performance.now() - t0) / 1000) * rate);
    while (sent < due) {
      publisher.emit("message:send", { room: args.room, client_id: `f${k}-${sent}`, text: text(k, sent) }, true);
      sent++;
    }
    await sleep(2);
  }
  return sent;
}

async function drain(k, expected) {
  const until = performance.now() + (args.drain_s ?? 3) * 1000;
  while (steps[k].hist.count < expected && performance.now() < until) await sleep(20);
}

async function runStep(k, rate, seconds, record) {
  steps[k] = { hist: new Histogram() };
  if (record) emit({ event: "step_start", step: k, rate });
  const cpu = cpuMeter();
  const sent = await publish(k, rate, seconds);
  const expected = sent * subscribers.length;
  await drain(k, expected);
  const used = cpu();
  const hist = steps[k].hist;
  const result = {
    step: k,
    rate,
    sent,
    seconds,
    offered_per_s: (expected / seconds),
    delivered: hist.count,
    expected,
    delivered_per_s: hist.count / seconds,
    p50_ms: hist.percentile(50, expected),
    p99_ms: hist.percentile(99, expected),
    max_ms: hist.percentile(100, expected),
    generator_cpu: used.cpu_s / used.wall_s,
  };
  steps[k] = null;
  if (record) emit({ event: "step_end", ...result });
  return result;
}

async function main() {
  const urls = args.urls;
  const conn = await connectAll(args.subscribers.length, args.connect_concurrency ?? 50, (i) =>
    new RawClient(urls[i % urls.length], mintToken(args.secret, args.subscribers[i]), { onEvent: onMessage }),
  );
  subscribers = conn.clients;
  if (conn.failures) throw new Error(`${conn.failures} subscribers could not connect: ${conn.firstError}`);
  publisher = await new RawClient(urls[0], mintToken(args.secret, args.publisher)).connect();
  emit({ event: "connected", subscribers: subscribers.length });
  // Let the server finish what connecting set off (Herald announces each arrival to the room).
  const quietUntil = performance.now() + 30000;
  while (performance.now() - lastEventAt < 1000 && performance.now() < quietUntil) await sleep(100);

  let k = 0;
  await runStep(k++, args.rates[0], args.warmup_s ?? 2, false);
  const ramp = [];
  for (const rate of args.rates) {
    const r = await runStep(k++, rate, args.step_s ?? 5, true);
    ramp.push(r);
    if (r.p99_ms === Infinity || r.p99_ms > 2000) break; // far past saturation: stop climbing
  }
  let fixed = ramp.find((r) => r.rate === args.fixed_rate) ?? null;
  if (!fixed && args.fixed_rate) fixed = await runStep(k++, args.fixed_rate, args.step_s ?? 5, true);
  emit({ event: "result", subscribers: subscribers.length, ramp, fixed });
}

main()
  .catch((err) => {
    emit({ event: "error", error: String(err.stack || err) });
    process.exitCode = 1;
  })
  .finally(() => {
    closeAll(subscribers);
    if (publisher) publisher.close();
    setTimeout(() => process.exit(), 200).unref();
  });
