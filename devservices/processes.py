"""Processes that are not (or no longer) our children: liveness from /proc or ps, pid files, signals, logs.

A pid in a file may have been reused by another process since it was written (likely in a container
after ``kill -9``), so liveness is "the same process": its start time as well as its pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path


def proc_info(pid: int) -> tuple[str, str] | None:
    """``(start time token, command line)`` of a live process, or None (zombies count as dead).

    The start token tells a process from a later one that reused its pid.
    """
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, someone else's
    proc = Path(f"/proc/{pid}")
    if Path("/proc/self/stat").exists():
        try:
            raw_stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError):
            return None
        fields = raw_stat.rsplit(")", 1)[1].split()
        state, start_ticks = fields[0], fields[19]
        if state in ("Z", "X"):
            return None
        return start_ticks, cmdline.strip()
    # No /proc (macOS): ask ps.
    result = subprocess.run(
        ["ps", "-o", "stat=,lstart=,command=", "-p", str(pid)], capture_output=True, text=True, check=False
    )
    line = result.stdout.strip()
    if result.returncode != 0 or not line or line.startswith("Z"):
        return None
    parts = line.split(None, 6)  # stat, then lstart is five words, then the command
    if len(parts) < 7:
        return None
    return " ".join(parts[1:6]), parts[6]


def is_process(pid: int, needle: str) -> bool:
    """Whether ``pid`` is alive and its command line contains ``needle``."""
    info = proc_info(pid)
    return info is not None and needle in info[1]


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``pid`` to end; whether it did."""
    deadline = time.monotonic() + timeout
    while proc_info(pid) is not None:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def terminate_pid(pid: int, timeout: float, first: signal.Signals = signal.SIGTERM) -> None:
    """Signal a process that is not our child, wait for it, then SIGKILL it."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, first)
    if not wait_gone(pid, timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_gone(pid, 5.0)


def kill_child(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Terminate a child of ours if it still runs; SIGKILL it after ``timeout`` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def read_pid_file(path: Path) -> int | None:
    """The pid on the first line of ``path``, or None when it is missing or not a number."""
    try:
        first = path.read_text().split("\n", 1)[0].strip()
        return int(first)
    except (OSError, ValueError):
        return None


def read_log(path: Path, offset: int = 0) -> str:
    """A log file from ``offset`` on ("" when it cannot be read)."""
    try:
        with path.open("rb") as file:
            file.seek(offset)
            return file.read().decode(errors="replace")
    except OSError:
        return ""


def telling_line(text: str, markers: tuple[str, ...]) -> str:
    """The last line of a log that carries one of ``markers``, else its last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if any(marker in line for marker in markers):
            return line
    return lines[-1] if lines else "no output"
