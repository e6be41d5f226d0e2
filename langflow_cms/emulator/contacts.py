"""Alarm contacts and contact groups: PutContact, PutContactGroup, DescribeContactList,
DescribeContactGroupList, DeleteContact, DeleteContactGroup.

Parameters are the installed SDK request classes'; required ones per cms-api.md §6.4 and the Tea models.
Response shapes follow the Tea models (``Contacts.Contact[]`` with Channels/ChannelsState/ContactGroups;
``ContactGroups.ContactGroup[]`` names plus ``ContactGroupList.ContactGroup[]`` details). Guessed, not
documented: the ChannelsState values (``PENDING`` for Mail/SMS until the recipient activates them,
``OK`` otherwise), the default page size (10), and that deleting an unknown name answers HTTP 404 with
``Code "404"``. Strict mode (inferred, not documented) also rejects a group naming an unknown contact and
malformed Mail / DingWebHook values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from . import params as p
from .errors import ApiError, invalid_parameter
from .limits import MAX_CONTACT_NAMES
from .store import Store

CHANNELS = ("DingWebHook", "Mail", "SMS", "AliIM")
_NEEDS_ACTIVATION = ("Mail", "SMS")
OK = {"Code": "200", "Message": "", "Success": True}


def not_found(what: str) -> ApiError:
    """Inferred answer for an unknown resource (CMS uses numeric Codes; the text is DeleteMetricRules')."""
    return ApiError("404", 404, f"The specified resource is not found. ({what})")


def put_contact(params: Mapping[str, str], store: Store, *, strict: bool) -> dict[str, Any]:
    p.required(params, "ContactName", "Describe")
    channels = {c: params[f"Channels.{c}"] for c in CHANNELS if params.get(f"Channels.{c}")}
    if strict and "Mail" in channels and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", channels["Mail"]):
        raise invalid_parameter("Channels.Mail", "must be an email address")
    if strict and "DingWebHook" in channels and not re.match(r"https?://", channels["DingWebHook"]):
        raise invalid_parameter("Channels.DingWebHook", "must be an http(s) URL")
    doc = {"Name": params["ContactName"], "Desc": params["Describe"], "Channels": channels}
    if params.get("Lang"):
        doc["Lang"] = params["Lang"]
    store.put_object("contact", params["ContactName"], doc)
    return dict(OK)


def _group_names_of(store: Store) -> dict[str, list[str]]:
    """contact name -> the groups it belongs to."""
    member_of: dict[str, list[str]] = {}
    for group in store.objects("contact_group"):
        for name in group["doc"]["Contacts"]:
            member_of.setdefault(name, []).append(group["key"])
    return member_of


def describe_contact_list(params: Mapping[str, str], store: Store) -> dict[str, Any]:
    number, size = p.page(params, "PageNumber", "PageSize")
    member_of = _group_names_of(store)
    contacts = []
    for obj in store.objects("contact"):
        doc = obj["doc"]
        if params.get("ContactName") and doc["Name"] != params["ContactName"]:
            continue
        kind, value = params.get("ChanelType"), params.get("ChanelValue")
        if kind and kind not in doc["Channels"]:
            continue
        if value and value not in doc["Channels"].values():
            continue
        contacts.append(
            {
                "Name": doc["Name"],
                "Desc": doc["Desc"],
                "Lang": doc.get("Lang", "zh-cn"),
                "Channels": doc["Channels"],
                "ChannelsState": {
                    c: ("PENDING" if c in _NEEDS_ACTIVATION else "OK") for c in doc["Channels"]
                },
                "ContactGroups": {"ContactGroup": member_of.get(doc["Name"], [])},
                "CreateTime": obj["created_ms"],
                "UpdateTime": obj["updated_ms"],
            }
        )
    return {
        **OK,
        "Total": len(contacts),
        "Contacts": {"Contact": contacts[(number - 1) * size : number * size]},
    }


def delete_contact(params: Mapping[str, str], store: Store) -> dict[str, Any]:
    p.required(params, "ContactName")
    name = params["ContactName"]
    if not any(obj["key"] == name for obj in store.objects("contact")):
        raise not_found(f"contact {name!r}")
    store.delete_objects("contact", [name])
    # The contact also leaves every group (a guess: the docs do not say).
    for group in store.objects("contact_group"):
        if name in group["doc"]["Contacts"]:
            doc = {**group["doc"], "Contacts": [c for c in group["doc"]["Contacts"] if c != name]}
            store.put_object("contact_group", group["key"], doc)
    return dict(OK)


def put_contact_group(params: Mapping[str, str], store: Store, *, strict: bool) -> dict[str, Any]:
    p.required(params, "ContactGroupName")
    names = p.indexed(params, "ContactNames", limit=MAX_CONTACT_NAMES)
    if strict:
        known = {obj["key"] for obj in store.objects("contact")}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise invalid_parameter("ContactNames.N", f"unknown contacts {unknown}")
    subscribed = p.boolean(params, "EnableSubscribed")
    doc = {
        "Name": params["ContactGroupName"],
        "Describe": params.get("Describe", ""),
        "Contacts": names,
        "EnableSubscribed": bool(subscribed),
    }
    store.put_object("contact_group", params["ContactGroupName"], doc)
    return dict(OK)


def describe_contact_group_list(params: Mapping[str, str], store: Store) -> dict[str, Any]:
    number, size = p.page(params, "PageNumber", "PageSize")
    groups = store.objects("contact_group")[(number - 1) * size : number * size]
    total = len(store.objects("contact_group"))
    return {
        **OK,
        "Total": total,
        "ContactGroups": {"ContactGroup": [g["key"] for g in groups]},
        "ContactGroupList": {
            "ContactGroup": [
                {
                    "Name": g["doc"]["Name"],
                    "Describe": g["doc"]["Describe"],
                    "Contacts": {"Contact": g["doc"]["Contacts"]},
                    "EnableSubscribed": g["doc"]["EnableSubscribed"],
                    "EnabledWeeklyReport": False,
                    "CreateTime": g["created_ms"],
                    "UpdateTime": g["updated_ms"],
                }
                for g in groups
            ]
        },
    }


def delete_contact_group(params: Mapping[str, str], store: Store) -> dict[str, Any]:
    p.required(params, "ContactGroupName")
    name = params["ContactGroupName"]
    if not any(obj["key"] == name for obj in store.objects("contact_group")):
        raise not_found(f"contact group {name!r}")
    store.delete_objects("contact_group", [name])
    return dict(OK)
