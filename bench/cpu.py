"""CPU time of a worker's process tree, read from /proc: where a drained job's CPU goes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; every field after it is a number.
    return text[text.rindex(")") + 2 :].split()


@dataclass(frozen=True)
class TreeCPU:
    """Seconds of CPU of a main process and of its children (pool processes), live or reaped."""

    main: float
    children: float

    def __sub__(self, other: TreeCPU) -> TreeCPU:
        return TreeCPU(self.main - other.main, self.children - other.children)


def tree_cpu(pid: int) -> TreeCPU:
    fields = _stat(pid)
    if fields is None:
        return TreeCPU(0.0, 0.0)
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    children = cutime + cstime  # children already exited and reaped (recycled pool processes)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        child = _stat(int(entry.name))
        if child is not None and child[1] == str(pid):
            children += int(child[11]) + int(child[12])
    return TreeCPU((utime + stime) / _TICKS, children / _TICKS)
