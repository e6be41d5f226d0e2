"""Custom events: PutCustomEvent (write) and DescribeCustomEventAttribute (read).

Request parameters come from the installed SDK request classes; limits from cms-api.md §2.2/§6.5; the
DescribeCustomEventAttribute response shape ``CustomEvents.CustomEvent[{Id, GroupId, Name, Content,
Time}]`` with ``Success`` as a *string* is the Tea model's (``alibabacloud_cms20190101``). Not documented,
so guessed: the default page size (10), newest-first order, the inclusive time range, case-sensitive
keyword matching and the event id format.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from . import params as p
from .queries import query_time_ms
from .store import Store
from .validation import parse_event_info


def put_custom_event(
    params: Mapping[str, str], store: Store, *, strict: bool, request_id: str, access_key_id: str
) -> dict[str, Any]:
    """Validate and store all ``EventInfo.N`` of one call (all-or-nothing)."""
    events = parse_event_info(params, strict=strict)
    store.add_events(events, request_id=request_id, access_key_id=access_key_id)
    return {"Code": "200", "Message": "success"}


def _keywords_match(content: str, query: str) -> bool:
    """``a and b``: both present; ``a or b``: either present; otherwise the text itself (Tea docstring)."""
    text = query.strip()
    if re.search(r"\s+and\s+", text):
        return all(word in content for word in re.split(r"\s+and\s+", text))
    if re.search(r"\s+or\s+", text):
        return any(word in content for word in re.split(r"\s+or\s+", text))
    return text in content


def describe_custom_event_attribute(params: Mapping[str, str], store: Store) -> dict[str, Any]:
    number, size = p.page(params, "PageNumber", "PageSize")
    start = query_time_ms(params.get("StartTime"), "StartTime", 0)
    end = query_time_ms(params.get("EndTime"), "EndTime", 2**62)
    selected = []
    for event in store.events(params.get("Name") or None):
        if params.get("EventId") and event["id"] != params["EventId"]:
            continue
        if params.get("GroupId") and event["group_id"] != params["GroupId"]:
            continue
        if not start <= event["time"] <= end:
            continue
        if params.get("SearchKeywords") and not _keywords_match(event["content"], params["SearchKeywords"]):
            continue
        selected.append(event)
    selected.sort(key=lambda e: e["time"], reverse=True)
    page = selected[(number - 1) * size : number * size]
    return {
        "Code": "200",
        "Message": "",
        "Success": "true",
        "CustomEvents": {
            "CustomEvent": [
                {
                    "Id": e["id"],
                    "GroupId": e["group_id"],
                    "Name": e["name"],
                    "Content": e["content"],
                    "Time": str(e["time"]),
                }
                for e in page
            ]
        },
    }
