// Scenario 3, idle connections: open `users.length` authenticated websockets, report when all
// are ready, then hold them (answering pings) until a line arrives on stdin or `hold_s` passes.
//
// Arguments (JSON): {urls, secret, users: [user ids], connect_concurrency, hold_s, max_run_s}

import { RawClient, closeAll, connectAll, cpuMeter, emit, mintToken, parseArgs, watchdog } from "./common.mjs";

const args = parseArgs();
watchdog((args.max_run_s ?? 300) * 1000);
let clients = [];

async function main() {
  const started = performance.now();
  const cpu = cpuMeter();
  const conn = await connectAll(args.users.length, args.connect_concurrency ?? 100, (i) =>
    new RawClient(args.urls[i % args.urls.length], mintToken(args.secret, args.users[i])),
  );
  clients = conn.clients;
  const connectS = (performance.now() - started) / 1000;
  emit({ event: "connected", clients: clients.length, failures: conn.failures, first_error: conn.firstError, connect_s: connectS });
  const connectCpu = cpu().cpu_s;
  const held = cpuMeter();
  await new Promise((resolve) => {
    const timer = setTimeout(resolve, (args.hold_s ?? 30) * 1000);
    process.stdin.once("data", () => {
      clearTimeout(timer);
      resolve();
    });
  });
  const idle = held();
  const still = clients.filter((c) => !c.closed).length;
  emit({
    event: "result",
    clients: clients.length,
    still_open: still,
    failures: conn.failures,
    connect_s: connectS,
    generator_cpu_connect: connectCpu / connectS,
    generator_cpu_idle: idle.cpu_s / idle.wall_s,
  });
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
