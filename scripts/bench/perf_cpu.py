"""Where figure 6's CPU went: each process's user + system time over the capacity phase
(from /proc/PID/stat) and the whole machine's (from /proc/stat), per completed job. When
the machine's cores are nearly all busy, the capacity is the machine's, not a slot count's;
when one process uses nearly all of one core, it is that process's (one event loop, one
GIL). The report names the bottleneck either way."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from scripts.bench.idle import cpu_seconds
from scripts.bench.reportfile import read_text, table

SATURATED = 0.9  # machine CPU busy share from which the machine is the bottleneck


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    first = read_text(Path("/proc/stat")).splitlines()[0].split()[1:]
    ticks = [int(v) for v in first]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - idle) / hz, sum(ticks) / hz


@dataclass
class CpuUse:
    """A CPU snapshot of named processes and the machine, to subtract from a later one."""

    pids: dict[str, int]
    before: dict[str, float]
    machine: tuple[float, float]

    @classmethod
    def start(cls, pids: dict[str, int]) -> CpuUse:
        return cls(pids, {n: cpu_seconds(p) for n, p in pids.items()}, machine_busy())

    def report(self, jobs: int) -> tuple[list[str], str]:
        """The lines of a per-process table, and the bottleneck as a short phrase."""
        used = {n: cpu_seconds(p) - self.before[n] for n, p in self.pids.items()}
        busy1, total1 = machine_busy()
        busy = busy1 - self.machine[0]
        total = total1 - self.machine[1]
        cores = os.cpu_count() or 1
        share = busy / total if total > 0 else math.nan
        wall = total / cores
        rows = [
            (
                name,
                f"{seconds:.1f}",
                f"{100 * seconds / wall:.0f} %" if wall > 0 else "—",
                f"{1000 * seconds / jobs:.0f}" if jobs else "—",
            )
            for name, seconds in sorted(used.items(), key=lambda kv: -kv[1])
        ]
        others = busy - sum(used.values())
        rows.append(
            (
                "everything else on the machine",
                f"{others:.1f}",
                f"{100 * others / wall:.0f} %" if wall > 0 else "—",
                "—",
            )
        )
        lines = [
            *table(("process", "CPU s", "of one core", "CPU ms per completed job"), rows),
            "",
            f"The machine's {cores} cores were {100 * share:.0f} % busy over the phase "
            f"({wall:.1f} s, {jobs} jobs completed; /proc/stat).",
        ]
        top = max(used, key=lambda n: used[n]) if used else "?"
        top_core = used.get(top, 0.0) / wall if wall > 0 else math.nan
        per_job = f"{1000 * used.get(top, 0.0) / max(jobs, 1):.0f} ms CPU per job"
        if share >= SATURATED:
            phrase = (
                f"bottleneck: the machine's CPU ({cores} cores {100 * share:.0f} % busy; "
                f"most: {top}, {per_job})"
            )
        elif top_core >= SATURATED:  # one process on one core: its event loop (and GIL)
            phrase = (
                f"bottleneck: the {top} process, {100 * top_core:.0f} % of one core "
                f"({per_job}; the machine {100 * share:.0f} % busy)"
            )
        else:
            phrase = f"machine CPU {100 * share:.0f} % busy; most: {top} ({per_job})"
        return lines, phrase
