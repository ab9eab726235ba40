"""A watchdog process that ends the server's workers when the ``serve`` process dies, SIGKILL included (which no
handler in the parent can catch): otherwise LitServe's workers, reparented, keep serving on the port.

Linux only (it reads ``/proc``); elsewhere it does nothing."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def _stat(pid: int | str) -> tuple[int, int] | None:
    """``(parent pid, start time)`` of a live process from ``/proc/PID/stat``, or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[1]), int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _descendants(pid: int) -> dict[int, int]:
    """``{pid: start time}`` of every live descendant of ``pid`` (the start time tells a reused pid apart)."""
    stats = {int(p.name): s for p in Path("/proc").glob("[0-9]*") if (s := _stat(p.name)) is not None}
    found: dict[int, int] = {}
    frontier = {pid}
    while frontier:
        frontier = {child for child, (parent, _) in stats.items() if parent in frontier and child not in found}
        found.update({child: stats[child][1] for child in frontier})
    return found


def start_guardian(poll_seconds: float = 0.5) -> int | None:
    """Fork a small process that, every ``poll_seconds``, records the descendants of this process and, once this
    process is gone, sends them SIGTERM, then SIGKILL two seconds later. Returns its pid (None off Linux)."""
    if not Path("/proc/self/stat").exists():
        return None
    server = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    try:  # the guardian: only sleeps, reads /proc and sends signals
        seen: dict[int, int] = {}
        while os.getppid() == server:
            seen.update(_descendants(server))
            seen.pop(os.getpid(), None)
            time.sleep(poll_seconds)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            alive = [p for p, start in seen.items() if (s := _stat(p)) is not None and s[1] == start]
            for child in alive:
                try:
                    os.kill(child, sig)
                except OSError:
                    pass
            if alive and sig == signal.SIGTERM:
                time.sleep(2)
    finally:
        os._exit(0)
