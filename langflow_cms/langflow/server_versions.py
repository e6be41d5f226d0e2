"""In the Langflow server: the ``version`` dimension of a run, found without anyone typing it.

A run's graph is matched to the flow's saved versions by ``versioning``'s rule (a hand-set
``version`` wins and never reaches this module; else the oldest saved version with the same content
fingerprint, ``vN``; else ``draft-<fingerprint>``). The saved versions' fingerprints are read from
Langflow's own database (table ``flow_version``) and cached per flow: a run whose graph is already known
costs one hash of its graph and no query; an unknown graph re-reads the flow's version list (ids only,
data only of new versions), again at most every ``REFRESH_S`` seconds for the same graph (so the first runs
of a version saved a moment ago, running at once, each find it).

Cardinality stays bounded: only versions that run get a series, and at most ``MAX_DRAFTS`` draft
fingerprints per flow and process get their own label; later drafts report as ``draft``.
Any failure (no database, an lfx-only process, a graph without data) gives no label: the run is reported
as before, without a ``version``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from langflow_cms.langflow import versioning

REFRESH_S = 2.0
MAX_DRAFTS = 3
MAX_TRIED = 64
DRAFT_OVERFLOW = "draft"


@dataclass
class _Flow:
    pairs: dict[str, tuple[int, str]] = field(default_factory=dict)
    """Version id -> (version number, fingerprint)."""
    tried: dict[str, float] = field(default_factory=dict)
    """Fingerprint -> when the versions were last read for it (bounded: cleared past ``MAX_TRIED``)."""
    drafts: dict[str, str] = field(default_factory=dict)


class VersionLabels:
    """``vN`` / ``draft-…`` labels of runs, per flow, with the saved versions' fingerprints cached."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._flows: dict[str, _Flow] = {}
        self._lock = threading.Lock()

    def _known(self, flow: _Flow, fp: str) -> str | None:
        return versioning.saved_version(fp, flow.pairs.values())

    async def label(self, data: Any, flow_id: Any) -> str | None:
        """The run's label, or None when it cannot be known."""
        if not flow_id or not isinstance(data, dict) or not data.get("nodes"):
            return None
        fp = versioning.fingerprint(data)
        key = str(flow_id)
        flow = self._flows.setdefault(key, _Flow())
        found = self._known(flow, fp)
        if found is None and self.clock() - flow.tried.get(fp, float("-inf")) >= REFRESH_S:
            if len(flow.tried) >= MAX_TRIED:
                flow.tried.clear()
            await self._refresh(key, flow)  # runs starting meanwhile read too: none is labelled a draft early
            flow.tried[fp] = self.clock()
            found = self._known(flow, fp)
        if found is not None:
            return found
        with self._lock:
            if fp not in flow.drafts:
                if len(flow.drafts) >= MAX_DRAFTS:
                    return DRAFT_OVERFLOW
                flow.drafts[fp] = versioning.draft_label(fp)
            return flow.drafts[fp]

    async def _refresh(self, flow_id: str, flow: _Flow) -> None:
        rows = await read_versions(flow_id, set(flow.pairs))
        if rows is None:
            return
        current, new = rows
        for gone in set(flow.pairs) - current:
            flow.pairs.pop(gone, None)
        for version_id, number, data in new:
            flow.pairs[version_id] = (number, versioning.fingerprint(data))


async def read_versions(flow_id: str, known: set[str]) -> tuple[set[str], list[tuple[str, int, Any]]] | None:
    """(every version id of the flow, [(id, number, data)] of those not in ``known``) from Langflow's DB;
    None outside a Langflow server or when the database cannot be read."""
    try:
        from uuid import UUID

        from langflow.services.database.models.flow_version.model import FlowVersion
        from langflow.services.deps import session_scope
        from sqlmodel import select
    except ImportError:
        return None
    try:
        wanted = UUID(flow_id)
        async with session_scope() as session:
            ids = (await session.exec(select(FlowVersion.id).where(FlowVersion.flow_id == wanted))).all()
            current = {str(i) for i in ids}
            missing = [i for i in ids if str(i) not in known]
            new: list[tuple[str, int, Any]] = []
            if missing:
                found = await session.exec(
                    select(FlowVersion.id, FlowVersion.version_number, FlowVersion.data).where(
                        FlowVersion.id.in_(missing)  # type: ignore[attr-defined]
                    )
                )
                new = [(str(i), int(n), d) for i, n, d in found.all()]
            return current, new
    except Exception:
        return None


LABELS = VersionLabels()


async def version_dimension(graph: Any, flow_id: Any, monitor: Any) -> dict[str, str]:
    """``{"version": label}`` for a run of ``graph`` in the server; ``{}`` when the flow is not monitored,
    sets ``version`` itself, or has no room for one more dimension (``MAX_EXTRA_DIMENSIONS``). Never raises.
    """
    from langflow_cms.langflow.flow_settings import MAX_EXTRA_DIMENSIONS

    try:
        _, monitored, dimensions = monitor.describe(graph)
        if not monitored or versioning.VERSION in dimensions or len(dimensions) >= MAX_EXTRA_DIMENSIONS:
            return {}
        found = await LABELS.label(getattr(graph, "raw_graph_data", None), flow_id)
    except Exception:
        return {}
    return {versioning.VERSION: found} if found else {}
