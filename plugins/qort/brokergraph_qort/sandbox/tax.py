"""Personal income tax (PIT) the broker withholds as tax agent, over the seeded deals.

[D] 13% of the net realised income in RUB (foreign currency at fixed seeded rates),
never below zero, rounded to whole roubles (Tax Code art. 52).  On a withdrawal the
base is the owner's income from 1 January to the withdrawal date and the tax is at
most 30% of the amount withdrawn (in RUB).

[I] A period's PIT for one sub-account (``SubAccCode``): the ARQA pages name PIT "for a
period" with an export of its rows, not whether it can be asked per sub-account.  With
``by_subaccount`` on (the default) the base, tax and rows are that sub-account's deals;
off, the sub-account is ignored and the firm's whole answer comes back, as a QORT that
cannot narrow it would answer (the sandbox's ``pit_by_subaccount`` knob).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Final

from brokergraph_qort.sandbox.faults import QortFault
from brokergraph_qort.sandbox.seed import DEALS, RATES_TO_RUB, Deal
from brokergraph_qort.sandbox.store import Store
from brokergraph_qort.sandbox.tables import FIRMS, SUBACCS

__all__ = ["PIT_RATE", "WITHDRAWAL_CAP", "Pit", "PitResult", "money", "yyyymmdd"]

PIT_RATE: Final = Decimal("0.13")
WITHDRAWAL_CAP: Final = Decimal("0.30")
_CENT = Decimal("0.01")
#: Amounts stay below this: past it the tax cannot be rounded to whole roubles in the
#: default decimal context (28 digits), which raises instead of answering.
MAX_AMOUNT: Final = Decimal("1e15")


def money(value: Decimal) -> str:
    return str(value.quantize(_CENT, ROUND_HALF_UP))


def yyyymmdd(day: date) -> int:
    return day.year * 10000 + day.month * 100 + day.day


@dataclass(frozen=True, slots=True)
class PitResult:
    tax_base: Decimal
    tax_amount: Decimal
    rows: list[list[tuple[str, str]]]
    currency: str = "RUB"


def _tax(base: Decimal) -> Decimal:
    return (base * PIT_RATE).quantize(Decimal(1), ROUND_HALF_UP)


class Pit:
    def __init__(self, store: Store, deals: Sequence[Deal] = DEALS) -> None:
        self._store = store
        self._deals = deals
        #: [I] CalcPitPeriod narrows to a SubAccCode (off: ignores it).
        self.by_subaccount = True

    def _owner(self, subacc_code: str) -> str | None:
        record = self._store.get(SUBACCS, subacc_code)
        return record.values["OwnerFirm_BOCode"] if record else None

    def _income(self, bocode: str | None, start: date, end: date) -> list[tuple[str, Deal]]:
        """(owner, deal) sold within [start, end], of one firm or of every firm."""
        found = []
        for deal in self._deals:
            owner = self._owner(deal.subacc)
            if owner is None or (bocode is not None and owner != bocode):
                continue
            if yyyymmdd(start) <= deal.sell_date <= yyyymmdd(end):
                found.append((owner, deal))
        return found

    def withdrawal(self, subacc_code: str, currency: str, amount: Decimal, day: date) -> PitResult:
        owner = self._owner(subacc_code)
        if owner is None:
            raise QortFault("NOT_FOUND", f"no sub-account with SubAccCode {subacc_code!r}")
        rate = RATES_TO_RUB.get(currency)
        if rate is None:
            raise QortFault("VALIDATION", f"no rate for currency {currency!r}")
        if not amount.is_finite() or amount <= 0:
            raise QortFault("VALIDATION", "Amount must be a positive number")
        if amount >= MAX_AMOUNT:
            raise QortFault("VALIDATION", f"Amount must be below {MAX_AMOUNT:f}")
        income = self._income(owner, date(day.year, 1, 1), day)
        base = max(Decimal(0), sum((_rub(d) for _, d in income), Decimal(0)))
        cap = (amount * rate * WITHDRAWAL_CAP).quantize(Decimal(1), ROUND_HALF_UP)
        return PitResult(base, min(_tax(base), cap), [])

    def period(
        self, start: date, end: date, bocode: str | None, subacc: str | None = None
    ) -> PitResult:
        if start > end:
            raise QortFault("VALIDATION", "DateFrom is after DateTo")
        if bocode is not None and self._store.get(FIRMS, bocode) is None:
            raise QortFault("NOT_FOUND", f"no firm with BOCode {bocode!r}")
        income = self._income(bocode, start, end)
        if subacc is not None and self.by_subaccount:
            owner = self._owner(subacc)
            if owner is None or (bocode is not None and owner != bocode):
                raise QortFault("NOT_FOUND", f"the firm has no sub-account {subacc!r}")
            income = [(o, deal) for o, deal in income if deal.subacc == subacc]
        per_firm: dict[str, Decimal] = {}
        rows = []
        for owner, deal in income:
            per_firm[owner] = per_firm.get(owner, Decimal(0)) + _rub(deal)
            rows.append(_row(owner, deal))
        bases = [max(Decimal(0), total) for total in per_firm.values()]
        base = sum(bases, Decimal(0))
        return PitResult(base, sum((_tax(b) for b in bases), Decimal(0)), rows)


def _rub(deal: Deal) -> Decimal:
    return deal.income * RATES_TO_RUB[deal.currency]


def _row(owner: str, deal: Deal) -> list[tuple[str, str]]:
    # [D] a deal's row: ImportTrades' names where they exist (TradeNum, Security_Code, Qty,
    # Price, Volume1 = Qty x Price) for each leg, Income in its currency and in RUB.
    return [
        ("OwnerFirm_BOCode", owner),
        ("SubAccCode", deal.subacc),
        ("TradeNum", deal.trade_num),
        ("Security_Code", deal.security),
        ("Qty", str(deal.qty)),
        ("BuyDate", str(deal.buy_date)),
        ("BuyPrice", money(deal.buy_price)),
        ("BuyVolume", money(deal.buy_price * deal.qty)),
        ("SellDate", str(deal.sell_date)),
        ("SellPrice", money(deal.sell_price)),
        ("SellVolume", money(deal.sell_price * deal.qty)),
        ("Income", money(deal.income)),
        ("Currency", deal.currency),
        ("Rate", money(RATES_TO_RUB[deal.currency])),
        ("IncomeRUB", money(_rub(deal))),
    ]
