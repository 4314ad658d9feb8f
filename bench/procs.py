"""Child processes of a benchmark run: started in their own process group, sampled through /proc,
and always killed at the end (a context manager owns each)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True, slots=True)
class Sample:
    """CPU seconds used and resident bytes of some processes, at one moment."""

    at: float
    cpu_s: float
    rss: int


def sample(pids: Sequence[int]) -> Sample:
    cpu = 0.0
    rss = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
            rss += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE
    return Sample(time.monotonic(), cpu, rss)


def machine_busy() -> Sample:
    """CPU seconds the whole machine spent busy so far (all processes, ours and anyone else's)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return Sample(time.monotonic(), (sum(fields[:8]) - idle) / CLOCK_TICKS, 0)


KINDS = ("server", "postgres", "redis", "generator", "other")


def cpu_by_kind(server_pids: Sequence[int], generator_pid: int | None) -> dict[str, float]:
    """CPU seconds used so far by every process on the machine, by kind: the server's processes (and
    their children), PostgreSQL's (backends, autovacuum, WAL writer, checkpointer; with what its
    exited children used, from the postmaster's cutime: autovacuum workers come and go), Redis, the
    load generator, and everything else.  Differences of two of these say where a step's cores went."""
    totals = dict.fromkeys(KINDS, 0.0)
    servers = set(server_pids)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            head, tail = (entry / "stat").read_text().rsplit(")", 1)
        except OSError:
            continue  # gone meanwhile
        comm = head.split("(", 1)[1]
        fields = tail.split()
        pid, ppid = int(entry.name), int(fields[1])
        used = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
        if pid in servers or ppid in servers:
            kind = "server"
        elif pid == generator_pid:
            kind = "generator"
        elif comm == "postgres" or comm.startswith("postgres:"):
            kind = "postgres"
            if ppid == 1 or not _is_postgres(ppid):  # the postmaster: add its reaped children
                used += (int(fields[13]) + int(fields[14])) / CLOCK_TICKS
        elif comm.startswith("redis-server"):
            kind = "redis"
        else:
            kind = "other"
        totals[kind] += used
    return totals


def _is_postgres(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().startswith("postgres")
    except OSError:
        return False


def split_share(start: tuple[float, dict[str, float]], end: tuple[float, dict[str, float]]) -> dict[str, float]:
    """Cores used by each kind between two (monotonic time, :func:`cpu_by_kind`) readings."""
    wall = end[0] - start[0]
    if wall <= 0:
        return dict.fromkeys(KINDS, 0.0)
    return {kind: max(0.0, (end[1][kind] - start[1][kind]) / wall) for kind in KINDS}


def cpu_share(start: Sample, end: Sample) -> float:
    """Cores used between two samples (1.0 = one core busy)."""
    wall = end.at - start.at
    return (end.cpu_s - start.cpu_s) / wall if wall > 0 else 0.0


@contextlib.contextmanager
def started(
    argv: Sequence[str], *, env: dict[str, str], cwd: Path, log: Path, stdin: bool = False
) -> Iterator[subprocess.Popen[str]]:
    """Run ``argv`` in its own process group; on exit, SIGTERM then SIGKILL that group."""
    with open(log, "w") as err:
        proc = subprocess.Popen(
            list(argv),
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            stop(proc)


def stop(proc: subprocess.Popen[str], grace: float = 5.0) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(grace)
    for stream in (proc.stdout, proc.stdin):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def wait_http(url: str, proc: subprocess.Popen[str], timeout: float, log: Path) -> None:
    """Poll ``url`` until it answers 200; fail early when the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}: {_tail(log)}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:
            if response.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s: {_tail(log)}")


def _tail(log: Path, chars: int = 2000) -> str:
    try:
        return log.read_text()[-chars:]
    except OSError:
        return ""
