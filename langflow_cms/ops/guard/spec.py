"""The ``[guard]`` section of the monitoring TOML (the same file as the alarms; docs/guard.md).

```toml
[guard]
langflow_url = "http://127.0.0.1:7860"
api_key_env = "LANGFLOW_API_KEY"   # the variable holding the key (never the key itself)
flows = ["*"]                      # "*": every flow with a CMS Metric node; or flow ids / names
p95_margin_pct = 20                # roll back when P95 is 20 % above the old one, beyond noise
error_margin_points = 2            # ... or the error rate 2 points above, beyond noise
periods = 3                        # for 3 evaluations in a row
min_runs = 50
min_minutes = 10
max_minutes = 120
cooldown_minutes = 30
interval_s = 60
lookback_minutes = 60              # how far before the switch the old version's runs are read
state_file = "guard-state.json"    # relative to the spec file
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langflow_cms import REPOSITORY_URL
from langflow_cms.ops.alarms.spec import read_toml
from langflow_cms.ops.guard.langflow import API_KEY_VARIABLE
from langflow_cms.ops.guard.rule import Policy

ALL_MONITORED = "*"
_NUMBERS = {
    "p95_margin_pct": (0.0, 1000.0),
    "error_margin_points": (0.0, 100.0),
    "periods": (1, 100),
    "min_runs": (1, 10_000_000),
    "min_minutes": (0.0, 10_080.0),
    "max_minutes": (0.0, 10_080.0),
    "cooldown_minutes": (0.0, 10_080.0),
    "interval_s": (1.0, 86_400.0),
    "lookback_minutes": (1.0, 10_080.0),
}
_TEXTS = ("langflow_url", "api_key_env", "state_file")


class GuardSpecError(ValueError):
    """The [guard] section is invalid; the message says where and what is accepted."""


@dataclass(frozen=True)
class GuardSpec:
    langflow_url: str
    api_key_env: str
    flows: tuple[str, ...]
    policy: Policy
    lookback_minutes: float
    state_file: Path

    def as_dict(self) -> dict[str, Any]:
        return {
            "langflow_url": self.langflow_url,
            "api_key_env": self.api_key_env,
            "flows": list(self.flows),
            "policy": self.policy.as_dict(),
            "lookback_minutes": self.lookback_minutes,
            "state_file": str(self.state_file),
        }


def parse_guard(data: Mapping[str, Any], path: str = "<spec>") -> GuardSpec:
    """Validate the ``guard`` table of a parsed spec."""
    where = f"{path}: [guard]"
    table = data.get("guard")
    if not isinstance(table, Mapping):
        raise GuardSpecError(f"{path}: no [guard] section (see {REPOSITORY_URL}/docs/guard.md)")
    extra = sorted(set(table) - set(_NUMBERS) - set(_TEXTS) - {"flows"})
    if extra:
        raise GuardSpecError(f"{where}: unknown field(s) {', '.join(extra)}")
    numbers: dict[str, float] = {}
    for name, (low, high) in _NUMBERS.items():
        if name not in table:
            continue
        value = table[name]
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise GuardSpecError(f"{where}: {name} must be a number from {low:g} to {high:g}, not {value!r}")
        if isinstance(low, int) and not float(value).is_integer():
            raise GuardSpecError(f"{where}: {name} must be a whole number, not {value!r}")
        numbers[name] = value
    for name in _TEXTS:
        if name in table and (not isinstance(table[name], str) or not table[name].strip()):
            raise GuardSpecError(f"{where}: {name} must be a non-empty string")
    flows = table.get("flows", [ALL_MONITORED])
    if not isinstance(flows, list) or not flows or not all(isinstance(f, str) and f.strip() for f in flows):
        raise GuardSpecError(f'{where}: flows must be a non-empty list of flow ids or names, or ["*"]')
    url = str(table.get("langflow_url", "http://127.0.0.1:7860")).strip()
    if not url.startswith(("http://", "https://")):
        raise GuardSpecError(f"{where}: langflow_url must start with http:// or https://, not {url!r}")
    defaults = Policy()
    policy = Policy(
        p95_margin=numbers.get("p95_margin_pct", defaults.p95_margin * 100) / 100,
        error_margin=numbers.get("error_margin_points", defaults.error_margin * 100) / 100,
        periods=int(numbers.get("periods", defaults.periods)),
        min_runs=int(numbers.get("min_runs", defaults.min_runs)),
        min_minutes=float(numbers.get("min_minutes", defaults.min_minutes)),
        max_minutes=float(numbers.get("max_minutes", defaults.max_minutes)),
        cooldown_minutes=float(numbers.get("cooldown_minutes", defaults.cooldown_minutes)),
        interval_s=float(numbers.get("interval_s", defaults.interval_s)),
    )
    state = Path(str(table.get("state_file", "guard-state.json")))
    if not state.is_absolute():
        state = Path(path).resolve().parent / state if path != "<spec>" else state
    return GuardSpec(
        langflow_url=url,
        api_key_env=str(table.get("api_key_env", API_KEY_VARIABLE)).strip(),
        flows=tuple(f.strip() for f in flows),
        policy=policy,
        lookback_minutes=float(numbers.get("lookback_minutes", 60.0)),
        state_file=state,
    )


def load_guard(path: str | Path) -> GuardSpec:
    """Read the [guard] section of a spec file (TOML)."""
    return parse_guard(read_toml(path, GuardSpecError), str(path))
