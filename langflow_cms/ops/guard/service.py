"""One evaluation of every watched flow (``guard once``; ``guard run`` repeats it), its state and events.

Per flow: find the active version (the flow's graph matched to its saved versions, :mod:`versioning`); when
it changed, start watching the new one against the one before; evaluate with :mod:`guard.rule` on the
fleet stream; roll back through Langflow's API when the rule says so; record every decision as a
CloudMonitor custom event (``langflow_guard``) and one JSON log line (logger ``langflow_cms.guard``).

State (a JSON file) keeps, per flow: the active and previous version, since when, the streak (and the fleet
window it last counted: a look at the same data again adds nothing), the versions
rolled back (never re-evaluated until a person activates them again) and the cool-down. Missing data or a
Langflow/CMS outage decides nothing: the flow's decision is ``unavailable``, said once until it recovers.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from langflow_cms import contract
from langflow_cms.langflow import versioning
from langflow_cms.ops.guard import rule
from langflow_cms.ops.guard.evidence import read_side
from langflow_cms.ops.guard.langflow import LangflowClient, LangflowError
from langflow_cms.ops.guard.spec import ALL_MONITORED, GuardSpec
from langflow_cms.ops.readback import FLEET_PERIOD

LOG = logging.getLogger("langflow_cms.guard")
WATCHING, PROMOTED, ROLLED_BACK, UNDECIDED = "watching", "promoted", "rolled_back", "undecided"
WOULD_ROLL_BACK, ROLLBACK_FAILED, COOLDOWN, UNAVAILABLE = (
    "would_roll_back",
    "rollback_failed",
    "cooldown",
    "unavailable",
)
BASELINE, EVALUATING, DRAFT = "baseline", "evaluating", "draft"
EVENT_DECISIONS = frozenset({WATCHING, PROMOTED, ROLLED_BACK, UNDECIDED, ROLLBACK_FAILED})
"""Decisions sent as CloudMonitor events (the others are log lines only: they repeat every period)."""

Sender = Callable[[str, dict[str, Any]], None]


def _ensure_log_handler() -> None:
    if not LOG.handlers:
        handler = logging.StreamHandler(sys.__stderr__ or sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        LOG.addHandler(handler)
        LOG.propagate = False
        LOG.setLevel(logging.INFO)


def cms_flow_name(flow: dict[str, Any]) -> str:
    """The ``flow`` dimension the plugin reports for a Langflow flow (flow_settings.flow_label's rule on the
    stored JSON): the CMS Metric node's Flow Name, else the flow's name, cleaned."""
    from langflow_cms.langflow.flow_settings import clean_dimension

    for node in (flow.get("data") or {}).get("nodes") or []:
        template = ((node.get("data") or {}).get("node") or {}).get("template") or {}
        name = (
            (template.get("flow_name") or {}).get("value")
            if "CmsMetric" in str(node["data"].get("type"))
            else None
        )
        if isinstance(name, str) and name.strip():
            return clean_dimension(name.strip())
    return clean_dimension(flow.get("name") or flow.get("id"))


def is_monitored(flow: dict[str, Any]) -> bool:
    return any(
        "CmsMetric" in str((n.get("data") or {}).get("type"))
        for n in (flow.get("data") or {}).get("nodes") or []
    )


def _ms(text: str | None) -> int | None:
    if not text:
        return None
    with suppress(ValueError):
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            from datetime import UTC

            moment = moment.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1000)
    return None


@dataclass
class _Case:
    """One flow in one evaluation: the flow as Langflow listed it, its state entry (``st``, updated in
    place), the fields every decision about it carries (``base``), its versions by label, and the time."""

    flow: dict[str, Any]
    st: dict[str, Any]
    base: dict[str, Any]
    labels: dict[str, dict]
    now: float


class Guard:
    """Evaluates the watched flows; ``once()`` is one period."""

    def __init__(
        self,
        spec: GuardSpec,
        client: LangflowClient,
        reader_factory: Callable[[], Any],
        sender: Sender | None = None,
        *,
        dry_run: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.spec = spec
        self.policy = spec.policy
        self.client = client
        self.reader_factory = reader_factory
        self.sender = sender
        self.dry_run = dry_run
        self.clock = clock
        self._reader: Any = None
        self._langflow_down = False
        self._period_failed = False
        self._failing: set[str] = set()
        self.state = self._load()
        _ensure_log_handler()

    # --- state -------------------------------------------------------------------------------------------
    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.spec.state_file.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _save(self) -> None:
        if self.dry_run:
            return
        path = self.spec.state_file
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(self.state, indent=1, sort_keys=True))
        os.replace(temporary, path)

    # --- one period ----------------------------------------------------------------------------------------
    def watched(self) -> list[dict[str, Any]]:
        """The flows to watch, with their data: every monitored one for ``*``, else by id or name."""
        flows = self.client.flows()
        if ALL_MONITORED in self.spec.flows:
            return [f for f in flows if is_monitored(f)]
        wanted = set(self.spec.flows)
        return [f for f in flows if str(f.get("id")) in wanted or f.get("name") in wanted]

    def once(self) -> list[dict[str, Any]]:
        """Evaluate every watched flow once; the decisions (also logged, and sent when they are events)."""
        try:
            flows = self.watched()
        except LangflowError as exc:  # said once until Langflow answers again
            first, self._langflow_down = not self._langflow_down, True
            base = {"flow_id": "*", "flow": "*"}
            return [self._decide(base, UNAVAILABLE, reason=f"Langflow: {exc}", event=False, log=first)]
        self._langflow_down = False
        decisions = []
        for flow in flows:
            decisions.append(self._evaluate_safely(flow))
            if decisions[-1]["decision"] == ROLLED_BACK and "evidence" in decisions[-1]:
                self._save()  # an applied rollback is recorded before anything else can go wrong
        found = {str(f.get("id")) for f in flows} | {str(f.get("name")) for f in flows}
        for missing in sorted(set(self.spec.flows) - found - {ALL_MONITORED}):  # a typo is said, not ignored
            base = {"flow_id": missing, "flow": missing}
            decisions.append(
                self._decide(base, UNAVAILABLE, reason="no flow with this id or name", event=False)
            )
        self._save()
        return decisions

    def period(self) -> list[dict[str, Any]]:
        """``once()`` for ``guard run`` and the CLI: a period that fails as a whole (the state file cannot be
        written, the flow list has a shape nobody expected) decides nothing, is said once until a period
        succeeds again, and the next period comes as planned."""
        try:
            decisions = self.once()
        except Exception as exc:
            first, self._period_failed = not self._period_failed, True
            base = {"flow_id": "*", "flow": "*"}
            return [self._decide(base, UNAVAILABLE, reason=_bounded(exc), event=False, log=first)]
        self._period_failed = False
        return decisions

    def _evaluate_safely(self, flow: dict[str, Any]) -> dict[str, Any]:
        """One flow's evaluation; an unexpected error (a proxy's page, an answer of another shape) decides
        nothing for that flow, is said once until the flow evaluates again, and leaves the others alone."""
        flow_id = str(flow.get("id"))
        try:
            decision = self.evaluate_flow(flow)
        except Exception as exc:
            first = flow_id not in self._failing
            self._failing.add(flow_id)
            base = {"flow_id": flow_id, "flow": str(flow.get("name") or flow_id)}
            return self._decide(base, UNAVAILABLE, reason=_bounded(exc), event=False, log=first)
        self._failing.discard(flow_id)
        return decision

    def evaluate_flow(self, flow: dict[str, Any]) -> dict[str, Any]:
        flow_id = str(flow["id"])
        st = self.state.setdefault(flow_id, {"rolled_back": [], "fingerprints": {}})
        base = {"flow_id": flow_id, "flow": cms_flow_name(flow), "flow_name": flow.get("name")}
        try:
            labels = self._labels(flow_id, st)
        except LangflowError as exc:
            return self._unavailable(st, base, f"Langflow: {exc}")
        active = versioning.label(flow.get("data"), st_pairs(st))
        now = self.clock()
        if active.startswith(versioning.DRAFT_PREFIX):
            return self._decide(
                base,
                WATCHING,
                state=DRAFT,
                active=active,
                reason="the flow's graph is not a saved version",
                event=False,
            )
        previous = st.get("active")
        if previous is None:  # first sight: the version saved before this one, if any, is the baseline
            st.update(self._first_sight(active, labels, now))
            st["active"] = active
            if st.get("baseline"):
                return self._decide(
                    base, WATCHING, st=st, reason="first sight: watching against the version saved before it"
                )
            st["status"] = BASELINE
            return self._decide(
                base,
                WATCHING,
                state=BASELINE,
                active=active,
                reason="first sight: no earlier version",
                event=False,
            )
        if previous != active:
            # a person (or a deploy) activated another version: watch it, even one rolled back before
            st["rolled_back"] = [v for v in st.get("rolled_back", []) if v != active]
            st.pop("counted_window_ms", None)
            st.update(
                active=active,
                baseline=previous,
                since_ms=int(now * 1000),
                streak=0,
                status=EVALUATING,
                undecided_sent=False,
            )
            return self._decide(base, WATCHING, st=st, reason=f"{active} activated after {previous}")
        if st.get("status") != EVALUATING or not st.get("baseline"):
            return self._decide(
                base, st.get("status") or BASELINE, active=active, baseline=st.get("baseline"), event=False
            )
        return self._evaluate(_Case(flow, st, base, labels, now))

    def _evaluate(self, case: _Case) -> dict[str, Any]:
        st, base, now = case.st, case.base, case.now
        since_ms = int(st["since_ms"])
        start_ms = since_ms - int(self.spec.lookback_minutes * 60_000)
        try:
            reader = self._reader or self.reader_factory()
            self._reader = reader
            old = read_side(reader, base["flow"], st["baseline"], start_ms, int(now * 1000))
            new = read_side(reader, base["flow"], st["active"], since_ms, int(now * 1000))
        except Exception as exc:  # CMS down or refusing: decide nothing
            self._reader = None
            return self._unavailable(st, base, f"CloudMonitor: {type(exc).__name__}: {str(exc)[:200]}")
        st.pop("unavailable", None)
        minutes = (now * 1000 - since_ms) / 60_000
        verdict = rule.evaluate(old, new, self.policy, minutes)
        span = FLEET_PERIOD * 1000
        completed = int(now * 1000) // span * span  # the end of the newest completed fleet window
        new_data = completed > int(st.get("counted_window_ms", -1))
        action, streak = rule.next_action(verdict, int(st.get("streak", 0)), self.policy, new_data=new_data)
        evidence = {
            "baseline": old.as_dict(),
            "candidate": new.as_dict(),
            "verdict": verdict.as_dict(),
            "streak": streak,
            "new_data": new_data,
            "window": {
                "start_ms": start_ms,
                "since_ms": since_ms,
                "end_ms": int(now * 1000),
                "active_minutes": round(minutes, 2),
            },
        }
        if not self.dry_run:
            st["streak"] = streak
            if new_data and verdict.outcome != rule.TOO_FEW:
                st["counted_window_ms"] = completed
        if action == rule.PROMOTE:
            if not self.dry_run:
                st["status"] = PROMOTED
            return self._decide(base, PROMOTED, st=st, evidence=evidence)
        if action == rule.ROLL_BACK:
            return self._roll_back(case, evidence)
        if (
            verdict.outcome == rule.TOO_FEW
            and minutes >= self.policy.max_minutes
            and not st.get("undecided_sent")
        ):
            if not self.dry_run:
                st["undecided_sent"] = True
            return self._decide(base, UNDECIDED, st=st, evidence=evidence, reason="too few runs")
        return self._decide(base, WATCHING, st=st, evidence=evidence, event=False)

    def _roll_back(self, case: _Case, evidence: dict[str, Any]) -> dict[str, Any]:
        st, base = case.st, case.base
        old_label, new_label = st["baseline"], st["active"]
        if case.now * 1000 < st.get("cooldown_until_ms", 0):
            return self._decide(
                base,
                COOLDOWN,
                st=st,
                evidence=evidence,
                event=False,
                reason="a rollback of this flow happened less than cooldown_minutes ago",
            )
        target = case.labels.get(old_label)
        if target is None:
            return self._decide(
                base,
                ROLLBACK_FAILED,
                st=st,
                evidence=evidence,
                reason=f"{old_label} is no longer in the flow's version history",
            )
        if self.dry_run:
            return self._decide(
                base, WOULD_ROLL_BACK, st=st, evidence=evidence, target_version_id=target["id"]
            )
        failed = self._activate(case, target["id"])
        if failed is not None:
            reason, running = failed
            return self._decide(
                base, ROLLBACK_FAILED, st=st, evidence=evidence, reason=reason, running=running
            )
        st.pop("counted_window_ms", None)
        st.update(
            status=ROLLED_BACK,
            active=old_label,
            cooldown_until_ms=int((case.now + self.policy.cooldown_minutes * 60) * 1000),
            streak=0,
        )
        st["rolled_back"] = sorted(set(st.get("rolled_back", [])) | {new_label})
        return self._decide(
            base,
            ROLLED_BACK,
            evidence=evidence,
            candidate=new_label,
            baseline=old_label,
            target_version_id=target["id"],
        )

    def _activate(self, case: _Case, version_id: str) -> tuple[str, str | None] | None:
        """Activate the baseline's saved version; None when it is running, else why not and what runs."""
        flow_id, st = case.base["flow_id"], case.st
        try:
            try:
                self.client.activate(flow_id, version_id, case.flow.get("version_token"))
            except LangflowError as exc:
                if exc.status != 409:
                    raise
                # changed since read: act only if it still runs the bad version
                fresh = self.client.flow(flow_id)
                if versioning.label(fresh.get("data"), st_pairs(st)) != st["active"]:
                    return "the flow changed while the guard decided: left as it is", None
                self.client.activate(flow_id, version_id, fresh.get("version_token"))
        except LangflowError as exc:
            applied = self._now_running(flow_id, st)  # an answer lost after the write: look, never guess
            if applied != st["baseline"]:
                return str(exc), applied
        return None

    def _now_running(self, flow_id: str, st: dict[str, Any]) -> str | None:
        try:
            return versioning.label(self.client.flow(flow_id).get("data"), st_pairs(st))
        except LangflowError:
            return None

    # --- helpers -------------------------------------------------------------------------------------------
    def _labels(self, flow_id: str, st: dict[str, Any]) -> dict[str, dict]:
        """Each label's oldest saved version entry."""
        entries = self.client.versions(flow_id)
        known = st.setdefault("fingerprints", {})
        hand_set = st.setdefault("hand_set", {})
        for entry in entries:
            if entry["id"] not in known:
                data = self.client.version(flow_id, entry["id"]).get("data")
                known[entry["id"]] = [int(entry["version_number"]), versioning.fingerprint(data)]
                hand_set[entry["id"]] = versioning.hand_set_version(data)
        ids = {e["id"] for e in entries}
        for gone in set(known) - ids:  # pruned from the history
            known.pop(gone, None)
            hand_set.pop(gone, None)
        by_label: dict[str, dict] = {}
        pairs = st_pairs(st)
        for entry in sorted(entries, key=lambda e: int(e["version_number"])):
            _, fp = known[entry["id"]]
            found = hand_set.get(entry["id"]) or versioning.saved_version(fp, pairs)
            by_label.setdefault(found, entry)
        return by_label

    def _first_sight(self, active: str, labels: dict[str, dict], now: float) -> dict[str, Any]:
        entry = labels.get(active)
        if entry is None:
            return {}
        number = int(entry["version_number"])
        older = [
            (int(e["version_number"]), label)
            for label, e in labels.items()
            if int(e["version_number"]) < number and label != active
        ]
        if not older:
            return {}
        since = _ms(entry.get("created_at")) or int(now * 1000)
        return {"baseline": max(older)[1], "since_ms": since, "streak": 0, "status": EVALUATING}

    def _unavailable(self, st: dict[str, Any], base: dict[str, Any], reason: str) -> dict[str, Any]:
        first = not st.get("unavailable")
        st["unavailable"] = True
        return self._decide(base, UNAVAILABLE, reason=reason, event=False, log=first)

    def _decide(
        self,
        base: dict[str, Any],
        decision: str,
        *,
        st: dict[str, Any] | None = None,
        event: bool = True,
        log: bool = True,
        **details: Any,
    ) -> dict[str, Any]:
        record = {"decision": decision, **base, "dry_run": self.dry_run}
        if st is not None:
            record.update(candidate=st.get("active"), baseline=st.get("baseline"))
        record.update({k: v for k, v in details.items() if v is not None})
        record["time_ms"] = int(self.clock() * 1000)
        if log:
            LOG.info(
                "%s",
                json.dumps({"event": contract.EVENT_GUARD, **record}, separators=(",", ":"), default=str),
            )
        if event and decision in EVENT_DECISIONS and self.sender is not None and not self.dry_run:
            try:
                self.sender(contract.EVENT_GUARD, record)
                record["event_sent"] = True
            except Exception as exc:  # reported in the record; the decision itself stands
                record["event_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        return record


def _bounded(exc: BaseException) -> str:
    """An unexpected error as one short line: its type and the first 200 characters, redacted."""
    from langflow_cms.redact import redact

    return redact(f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}")


def st_pairs(st: dict[str, Any]) -> list[tuple[int, str]]:
    return [(int(number), fp) for number, fp in st.get("fingerprints", {}).values()]
