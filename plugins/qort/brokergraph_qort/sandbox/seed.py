"""The sandbox's seeded, deterministic data: three clients, their sub-accounts, agreements,
bank accounts, extension attributes, and closed deals (the realised income PIT is taxed on).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

__all__ = ["DEALS", "RATES_TO_RUB", "SEED_ROWS", "Deal"]


@dataclass(frozen=True, slots=True)
class Deal:
    """A closed round trip on a sub-account: bought, then sold; income in its currency."""

    trade_num: str
    subacc: str
    security: str
    qty: int
    buy_date: int
    buy_price: Decimal
    sell_date: int
    sell_price: Decimal
    currency: str

    @property
    def income(self) -> Decimal:
        return (self.sell_price - self.buy_price) * self.qty


#: [D] fixed conversion rates to RUB for PIT (QORT takes the central bank's rate of the day).
RATES_TO_RUB: Final[Mapping[str, Decimal]] = {
    "RUB": Decimal("1"),
    "USD": Decimal("90.00"),
    "EUR": Decimal("98.50"),
}


def _firm(code: str, name: str, **extra: str) -> dict[str, str]:
    return {"BOCode": code, "FirmShortName": name, "Name": name, "EngName": name, **extra}


#: Rows per table, in SystemID order (SystemID = 1, 2, … per table).
SEED_ROWS: Final[Mapping[str, Sequence[Mapping[str, str]]]] = {
    "Firms": [
        _firm(
            "DEMO-001",
            "Demo Client One",
            INN="770112345678",
            IsFirm="n",
            IsResident="y",
            IsTaxResident="y",
            IsQualified="n",
            IsCheckedKYC="y",
            Emails="one@demo.example",
            Phones="+74950000001",
            DateOfBirth="19850412",
            STAT_Const="1",
            FT_Flags="1",
            Broker="demo-broker",
        ),
        _firm(
            "DEMO-002",
            "Demo Client Two",
            INN="770298765432",
            IsFirm="n",
            IsResident="y",
            IsTaxResident="y",
            IsQualified="y",
            IsCheckedKYC="y",
            Emails="two@demo.example;two.backup@demo.example",
            Phones="+74950000002",
            # [D] address and passport: DEMO-002's passport expires, for document-expiry reads.
            LatAddrJu="Moscow, Tverskaya 2",
            IDocType_Name="Passport RF",
            IDocNum="4510 123456",
            IDocDate="20100101",
            IDocDateEnd="20300101",
            DateOfBirth="19790923",
            STAT_Const="1",
            FT_Flags="1",
            Broker="demo-broker",
        ),
        _firm(
            "OTHER-001",
            "Other Broker's Client",
            INN="780311223344",
            IsFirm="n",
            IsResident="y",
            IsTaxResident="y",
            IsQualified="n",
            IsCheckedKYC="n",
            Emails="client@other.example",
            Phones="+78120000003",
            DateOfBirth="19920130",
            STAT_Const="1",
            FT_Flags="1",
            Broker="other-broker",
        ),
    ],
    "Subaccs": [
        {
            "SubAccCode": "DEMO-001-01",
            "SubaccName": "Demo Client One RUB",
            "OwnerFirm_BOCode": "DEMO-001",
            "ACSTAT_Const": "5",
            "IsQUIK": "y",
            "TradeCode": "DEMO-001-01",
            "Currency": "RUB",
            "Leverage": "1",
        },
        {
            "SubAccCode": "DEMO-001-02",
            "SubaccName": "Demo Client One USD",
            "OwnerFirm_BOCode": "DEMO-001",
            "ACSTAT_Const": "5",
            "IsQUIK": "y",
            "TradeCode": "DEMO-001-02",
            "Currency": "USD",
            "Leverage": "1",
        },
        {
            # Onboarding not finished: not yet marked for QUIK.
            "SubAccCode": "DEMO-002-01",
            "SubaccName": "Demo Client Two RUB",
            "OwnerFirm_BOCode": "DEMO-002",
            "ACSTAT_Const": "5",
            "IsQUIK": "n",
            "TradeCode": "BLOCK",
            "Currency": "RUB",
            "Leverage": "1",
        },
        {
            "SubAccCode": "OTHER-001-01",
            "SubaccName": "Other Broker's Client RUB",
            "OwnerFirm_BOCode": "OTHER-001",
            "ACSTAT_Const": "5",
            "IsQUIK": "y",
            "TradeCode": "OTHER-001-01",
            "Currency": "RUB",
            "Leverage": "1",
        },
    ],
    "ClientAgrees": [
        {
            "Num": "BA-2024/001",
            "ClientAgreeTypeShortName": "BA",
            "OwnerFirm_BOCode": "DEMO-001",
            "SubAccCode": "DEMO-001-01",
            "DateCreate": "20240110",
            "DateSign": "20240110",
            "DateEnd": "0",
        },
        {
            "Num": "DA-2024/001",
            "ClientAgreeTypeShortName": "DA",
            "OwnerFirm_BOCode": "DEMO-001",
            "DateCreate": "20240110",
            "DateSign": "20240110",
            "DateEnd": "0",
        },
        {
            "Num": "BA-2024/002",
            "ClientAgreeTypeShortName": "BA",
            "OwnerFirm_BOCode": "DEMO-002",
            "SubAccCode": "DEMO-002-01",
            "DateCreate": "20240215",
            "DateSign": "20240215",
            "DateEnd": "0",
        },
        {
            "Num": "BA-2024/003",
            "ClientAgreeTypeShortName": "BA",
            "OwnerFirm_BOCode": "OTHER-001",
            "SubAccCode": "OTHER-001-01",
            "DateCreate": "20240301",
            "DateSign": "20240301",
            "DateEnd": "0",
        },
    ],
    "FirmAccounts": [
        {
            "AccName": "DEMO-001-BANK-RUB",
            "FirmBOCode": "DEMO-001",
            "FirmShortName": "Demo Client One",
            "BankAccNum": "40817810000000000001",
            "SettlementAsset_ShortName": "RUB",
        },
        {
            "AccName": "DEMO-002-BANK-RUB",
            "FirmBOCode": "DEMO-002",
            "FirmShortName": "Demo Client Two",
            "BankAccNum": "40817810000000000002",
            "SettlementAsset_ShortName": "RUB",
        },
    ],
    # [I] the Data model extension's field definitions (name, type), before their values.
    "FirmAttributeDefs": [
        {"Name": "RiskProfile", "Type": "STRING", "Description": "Risk profile from the test"},
        {"Name": "Citizenship", "Type": "STRING", "Description": "ISO country code"},
        {"Name": "InvestmentLimit", "Type": "DECIMAL", "Description": "Limit in RUB"},
        {"Name": "QualifiedSince", "Type": "DATE", "Description": "Qualified investor since"},
        {"Name": "MarginTrading", "Type": "BOOLEAN", "Description": "Margin trading allowed"},
    ],
    "FirmAttributes": [
        {"BOCode": "DEMO-001", "Name": "RiskProfile", "Value": "moderate"},
        {"BOCode": "DEMO-001", "Name": "Citizenship", "Value": "RU"},
        {"BOCode": "DEMO-001", "Name": "InvestmentLimit", "Value": "1500000.00"},
        {"BOCode": "DEMO-001", "Name": "MarginTrading", "Value": "n"},
        {"BOCode": "DEMO-002", "Name": "RiskProfile", "Value": "aggressive"},
        {"BOCode": "DEMO-002", "Name": "QualifiedSince", "Value": "20230615"},
        {"BOCode": "OTHER-001", "Name": "RiskProfile", "Value": "conservative"},
    ],
}


def _deal(num: str, subacc: str, security: str, qty: int, buy: str, sell: str, cur: str) -> Deal:
    buy_date, buy_price = buy.split("@")
    sell_date, sell_price = sell.split("@")
    return Deal(
        num,
        subacc,
        security,
        qty,
        int(buy_date),
        Decimal(buy_price),
        int(sell_date),
        Decimal(sell_price),
        cur,
    )


#: Closed deals by sell date; Income = (sell - buy) * qty in the sub-account's currency.
DEALS: Final[Sequence[Deal]] = (
    _deal("T-10001", "DEMO-001-01", "SBER", 100, "20240315@250.00", "20240610@310.50", "RUB"),
    _deal("T-10004", "DEMO-001-02", "AAPL", 20, "20240401@170.00", "20240801@215.30", "USD"),
    _deal("T-10008", "OTHER-001-01", "VTBR", 100, "20240403@95.00", "20240830@102.30", "RUB"),
    _deal("T-10002", "DEMO-001-01", "GAZP", 200, "20240702@160.00", "20240905@140.25", "RUB"),
    _deal("T-10006", "DEMO-002-01", "YDEX", 50, "20240510@2500.00", "20241112@3920.00", "RUB"),
    _deal("T-10003", "DEMO-001-01", "LKOH", 10, "20250120@6800.00", "20250311@7150.00", "RUB"),
    _deal("T-10005", "DEMO-001-02", "MSFT", 5, "20250205@410.00", "20250402@380.10", "USD"),
    _deal("T-10007", "DEMO-002-01", "SBER", 300, "20250303@300.00", "20250604@312.40", "RUB"),
)
