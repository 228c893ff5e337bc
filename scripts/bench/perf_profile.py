"""Profiles of the API and the worker while the capacity figure runs: `py-spy record
--format raw --function --nonblocking` attached to each process (py-spy from the venv or
PATH; none installed, no profile), and the functions with the most samples, on their own
(the innermost frame) and in total (anywhere on the stack), written to docs/profiles/."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from scripts.bench.reportfile import read_text, table
from scripts.harness import ROOT, Child, Stack

RATE_HZ = 50
TOP = 15
# the frames that run the code of a task or a thread's work item: a stack's part below the
# last of them is counted in the totals (the frames above are in every sample of a process)
RUNNERS = ("Runner.run", "Handle._run", "_WorkItem.run")
PROFILES = ROOT / "docs" / "profiles"  # <section>.md: the perf section's own, by its name


@dataclass
class Profile:
    """One process's profile: its samples by function, or why there is none."""

    name: str
    pid: int
    out: Path
    child: Child | None = None
    error: str = ""
    own: Counter[str] = field(default_factory=Counter)
    total: Counter[str] = field(default_factory=Counter)
    samples: int = 0


def pyspy() -> str | None:
    """The py-spy executable: the venv's, else one on PATH."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return shutil.which("py-spy", path=path)


async def start(stack: Stack, targets: dict[str, int], seconds: float) -> list[Profile]:
    """Attach py-spy to each target for `seconds`, as children of the stack."""
    exe = pyspy()
    assert stack.logs is not None
    profiles = [
        Profile(name, pid, stack.logs / f"pyspy-{name}.txt") for name, pid in targets.items()
    ]
    for p in profiles:
        if exe is None:
            p.error = "py-spy is not installed"
            continue
        argv = [exe, "record", "--format", "raw", "--function", "--nonblocking"]
        argv += ["--rate", str(RATE_HZ), "--duration", str(max(1, round(seconds)))]
        p.child = await stack.start(
            f"pyspy-{p.name}", [*argv, "--pid", str(p.pid), "-o", str(p.out)]
        )
    return profiles


def parse(p: Profile) -> None:
    """Own and total samples by function from a raw (collapsed stacks) file."""
    for line in read_text(p.out).splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        n = int(count)
        p.samples += n
        p.own[frames[-1]] += n
        runs = [i for i, f in enumerate(frames) if f.partition(" (")[0] in RUNNERS]
        for frame in set(frames[runs[-1] + 1 :] if runs else frames):
            p.total[frame] += n


async def finish(profiles: list[Profile], seconds: float, section: str) -> list[str]:
    """Wait for py-spy to write, parse, write docs/profiles/<section>.md; the report's lines."""
    for p in profiles:
        if p.child is None:
            continue
        try:
            await asyncio.wait_for(p.child.process.wait(), seconds + 60)
        except TimeoutError:
            p.child.process.kill()
            await p.child.process.wait()
        if p.child.process.returncode != 0 or not p.out.exists():
            log_text = read_text(p.child.log_path) if p.child.log_path else ""
            p.error = f"py-spy exited {p.child.process.returncode}: {log_text[-300:].strip()}"
            continue
        parse(p)
    if not any(p.samples for p in profiles):
        return [f"No profile: {'; '.join(p.error or 'no samples' for p in profiles)}."]
    path = PROFILES / f"{section}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(profile_markdown(profiles, seconds), encoding="utf-8")
    lines = [
        f"Profiles (py-spy {RATE_HZ} Hz, `--nonblocking`, idle samples excluded, for the "
        f"{seconds:g} s of offered load) in `{path.relative_to(ROOT)}`. Most own "
        "samples:",
        "",
    ]
    for p in profiles:
        if p.error or not p.samples:
            lines.append(f"- {p.name}: no profile ({p.error or 'no samples'})")
            continue
        top = ", ".join(f"`{f}` {100 * n / p.samples:.0f} %" for f, n in p.own.most_common(5))
        lines.append(f"- {p.name} ({p.samples} samples): {top}")
    return lines


def profile_markdown(profiles: list[Profile], seconds: float) -> str:
    """The profile file: per process, the top functions by own and by total samples."""
    lines = [
        "# Profiles of the perf benchmark's capacity figure",
        "",
        "Written by `scripts/bench/perf.py` (see the `perf` section of docs/BENCHMARKS.md): "
        f"`py-spy record --format raw --function --nonblocking --rate {RATE_HZ}` attached to "
        f"each process for {seconds:g} s while jobs were offered open loop. Idle samples "
        "(threads waiting in the event loop's poll) are not recorded, so the shares are of "
        "the time each process was busy (py-spy's idle test is a heuristic: a thread waiting "
        "in `Condition.wait` can still show). Own = the innermost frame; own samples in "
        "`Runner.run` are time in the event loop's own code (uvloop's, in C, for the API). "
        "Total = anywhere on the stack below the frame that runs a task or a thread's work "
        "item (`Runner.run`, `Handle._run`, `_WorkItem.run`).",
    ]
    for p in profiles:
        lines += ["", f"## {p.name} (pid {p.pid})", ""]
        if p.error or not p.samples:
            lines.append(f"No profile: {p.error or 'no samples'}.")
            continue
        lines += [f"{p.samples} samples.", ""]
        for title, counts in (("own", p.own), ("total", p.total)):
            rows = [
                (f"`{f}`", n, f"{100 * n / p.samples:.1f} %") for f, n in counts.most_common(TOP)
            ]
            lines += [
                f"Top {TOP} by {title} samples:",
                "",
                *table(("function", title, "share"), rows),
                "",
            ]
    return "\n".join(lines).rstrip() + "\n"
