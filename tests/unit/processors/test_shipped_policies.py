"""Every policy shipped in deploy/policies loads, and the what-if one really differs."""
from pathlib import Path

import pytest

from processors.policy import load_policy

POLICIES = sorted((Path(__file__).resolve().parents[3] / "deploy" / "policies").glob("*.yaml"))


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.name)
def test_shipped_policy_loads(path):
    policy = load_policy(str(path))
    assert policy.version and policy.rules


def test_whatif_policy_is_more_generous_than_the_reference():
    ref = {p.name: load_policy(str(p)) for p in POLICIES}
    assert {"kakao-1015.yaml", "whatif-5day.yaml"} <= set(ref)
    a, b = ref["kakao-1015.yaml"], ref["whatif-5day.yaml"]
    assert a.version != b.version
    assert [r.id for r in a.rules] == [r.id for r in b.rules]
    assert a.rules != b.rules
