"""The entity store: IDB-style records applied one by one, with a result per record.

Each record is an insert (ET_Const 2), update (4) or delete (8) keyed by business
codes.  A bad record gets ``IsProcessed = 4`` and its ``ErrorLog``, and the others
in the same call still apply, in order.  ``Aid`` numbers every record received;
``SystemID`` is the row's id in its table (the "main DB" id).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from brokergraph_qort.sandbox.faults import QortFault
from brokergraph_qort.sandbox.seed import SEED_ROWS
from brokergraph_qort.sandbox.tables import (
    CLIENT_AGREES,
    FIRM_ACCOUNTS,
    FIRM_ATTRIBUTE_DEFS,
    FIRM_ATTRIBUTES,
    FIRMS,
    SUBACCS,
    TABLES,
    RecordError,
    Table,
    attribute_value,
    normalize,
)

__all__ = ["DONE", "ERROR", "FirmPacket", "Record", "RecordResult", "Store"]

INSERT, UPDATE, DELETE = 2, 4, 8
DONE: Final = 3
ERROR: Final = 4
#: Extension attributes that are Firms columns (read-only mirrors in the packet).
_FIRM_COLUMN_ATTRIBUTES: Final = frozenset({"Broker"})

Key = tuple[str, ...]
Pairs = list[tuple[str, str]]


@dataclass(slots=True)
class Record:
    system_id: int
    values: dict[str, str]

    def pairs(self, table: Table) -> Pairs:
        """``SystemID`` first, then the columns with a value, in the table's order."""
        ordered = [(n, self.values[n]) for n in table.columns if n in self.values]
        return [("SystemID", str(self.system_id)), *ordered]


@dataclass(frozen=True, slots=True)
class RecordResult:
    aid: int
    is_processed: int
    error_log: str | None = None
    system_id: int | None = None


@dataclass(slots=True)
class FirmPacket:
    firm: Pairs
    subaccs: list[Pairs] = field(default_factory=list)
    agreements: list[Pairs] = field(default_factory=list)
    accounts: list[Pairs] = field(default_factory=list)
    attributes: Pairs = field(default_factory=list)


class Store:
    """Rows per table keyed by business code; seeded at construction."""

    def __init__(self, seed: Mapping[str, Sequence[Mapping[str, str]]] = SEED_ROWS) -> None:
        #: [I] FirmAttributes values are checked against their FirmAttributeDefs type
        #: (off: QORT stores any text, and only the gateway's own check stands).
        self.check_attribute_types = True
        self._rows: dict[str, dict[Key, Record]] = {name: {} for name in TABLES}
        self._last_id: dict[str, int] = dict.fromkeys(TABLES, 0)
        self._last_aid = 0
        for name, rows in seed.items():
            for values in rows:
                self._insert(TABLES[name], dict(values))

    # -- reading ---------------------------------------------------------------------

    def get(self, table: Table, *key: str) -> Record | None:
        return self._rows[table.name].get(key)

    def records(self, table: Table) -> list[Record]:
        return sorted(self._rows[table.name].values(), key=lambda r: r.system_id)

    def owned(self, table: Table, bocode: str) -> list[Record]:
        return [r for r in self.records(table) if r.values.get(table.owner) == bocode]

    def export(self, table_name: str, filters: Iterable[tuple[str, str]]) -> list[Pairs]:
        """Rows of a table whose columns equal every filter (a VALIDATION fault otherwise)."""
        table = TABLES.get(table_name)
        if table is None:
            raise QortFault("VALIDATION", f"unknown table {table_name!r}")
        wanted = list(filters)
        for name, _ in wanted:
            if name != "SystemID" and name not in table.columns:
                raise QortFault("VALIDATION", f"unknown field {name!r} in {table.name}")
        rows = [record.pairs(table) for record in self.records(table)]
        return [r for r in rows if all(dict(r).get(n, "") == v for n, v in wanted)]

    def firm_packet(self, bocode: str) -> FirmPacket:
        """The firm and everything it owns, in one answer (NOT_FOUND when unknown)."""
        firm = self.get(FIRMS, bocode)
        if firm is None:
            raise QortFault("NOT_FOUND", f"no firm with BOCode {bocode!r}")
        mirrored = [(n, v) for n, v in firm.values.items() if n in _FIRM_COLUMN_ATTRIBUTES]
        own = self.owned(FIRM_ATTRIBUTES, bocode)
        attributes = [(r.values["Name"], r.values.get("Value", "")) for r in own]
        return FirmPacket(
            firm=firm.pairs(FIRMS),
            subaccs=[r.pairs(SUBACCS) for r in self.owned(SUBACCS, bocode)],
            agreements=[r.pairs(CLIENT_AGREES) for r in self.owned(CLIENT_AGREES, bocode)],
            accounts=[r.pairs(FIRM_ACCOUNTS) for r in self.owned(FIRM_ACCOUNTS, bocode)],
            attributes=mirrored + attributes,
        )

    # -- writing ---------------------------------------------------------------------

    def set_value(self, table: Table, key: Key, name: str, value: str) -> None:
        """Write one already-validated value (for operations such as SetQuikLeverage)."""
        self._rows[table.name][key].values[name] = value

    def apply(self, table: Table, et_const: str, fields: Sequence[tuple[str, str]]) -> RecordResult:
        """Apply one record; never raises for the record's own faults."""
        self._last_aid += 1
        aid = self._last_aid
        try:
            operation = _operation(et_const)
            values = _validated(table, fields)
            if operation == INSERT:
                record = self._insert(table, values)
            elif operation == UPDATE:
                record = self._update(table, values)
            else:
                record = self._delete(table, values)
        except RecordError as error:
            return RecordResult(aid, ERROR, error_log=str(error))
        return RecordResult(aid, DONE, system_id=record.system_id)

    def _key(self, table: Table, values: Mapping[str, str]) -> Key:
        missing = [n for n in table.key if not values.get(n)]
        if missing:
            raise RecordError(f"{', '.join(missing)} is required")
        return tuple(values[n] for n in table.key)

    def _insert(self, table: Table, values: dict[str, str]) -> Record:
        key = self._key(table, values)
        if key in self._rows[table.name]:
            raise RecordError(f"duplicate {_shown(table, key)} in {table.name}")
        for name, column in table.columns.items():
            if column.required and not values.get(name):
                raise RecordError(f"{name} is required")
            if name not in values and column.default is not None:
                values[name] = column.default
        values = _derived(table, _kept(table, values), values)
        self._check(table, values, values)
        self._last_id[table.name] += 1
        record = Record(self._last_id[table.name], values)
        self._rows[table.name][key] = record
        return record

    def _update(self, table: Table, changes: dict[str, str]) -> Record:
        key = self._key(table, changes)
        record = self._rows[table.name].get(key)
        if record is None:
            raise RecordError(f"no {table.name} record with {_shown(table, key)}")
        for name, value in changes.items():
            if not value and table.columns[name].required:
                raise RecordError(f"{name} is required")
        merged = _derived(table, _kept(table, {**record.values, **changes}), changes)
        self._check(table, merged, changes)
        record.values = merged
        return record

    def _delete(self, table: Table, values: dict[str, str]) -> Record:
        key = self._key(table, values)
        record = self._rows[table.name].pop(key, None)
        if record is None:
            raise RecordError(f"no {table.name} record with {_shown(table, key)}")
        self._cascade(table, record)
        return record

    def _cascade(self, table: Table, record: Record) -> None:
        """A firm takes what it owns along; a sub-account takes its agreements."""
        if table is FIRMS:
            code = record.values["BOCode"]
            for owned in (SUBACCS, CLIENT_AGREES, FIRM_ACCOUNTS, FIRM_ATTRIBUTES):
                rows = self._rows[owned.name]
                for key in [k for k, r in rows.items() if r.values.get(owned.owner) == code]:
                    del rows[key]
        elif table is SUBACCS:
            code = record.values["SubAccCode"]
            rows = self._rows[CLIENT_AGREES.name]
            for key in [k for k, r in rows.items() if r.values.get("SubAccCode") == code]:
                del rows[key]

    def _check(self, table: Table, values: Mapping[str, str], changed: Mapping[str, str]) -> None:
        """References of the changed columns, then the table's own cross-field rules."""
        for name, value in changed.items():
            ref = table.columns[name].ref
            if ref is not None and value and (value,) not in self._rows[ref]:
                raise RecordError(f"unknown {name} {value}")
        if table is SUBACCS:
            self._check_subacc(values, changed)
        elif table is CLIENT_AGREES:
            self._check_agreement(values)
        elif table is FIRM_ATTRIBUTES and values["Name"] in _FIRM_COLUMN_ATTRIBUTES:
            raise RecordError(f"{values['Name']} is a Firms field: set it on the firm")
        elif table is FIRM_ATTRIBUTES and self.check_attribute_types:
            definition = self._rows[FIRM_ATTRIBUTE_DEFS.name].get((values["Name"],))
            if definition is not None and "Value" in changed:
                attribute_value(values["Name"], definition.values["Type"], values["Value"])

    def _check_subacc(self, values: Mapping[str, str], changed: Mapping[str, str]) -> None:
        code = values["SubAccCode"]
        if "OwnerFirm_BOCode" in changed and (code,) in self._rows[SUBACCS.name]:
            owner = values["OwnerFirm_BOCode"]
            for agreement in self._rows[CLIENT_AGREES.name].values():
                a = agreement.values
                if a.get("SubAccCode") == code and a["OwnerFirm_BOCode"] != owner:
                    raise RecordError(
                        f"sub-account {code} has agreement {a['Num']} of firm "
                        f"{a['OwnerFirm_BOCode']}"
                    )

    def _check_agreement(self, values: Mapping[str, str]) -> None:
        subacc_code = values.get("SubAccCode")
        if subacc_code:
            subacc = self._rows[SUBACCS.name].get((subacc_code,))
            owner = subacc.values["OwnerFirm_BOCode"] if subacc else None
            if owner is not None and owner != values["OwnerFirm_BOCode"]:
                raise RecordError(
                    f"sub-account {subacc_code} belongs to firm {owner}, "
                    f"not {values['OwnerFirm_BOCode']}"
                )
        end = values.get("DateEnd", "0")
        if end != "0" and int(end) < int(values["DateSign"]):
            raise RecordError(f"DateEnd {end} is before DateSign {values['DateSign']}")


def _kept(table: Table, values: Mapping[str, str]) -> dict[str, str]:
    """Without the cleared columns ('' is no value, except where '' is the default)."""
    return {n: v for n, v in values.items() if v or table.columns[n].default == ""}


def _derived(table: Table, values: dict[str, str], changed: Mapping[str, str]) -> dict[str, str]:
    """Columns that follow others unless the record sets them (Subaccs.TradeCode)."""
    if table is SUBACCS and "TradeCode" not in changed:
        code = values["SubAccCode"]
        if values.get("TradeCode", "BLOCK") in ("BLOCK", code):
            # Practice: QUIK sub-accounts trade under their own code, the others are blocked.
            values["TradeCode"] = code if values.get("IsQUIK") == "y" else "BLOCK"
    return values


def _shown(table: Table, key: Key) -> str:
    return ", ".join(f"{n} {v}" for n, v in zip(table.key, key, strict=True))


def _operation(et_const: str) -> int:
    value = et_const.strip()
    if value not in ("2", "4", "8"):
        raise RecordError(f"ET_Const must be 2 (insert), 4 (update) or 8 (delete), not {value!r}")
    return int(value)


def _validated(table: Table, fields: Sequence[tuple[str, str]]) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, raw in fields:
        column = table.columns.get(name)
        if column is None:
            raise RecordError(f"unknown field {name!r} in {table.name}")
        if name in values:
            raise RecordError(f"field {name} is given twice")
        values[name] = normalize(name, column, raw)
    return values
