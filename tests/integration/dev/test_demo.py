"""The README's main job, small: `makegood demo` end to end through the real CLI."""
from __future__ import annotations

import os
import re
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
    cases, won = re.search(r"([\d,]+) cases, ([\d,]+) won paid", decided).groups()
    assert int(cases.replace(",", "")) >= 1 and int(won.replace(",", "")) > 0, decided
    html = Path(out.split("HTML report: ", 1)[1].split("\n", 1)[0])
    assert html.exists() and "<svg" in html.read_text()
    assert "nothing held: every revision is within the limits" in out


def test_demo_under_stricter_limits_shows_and_takes_the_approval_step(settings, tmp_path):
    """The reference incident over the limits: the demo waits for the workers' count, shows what
    is held, approves it as an operator would, and still matches the batch evaluator."""
    import yaml
    from streams.settings import ROOT
    doc = yaml.safe_load((ROOT / "deploy" / "policies" / "kakao-1015.yaml").read_text())
    doc["approval"] = {"above_remedies": 100, "above_won": 10_000_000}
    policy = tmp_path / "strict.yaml"
    policy.write_text(yaml.safe_dump(doc, allow_unicode=True))
    exe = str(Path(sys.executable).with_name("makegood"))
    env = dict(os.environ, MAKEGOOD_NAMESPACE=settings.namespace, MAKEGOOD_POLICY=str(policy))
    done = subprocess.run([exe, "demo", "--scale", "0.2", "--workers", "2"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "== held for approval: INC-20221015-PANGYO" in out
    assert "revision 2: HELD: would issue 370 remedies, 20,820 won" in out
    assert "$ makegood incident approve INC-20221015-PANGYO --revision 3 --by demo-operator" in out
    assert "revision 3 approved by demo-operator" in out
    assert "matches the batch evaluator: 435 remedies" in out     # 431 + 4 paid by the demo's reviewers
