"""Sampling a worker with py-spy while a phase runs, and a plain-text summary of where time goes.

py-spy runs with --nonblocking (it never pauses the worker) at a modest rate, so the profiled
numbers stay close to the unprofiled ones. It writes collapsed stacks ("f1;f2;f3 count"); the
summary lists the top functions by own time (the sampled frame itself) and by inclusive time
(the frame anywhere on the stack), as percentages of the non-idle samples.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from .harness import say, spawn, terminate


def py_spy() -> str | None:
    exe = Path(sys.executable).with_name("py-spy")
    return str(exe) if exe.exists() else shutil.which("py-spy")


class Profiler:
    """py-spy record of one pid into `<out>.folded`; `stop()` writes `<out>.txt` and returns it."""

    def __init__(self, pid: int, out: Path, rate: int = 97):
        self.out = out
        self.folded = out.with_suffix(".folded")
        self.proc: subprocess.Popen | None = None
        exe = py_spy()
        if exe is None:
            say("  py-spy not installed: no profile")
            return
        self.proc = spawn([exe, "record", "--pid", str(pid), "--rate", str(rate), "--nonblocking",
                           "--nolineno", "--format", "raw", "-o", shown(self.folded)], out.with_suffix(".py-spy.log"))

    def stop(self, title: str) -> Path | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)      # py-spy writes its output on SIGINT
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                pass
        terminate([self.proc], grace=5)
        if not self.folded.exists():
            say(f"  py-spy wrote no profile (see {self.out.with_suffix('.py-spy.log')})")
            return None
        text = summarize(self.folded.read_text(), title)
        self.out.with_suffix(".txt").write_text(text)
        return self.out.with_suffix(".txt")


def shown(path: Path) -> str:
    """`path` relative to the working directory (the repo root, where `make bench` runs) when it
    is under it: py-spy's log and the results JSON are committed, and name no machine's folders."""
    rel = os.path.relpath(path)
    return str(path) if rel.startswith("..") else rel


def _frame_name(frame: str) -> str:
    # py-spy raw frames look like "function (path/to/module.py)"; keep the last two path parts
    name, _, where = frame.partition(" (")
    path = where.rstrip(")")
    head, _, line = path.rpartition(":")
    if line.isdigit():
        path = head
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if parts else path
    return f"{name} ({short})"


def main() -> None:
    """`python -m bench.profile FILE.folded TITLE`: (re)write the summary next to the samples."""
    folded, title = Path(sys.argv[1]), " ".join(sys.argv[2:]) or "profile"
    folded.with_suffix(".txt").write_text(summarize(folded.read_text(), title))


def summarize(folded: str, title: str, top: int = 25) -> str:
    own: Counter = Counter()
    inclusive: Counter = Counter()
    total = 0
    for line in folded.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_frame_name(f) for f in stack.split(";")]
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
    if not total:
        return f"{title}\nno samples\n"
    lines = [title, f"{total} non-idle samples", "", "top functions by own time:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines += ["", "top functions by inclusive time (on the stack):"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(top)]
    ours = [(f, n) for f, n in inclusive.most_common() if "(streams/" in f or "(processors/" in f]
    lines += ["", "makegood's own functions by inclusive time:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in ours[:top + 10]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
