"""Attributes of traders, trader groups and managers (4.14-4.22): key/value metadata.

Semantics [V]: list (4.14 traders: ids optional — none lists every visible trader that
has an attribute — with a page size 1-10,000, default 10,000, only without ids, and
a cursor ≥ 0; 4.15 groups: ids required, no paging; 4.16 managers: a regular manager
its own id only), each with an optional case-insensitive name substring (0-64
characters) and "updated since" (epoch ms), answering one entry per owner (id, its
name/value pairs, the latest row's epoch ms) and the next cursor (null at the end);
upsert (4.17-4.19): 1-100 items of {id, 1-100 attributes}, names 1-64 and values
1-512 UTF-8 characters, never null; unauthorised ids are dropped silently and the
call fails only when no id is authorised; delete (4.20-4.22): 1-10,000 ids and
0-100 names (none: all of them).  Upsert and delete answer ``{}``.

The paths and keys were not recovered (garbled in the docs), so they are ours [I]:
``POST /v2/webserv/attributes/{traders|tradergroups|managers}/list`` with
``{"ids", "pageSize", "cursor", "nameFilter", "updatedSince"}`` →
``{"items": [{"id", "attributes": [{"name", "value"}], "lastUpdateTimestamp"}],
"nextCursor"}``; ``POST …/{kind}`` with ``{"items": [{"id", "attributes"}]}``;
``POST …/{kind}/delete`` with ``{"ids", "names"}``.  The status of "no id
authorised" is garbled too: 403 NOT_ENOUGH_RIGHTS here [I].  Empty-ids lists are
only for traders; a name filter or "updated since" that leaves an owner no
attribute leaves the owner out [I].
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from brokergraph_ctrader.sandbox import fields
from brokergraph_ctrader.sandbox.errors import invalid, no_rights

KINDS = ("traders", "tradergroups", "managers")
MAX_IDS = 10_000
MAX_ITEMS = 100
MAX_NAME, MAX_VALUE, MAX_FILTER = 64, 512, 64

#: May this manager (login) touch owner ``id`` of the kind?
Authorise = Callable[[str, int], bool]


def _ids(body: dict[str, Any], *, required: bool, most: int = MAX_IDS) -> list[int]:
    raw = body.get("ids")
    if raw is None or raw == []:
        if required:
            raise invalid(f"ids must list 1 to {most} ids")
        return []
    if not isinstance(raw, list) or len(raw) > most:
        raise invalid(f"ids must list 1 to {most} ids")
    return [fields.integer("ids", value) for value in raw]


def _bounded_text(name: str, value: Any, most: int) -> str:
    text = fields.text(name, value)
    if len(text) > most:
        raise invalid(f"{name} must be 1 to {most} characters")
    return text


class Attributes:
    """Every owner's attributes: (kind, id) -> name -> (value, updated epoch ms)."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, int], dict[str, tuple[str, int]]] = {}

    def list(
        self, kind: str, body: dict[str, Any], allowed: Authorise, visible: list[int]
    ) -> dict[str, Any]:
        ids = _ids(body, required=kind != "traders")
        paged = not ids
        if "pageSize" in body and not paged:
            raise invalid("pageSize is only for a list without ids")
        size = fields.integer("pageSize", body.get("pageSize", MAX_IDS))
        cursor = fields.integer("cursor", body.get("cursor", 0))
        if not 1 <= size <= MAX_IDS or cursor < 0:
            raise invalid(f"pageSize must be 1 to {MAX_IDS} and cursor >= 0")
        name_filter = fields.optional_text("nameFilter", body.get("nameFilter")) or ""
        if len(name_filter) > MAX_FILTER:
            raise invalid(f"nameFilter must be at most {MAX_FILTER} characters")
        since = body.get("updatedSince")
        since_ms = None if since is None else fields.integer("updatedSince", since)
        owners = ids if ids else sorted(i for i in visible if (kind, i) in self._rows)
        items = []
        for owner in owners:
            if not allowed(kind, owner):
                continue
            rows = {
                name: (value, at)
                for name, (value, at) in self._rows.get((kind, owner), {}).items()
                if name_filter.lower() in name.lower() and (since_ms is None or at >= since_ms)
            }
            if rows:
                items.append(
                    {
                        "id": owner,
                        "attributes": [
                            {"name": n, "value": v} for n, (v, _) in sorted(rows.items())
                        ],
                        "lastUpdateTimestamp": max(at for _, at in rows.values()),
                    }
                )
        if not paged:
            return {"items": items, "nextCursor": None}
        page = items[cursor : cursor + size]
        more = cursor + size < len(items)
        return {"items": page, "nextCursor": cursor + size if more else None}

    def upsert(self, kind: str, body: dict[str, Any], allowed: Authorise, now_ms: int) -> None:
        raw = body.get("items")
        if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_ITEMS:
            raise invalid(f"items must hold 1 to {MAX_ITEMS} entries")
        changes: list[tuple[int, dict[str, str]]] = []
        for item in raw:
            if not isinstance(item, dict):
                raise invalid("each item must be an object")
            owner = fields.integer("id", item.get("id"))
            pairs = item.get("attributes")
            if not isinstance(pairs, list) or not 1 <= len(pairs) <= MAX_ITEMS:
                raise invalid(f"attributes must hold 1 to {MAX_ITEMS} name/value pairs")
            values: dict[str, str] = {}
            for pair in pairs:
                if not isinstance(pair, dict):
                    raise invalid("each attribute must be an object")
                name = _bounded_text("name", pair.get("name"), MAX_NAME)
                values[name] = _bounded_text("value", pair.get("value"), MAX_VALUE)
            changes.append((owner, values))
        granted = [(owner, values) for owner, values in changes if allowed(kind, owner)]
        if not granted:
            raise no_rights("the manager may change none of these ids")
        for owner, values in granted:
            rows = self._rows.setdefault((kind, owner), {})
            rows.update({name: (value, now_ms) for name, value in values.items()})

    def delete(self, kind: str, body: dict[str, Any], allowed: Authorise) -> None:
        ids = _ids(body, required=True)
        raw = body.get("names") or []
        if not isinstance(raw, list) or len(raw) > MAX_ITEMS:
            raise invalid(f"names must hold 0 to {MAX_ITEMS} names")
        names = {_bounded_text("names", n, MAX_NAME) for n in raw}
        granted = [owner for owner in ids if allowed(kind, owner)]
        if not granted:
            raise no_rights("the manager may change none of these ids")
        for owner in granted:
            rows = self._rows.get((kind, owner), {})
            for name in names or list(rows):
                rows.pop(name, None)
            if not rows:
                self._rows.pop((kind, owner), None)
