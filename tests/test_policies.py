"""Least privilege: every CMS action the code can call is granted by the policy file of its feature.

The policies in ``policies/`` are what docs/deploy.md and docs/alarms.md tell operators to attach; a new API
call without its RAM action would fail in production with Forbidden, so this test reads the code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "langflow_cms"
FEATURES = {  # module -> the policies a deployment using it attaches
    "delivery/transport.py": ("metrics.json", "events.json"),
    "ops/doctor.py": ("metrics.json",),
    "ops/query.py": ("readback.json",),
    "ops/readback.py": ("readback.json",),
    "ops/top.py": ("readback.json",),
    "ops/compare.py": ("readback.json",),
    "ops/alarms": ("alarms.json",),  # a package: every module in it
}
RAM_NAME = {"DescribeMetricList": "cms:QueryMetricList"}
"""The one documented exception: DescribeMetricList is authorised by cms:QueryMetricList."""
_REQUEST = re.compile(r"aliyunsdkcms\.request\.v20190101\.(\w+)Request")
_LITERAL = re.compile(r"""["']((?:Put|Describe|Delete|Enable|Disable|Create|Modify)[A-Z]\w+)["']""")


def _cms_actions() -> set[str]:
    import aliyunsdkcms.request.v20190101 as requests

    return {p.stem.removesuffix("Request") for p in Path(requests.__file__).parent.glob("*Request.py")}


CMS_ACTIONS = _cms_actions()
"""Every action of CMS 2019-01-01, from the installed SDK (a string like "EnableState" is a parameter)."""


def actions_in(module: Path) -> set[str]:
    files = sorted(module.glob("*.py")) if module.is_dir() else [module]
    text = "\n".join(f.read_text() for f in files)
    return set(_REQUEST.findall(text)) | (set(_LITERAL.findall(text)) & CMS_ACTIONS)


def granted(policies: tuple[str, ...]) -> set[str]:
    actions: set[str] = set()
    for name in policies:
        for statement in json.loads((REPO / "policies" / name).read_text())["Statement"]:
            actions.update(statement["Action"])
    return actions


def test_every_cms_action_the_code_calls_is_in_its_feature_policy():
    missing = {}
    for module, policies in FEATURES.items():
        needed = {RAM_NAME.get(a, f"cms:{a}") for a in actions_in(PACKAGE / module)}
        gap = needed - granted(policies)
        if gap:
            missing[module] = sorted(gap)
    assert missing == {}


def test_the_writing_path_needs_nothing_but_put_custom_metric_and_events():
    calls = actions_in(PACKAGE / "delivery" / "transport.py")
    assert calls == {"PutCustomMetric", "PutCustomEvent"}
    assert granted(("metrics.json",)) == {"cms:PutCustomMetric"}


def test_no_module_outside_the_map_calls_cms():
    mapped = {PACKAGE / m for m in FEATURES}
    others = [
        p
        for p in PACKAGE.rglob("*.py")
        if p not in mapped
        and p.parent not in mapped
        and "emulator" not in p.parts
        and _REQUEST.search(p.read_text())
    ]
    assert others == [], "map these modules to a policy in FEATURES"
