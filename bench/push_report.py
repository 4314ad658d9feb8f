"""The push side's figures (bench/push_run.py) as printed lines and as sections of docs/benchmarks.md."""

from __future__ import annotations

from typing import Any

PUSH_TARGET = 4000.0
PREVIEW_TARGET_MS = 200.0
CAMPAIGN_TARGET_S = 300.0


def _n(value: Any, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def table(results: dict[str, Any]) -> list[str]:
    lines = []
    if "push" in results:
        for run in results["push"]["runs"]:
            met = "met" if run["per_s"] >= PUSH_TARGET else "MISSED"
            lines.append(
                f"push       {run['provider']:<5} herald worker x1 {_n(run['per_s']):>8}/s "
                f"{_n(run['cpu_us']):>6} µs CPU each  target ≥ 4,000/s {met}"
            )
        for ref in results["push"]["references"]:
            lines.append(
                f"push       {ref['provider']:<5} {ref['client']}: {ref['sends_per_s']:,}/s, "
                f"{ref['cpu_us_per_send']} µs CPU each"
            )
    if "campaign" in results:
        figures = results["campaign"]
        for p in figures["previews"]:
            met = "met" if p["p50_ms"] <= PREVIEW_TARGET_MS else "MISSED"
            lines.append(f"preview    {p['filter']:<45} p50 {p['p50_ms']:>7.0f} ms p99 {p['p99_ms']:>7.0f} ms  {met}")
        d = figures["delivery"]
        met = "met" if d["completed"] and d["wall_s"] <= CAMPAIGN_TARGET_S else "MISSED"
        lines.append(
            f"campaign   {figures['size']['users']:,} users, {figures['size']['workers']} workers: "
            f"{d['delivered']:,} delivered in {d['wall_s']} s ({_n(d['per_s'])}/s), completed={d['completed']}  {met}"
        )
    return lines


def sections(results: dict[str, Any], machine_line: Any) -> list[str]:
    parts: list[str] = []
    if "push" in results:
        figures = results["push"]
        size = figures["size"]
        parts += [
            "",
            "## 4. Push throughput",
            "",
            f"One `herald worker` process; one notification to {size['count']:,} users with one device each, per"
            f" provider, after a warm-up notification (connections, JWT, OAuth token). The fake APNs and FCM"
            f" (`tests/fakes`, HTTP/2 over TLS, {size['latency_ms']:.0f} ms added to every answer) run in their"
            " own processes. Timed from the `notify` job's enqueue to the notification completed (every"
            " outcome recorded in PostgreSQL); CPU is the worker process's (user + system, /proc) divided by"
            " the notifications delivered. The references send the same kind of notification from a bare"
            " client process to the same fakes (no database, no queue).",
            "",
            "| client | provider | notifications/s | CPU µs / notification | worker CPU | fakes CPU | machine CPU "
            "| sent again | target |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for run in figures["runs"]:
            met = "met" if run["per_s"] >= PUSH_TARGET else "missed"
            parts.append(
                f"| Herald worker x1 (job → outcome recorded) | {run['provider']} | {_n(run['per_s'])} "
                f"| {_n(run['cpu_us'])} | {_n(run['worker_cpu'], 2)} | {_n(run.get('fakes_cpu'), 2)} "
                f"| {_n(run['machine_cpu'], 2)} | {_n(run.get('resent'))} | ≥ 4,000/s: {met} |"
            )
        for ref in figures["references"]:
            parts.append(
                f"| {ref['client']} (reference) | {ref['provider']} | {_n(ref['sends_per_s'])} "
                f"| {_n(ref['cpu_us_per_send'])} | — | — | — | — | — |"
            )
        parts += ["", *machine_line(figures)]
    if "campaign" in results:
        figures = results["campaign"]
        size, audience, d = figures["size"], figures["audience"], figures["delivery"]
        devices = audience.get("devices", {})
        parts += [
            "",
            "## 5. Campaign at scale",
            "",
            f"{size['users']:,} users (bench/gen_users.py: attributes, tags, time zones, locales; devices"
            f" {', '.join(f'{k} {v:,}' for k, v in devices.items())}). The preview is the code of"
            " `POST /segments/preview` (user count, device count and a sample of 10, run concurrently on a"
            " pool), timed after one warm-up run.",
            "",
            "| filter | users | devices | p50 ms | p99 ms | target p50 ≤ 200 ms |",
            "|---|---|---|---|---|---|",
        ]
        for p in figures["previews"]:
            met = "met" if p["p50_ms"] <= PREVIEW_TARGET_MS else "missed"
            parts.append(
                f"| {p['filter']} | {_n(p['users'])} | {_n(p['devices'])} | {_n(p['p50_ms'])} | {_n(p['p99_ms'])} "
                f"| {met} |"
            )
        met = "met" if d["completed"] and d["wall_s"] <= CAMPAIGN_TARGET_S else "missed"
        parts += [
            "",
            "A whole campaign to everyone, unthrottled, personalised title (`Hi {{name|there}}`, a French"
            f" variant), to the fakes ({size['latency_ms']:.0f} ms per answer), with {size['workers']}"
            " `herald worker` processes; timed from the campaign job's enqueue to the campaign completed.",
            "",
            "| workers | users sent | skipped (opted out) | notifications | delivered | sent again | seconds "
            "| deliveries/s | workers CPU | machine CPU | completed | target ≤ 300 s |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
            f"| {size['workers']} | {_n(d['users_sent'])} | {_n(d['users_skipped'])} | {_n(d['notifications'])} "
            f"| {_n(d['delivered'])} | {_n(d.get('resent'))} | {d['wall_s']} | {_n(d['per_s'])} "
            f"| {_n(d['workers_cpu'], 2)} "
            f"| {_n(d['machine_cpu'], 2)} | {'yes' if d['completed'] else 'no'} | {met} |",
            "",
            *machine_line(figures),
        ]
    return parts
