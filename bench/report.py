"""Figures out of the raw results: the headline per scenario, the printed table and docs/benchmarks.md."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from bench import inbound, push_report

FANOUT_P99_MS = 100.0
PERSISTED_P99_MS = 50.0
PERSISTED_TARGET = 5000.0


def _p99(step: dict[str, Any]) -> float:
    value = step.get("p99_ms")
    return math.inf if value is None else float(value)


def _best(ramp: list[dict[str, Any]], key: str, limit_ms: float) -> dict[str, Any] | None:
    ok = [s for s in ramp if _p99(s) <= limit_ms and not s.get("errors")]
    return max(ok, key=lambda s: s[key]) if ok else None


def headlines(scenario: str, figures: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per server configuration: the scenario's figures of merit."""
    rows = []
    for run in figures["runs"]:
        label = run["server"] + (f" x{run['procs']}" if run["server"] == "herald" else "")
        if scenario == "fanout":
            best = _best(run["ramp"], "delivered_per_s", FANOUT_P99_MS)
            fixed = run.get("fixed") or {}
            rows.append(
                {
                    "server": label,
                    "kind": run["server"],
                    "main": best["delivered_per_s"] if best else 0.0,
                    "p50_ms": fixed.get("p50_ms"),
                    "p99_ms": fixed.get("p99_ms"),
                    "fixed_per_s": fixed.get("offered_per_s"),
                    "server_cpu": best.get("server_cpu") if best else None,
                    "generator_cpu": best.get("generator_cpu") if best else None,
                }
            )
        elif scenario == "persisted":
            best = _best(run["ramp"], "acked_per_s", PERSISTED_P99_MS)
            rows.append(
                {
                    "server": label,
                    "kind": run["server"],
                    "main": best["acked_per_s"] if best else 0.0,
                    "p50_ms": best.get("p50_ms") if best else None,
                    "p99_ms": best.get("p99_ms") if best else None,
                    "server_cpu": best.get("server_cpu") if best else None,
                    "generator_cpu": best.get("generator_cpu") if best else None,
                }
            )
        else:
            rows.append(
                {
                    "server": label,
                    "kind": run["server"],
                    "main": run["bytes_per_connection"],
                    "connections": run["clients"],
                    "server_cpu": run["server_cpu_idle"],
                    "generator_cpu": run["generator_cpu_idle"],
                    "connect_s": run["connect_s"],
                }
            )
    return rows


def summary(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per scenario: Herald's best row against the reference, with the ratio and the target."""
    out = []
    for scenario, figures in results.items():
        if scenario not in FIGURE:
            continue  # the push side's scenarios: bench/push_report.py
        rows = headlines(scenario, figures)
        herald_rows = [r for r in rows if r["kind"] == "herald"]
        ref = next((r for r in rows if r["kind"] == "reference"), None)
        if not herald_rows or ref is None:
            continue
        lower_is_better = scenario == "idle"
        herald = (min if lower_is_better else max)(herald_rows, key=lambda r: r["main"])
        ratio = herald["main"] / ref["main"] if ref["main"] else math.inf
        if scenario == "fanout":
            met = herald["main"] >= ref["main"]
            target = "≥ reference, p99 ≤ 100 ms"
        elif scenario == "persisted":
            met = herald["main"] >= PERSISTED_TARGET
            target = "≥ 5,000/s, p99 ≤ 50 ms"
        else:
            met = herald["main"] <= ref["main"]
            target = "≤ reference"
        out.append(
            {"scenario": scenario, "herald": herald, "reference": ref, "ratio": ratio, "target": target, "met": met}
        )
    return out


FIGURE = {
    "fanout": "delivered msg/s at p99 ≤ 100 ms",
    "persisted": "acked msg/s at p99 ≤ 50 ms",
    "idle": "RSS bytes per idle connection",
}


def _n(value: Any, digits: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    return f"{value:,.{digits}f}"


def _ms(value: Any) -> str:
    return "lost" if value is None else _n(value, 1)


def table(results: dict[str, Any]) -> str:
    lines = [f"{'scenario':<10} {'figure':<34} {'herald':>18} {'reference':>12} {'ratio':>7}  target"]
    for row in summary(results):
        herald = f"{_n(row['herald']['main'])} ({row['herald']['server']})"
        lines.append(
            f"{row['scenario']:<10} {FIGURE[row['scenario']]:<34} {herald:>18} {_n(row['reference']['main']):>12} "
            f"{row['ratio']:>7.2f}  {row['target']} {'met' if row['met'] else 'MISSED'}"
        )
    return "\n".join([*lines, *push_report.table(results)])


def write(out: Path, results: dict[str, Any], size: dict[str, Any]) -> None:
    """Merge these results into out/benchmarks.json and rebuild out/benchmarks.md from it."""
    out.mkdir(parents=True, exist_ok=True)
    store = out / "benchmarks.json"
    merged: dict[str, Any] = {}
    if store.exists():
        try:
            merged = json.loads(store.read_text())
        except ValueError:
            merged = {}
    merged.update(results)
    store.write_text(json.dumps(merged, indent=1, sort_keys=True, default=_json_default) + "\n")
    (out / "benchmarks.md").write_text(markdown(merged))


def _json_default(value: Any) -> Any:
    raise TypeError(f"not JSON: {value!r}")


def markdown(results: dict[str, Any]) -> str:
    parts = [
        "# Benchmarks",
        "",
        "Sections 1-3 are the chat side; sections 4-5 the push side (`make bench-push`, `make bench-campaign`:",
        "`python -m bench.push_run`), below.",
        "",
        "Written by `make bench` (`python -m bench.run`; one scenario: `make bench-fanout`, `bench-persisted`,",
        "`bench-idle`). Herald and the reference (`bench/reference/server.mjs`, a minimal Node.js Socket.IO 4",
        "server doing the same job) are run one after the other on the same machine, loopback only, driven by",
        "the same Node.js load generator (`bench/loadgen`, raw Engine.IO framing over `ws`), which shares the",
        "cores with the server: its own CPU use is in the tables (1.0 = one core), beside the whole machine's",
        "(server, generator, PostgreSQL, Redis and anything else running: a machine figure well above the",
        "other two means something else competed for the cores). Do not compare these figures across",
        "machines; rerun them.",
        "",
        "## Summary",
        "",
        "| scenario | figure | Herald | reference | Herald ÷ reference | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in summary(results):
        herald, ref = row["herald"], row["reference"]
        parts.append(
            f"| {row['scenario']} | {FIGURE[row['scenario']]} | {_n(herald['main'])} ({herald['server']}) "
            f"| {_n(ref['main'])} | {row['ratio']:.2f} | {row['target']} | {'yes' if row['met'] else 'no'} |"
        )
    for scenario in ("fanout", "persisted", "idle"):
        if scenario in results:
            parts += ["", *_section(scenario, results[scenario])]
    parts += push_report.sections(results, _machine)
    if "inbound" in results:
        parts += ["", *inbound.section(results["inbound"])]
    return "\n".join(parts) + "\n"


def _machine(figures: dict[str, Any]) -> list[str]:
    m = figures["machine"]
    py = ", ".join(f"{k} {v}" for k, v in m["python_packages"].items())
    node = ", ".join(f"{k} {v}" for k, v in m["node_packages"].items())
    smoke = " **Smoke size: these figures mean nothing.**" if figures.get("smoke") else ""
    return [
        f"Measured {m['date']} on {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']};"
        f" Python {m['python']} ({py}); Node.js {m['node']} ({node}); PostgreSQL {m['postgresql']};"
        f" Redis {m['redis']}. The run took {figures['seconds']} s.{smoke}",
    ]


def _section(scenario: str, figures: dict[str, Any]) -> list[str]:
    size = figures["size"]
    if scenario == "fanout":
        head = [
            "## 1. Room fan-out",
            "",
            f"One public room, {size['subscribers']:,} websocket subscribers, one publisher sending `message:send`"
            f" ({size['payload_bytes']}-byte text) at rising rates for {size['step_s']} s a step; both servers store"
            " each message and broadcast `message:new` to the room. Latency is end to end (publisher's send to"
            " subscriber's frame); a message not delivered counts as slower than all. Herald runs as 1 or more"
            " `herald web` processes sharing Redis, subscribers spread over them.",
            "",
            "| server | offered/s | delivered/s | p50 ms | p99 ms | server CPU | generator CPU | machine CPU |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for run in figures["runs"]:
            label = f"{run['server']} x{run['procs']}"
            for s in run["ramp"]:
                head.append(
                    f"| {label} | {_n(s['offered_per_s'])} | {_n(s['delivered_per_s'])} | {_ms(s['p50_ms'])} "
                    f"| {_ms(s['p99_ms'])} | {_n(s.get('server_cpu'), 2)} | {_n(s['generator_cpu'], 2)} "
                    f"| {_n(s.get('machine_cpu'), 2)} |"
                )
    elif scenario == "persisted":
        head = [
            "## 2. Persisted chat",
            "",
            f"{size['clients']} clients, each sending `message:send` with an ack into a room of its own"
            f" ({size['payload_bytes']}-byte text), at a total rate rising by step ({size['step_s']} s each);"
            " an ack comes only after the row is committed. The reference does one INSERT per message (the same"
            " statement as Herald's single-message path). Herald runs as 1 or more `herald web` processes"
            " sharing Redis and PostgreSQL, clients spread over them.",
            "",
            "CPU is in cores (1.0 = one core busy) over each step, split by process: the server, PostgreSQL"
            " (every backend, autovacuum and background process), Redis, the generator, and everything else"
            " on the machine; `machine` is the whole machine.",
            "",
            "| server | offered/s | acked/s | errors | p50 ms | p99 ms | server CPU | PostgreSQL | Redis"
            " | generator CPU | other | machine CPU |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for run in figures["runs"]:
            label = f"{run['server']} x{run['procs']}"
            for s in run["ramp"]:
                split = s.get("cpu_split") or {}
                head.append(
                    f"| {label} | {_n(s['rate'])} | {_n(s['acked_per_s'])} | {s['errors']} | {_ms(s['p50_ms'])} "
                    f"| {_ms(s['p99_ms'])} | {_n(s.get('server_cpu'), 2)} | {_n(split.get('postgres'), 2)} "
                    f"| {_n(split.get('redis'), 2)} | {_n(s['generator_cpu'], 2)} | {_n(split.get('other'), 2)} "
                    f"| {_n(s.get('machine_cpu'), 2)} |"
                )
        head += ["", *_database_lines(figures)]
    else:
        head = [
            "## 3. Idle connections",
            "",
            f"{size['connections']:,} authenticated websockets (each user in one room of its own) held open on one"
            " server process; memory per connection is the server's RSS growth over the connections divided by"
            f" their number; idle CPU is over {size['idle_window_s']} s after they settled (machine CPU: the whole"
            " machine over the same window, other work included).",
            "",
            "| server | connections | RSS before MB | RSS after MB | bytes / connection | idle CPU | machine CPU"
            " | connect s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for run in figures["runs"]:
            head.append(
                f"| {run['server']} | {_n(run['clients'])} | {_n(run['rss_before'] / 1e6, 1)} "
                f"| {_n(run['rss_after'] / 1e6, 1)} | {_n(run['bytes_per_connection'])} "
                f"| {_n(run['server_cpu_idle'], 3)} | {_n(run.get('machine_cpu_idle'), 2)} "
                f"| {_n(run['connect_s'], 1)} |"
            )
    return [*head, "", *_machine(figures)]


def _database_lines(figures: dict[str, Any]) -> list[str]:
    """Where each run's database started and ended: figures that do not reproduce often say why here."""
    start = figures.get("database_start")
    if not start:
        return []
    lines = [
        f"Each run starts on a fresh clone of a seeded template (rooms and members, no messages); the"
        f" PostgreSQL cluster then held {start['databases']} databases, {_n(start['bytes'] / 1e6)} MB in all"
        f" (shared_buffers {_n(start['shared_buffers_pages'] * 8 / 1024)} MB). After each run, its `messages`"
        " table:",
        "",
        "| server | rows | MB | dead rows | autovacuums | autoanalyzes |",
        "|---|---|---|---|---|---|",
    ]
    for run in figures["runs"]:
        db = run.get("database") or {}
        if db:
            lines.append(
                f"| {run['server']} x{run['procs']} | {_n(db['rows'])} | {_n(db['bytes'] / 1e6, 1)} | {_n(db['dead'])} "
                f"| {db['autovacuums']} | {db['autoanalyzes']} |"
            )
    return lines


def run_scenarios(bench: Any, scenarios: tuple[str, ...], info: dict[str, Any], smoke: bool) -> dict[str, Any]:
    """Run each scenario method of ``bench`` in turn, with its duration and the machine beside it."""
    results: dict[str, Any] = {}
    for scenario in scenarios:
        print(f"scenario {scenario} ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        figures = getattr(bench, scenario)()
        figures.update(machine=info, smoke=smoke, seconds=round(time.monotonic() - started, 1))
        results[scenario] = figures
    return results
