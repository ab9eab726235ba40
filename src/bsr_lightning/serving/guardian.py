"""A watchdog process that ends the server's workers when the ``serve`` process dies, SIGKILL included (which no
handler in the parent can catch): otherwise LitServe's workers, reparented, keep serving on the port.

Linux only (it reads ``/proc``); elsewhere it does nothing."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import NamedTuple


class Stat(NamedTuple):
    """What ``/proc/PID/stat`` says of a live process."""

    parent: int
    group: int
    start: int  # clock ticks since boot: tells a reused pid apart


def _stat(pid: int | str) -> Stat | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return Stat(int(fields[1]), int(fields[2]), int(fields[19]))
    except (OSError, IndexError, ValueError):
        return None


def _all() -> dict[int, Stat]:
    return {int(p.name): s for p in Path("/proc").glob("[0-9]*") if (s := _stat(p.name)) is not None}


def _descendants(roots: set[int], stats: dict[int, Stat]) -> dict[int, int]:
    """``{pid: start time}`` of every live descendant of ``roots``."""
    found: dict[int, int] = {}
    frontier = roots
    while frontier:
        frontier = {child for child, s in stats.items() if s.parent in frontier and child not in found}
        found.update({child: stats[child].start for child in frontier})
    return found


def _orphans(server: Stat, reaper: int) -> dict[int, int]:
    """The server's descendants that its death left behind, found without having seen them: processes of its
    process group, started after it, now children of the process that adopted this guardian too (and their
    descendants). This catches a worker started in the moment before a SIGKILL, between two polls."""
    stats = _all()
    roots = {pid for pid, s in stats.items() if s.parent == reaper and s.group == server.group
             and s.start >= server.start and pid != os.getpid()}
    return {**{pid: stats[pid].start for pid in roots}, **_descendants(roots, stats)}


def start_guardian(poll_seconds: float = 0.5) -> int | None:
    """Fork a small process that, every ``poll_seconds``, records the descendants of this process and, once this
    process is gone, sends them (and any :func:`_orphans`) SIGTERM, then SIGKILL two seconds later. Returns its pid
    (None off Linux)."""
    if not Path("/proc/self/stat").exists():
        return None
    server = os.getpid()
    server_stat = _stat(server)
    pid = os.fork()
    if pid:
        return pid
    try:  # the guardian: only sleeps, reads /proc and sends signals
        seen: dict[int, int] = {}
        while os.getppid() == server:
            seen.update(_descendants({server}, _all()))
            seen.pop(os.getpid(), None)
            time.sleep(poll_seconds)
        seen.update(_orphans(server_stat, os.getppid()))
        for sig in (signal.SIGTERM, signal.SIGKILL):
            alive = [p for p, start in seen.items() if (s := _stat(p)) is not None and s.start == start]
            for child in alive:
                try:
                    os.kill(child, sig)
                except OSError:
                    pass
            if alive and sig == signal.SIGTERM:
                time.sleep(2)
    finally:
        os._exit(0)
