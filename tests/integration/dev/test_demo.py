"""The README's main job, small: `makegood demo` end to end through the real CLI."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_runs_end_to_end_and_matches_the_batch_evaluator(settings):
    exe = str(Path(sys.executable).with_name("makegood"))
    env = dict(os.environ, MAKEGOOD_NAMESPACE=settings.namespace)
    done = subprocess.run([exe, "demo", "--scale", "0.2", "--workers", "1"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "matches the batch evaluator" in out
    for section in ("Remedies by service and action", "Money and time", "Dead letters", "Timing"):
        assert section in out
    # the demo's reviewers decided a few large business losses, and the report shows them paid
    assert "review decisions published" in out
    decided = next(line for line in out.splitlines() if "decided by review" in line)
    cases, won = decided.split()[-5], decided.split()[-2]
    assert int(cases) >= 1 and int(won.replace(",", "")) > 0, decided
    html = Path(out.split("HTML report: ", 1)[1].split("\n", 1)[0])
    assert html.exists() and "<svg" in html.read_text()
