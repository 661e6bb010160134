"""Models to JSON-safe values and back (gateway.serialization): the one conversion
behind a keyed request's fingerprint, its stored result and replay, the audit details
and the cluster codec's leaves.  Its rules are worked out once per class and type
hint, so each case is also asked a second time, of a value whose class already has
its rule."""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Annotated, Any

import strawberry

from gateway import models
from gateway.connectors import MoneyMovement, PlaceOrderRequest
from gateway.graphql.mutations._inputs import PlaceOrderInput
from gateway.serialization import from_jsonable, to_jsonable

AT = datetime(2026, 3, 4, 5, 6, 7, 890, tzinfo=UTC)
AT_JSON = "2026-03-04T05:06:07.000890+00:00"


def _order(quantity: str = "1E+1", status: str = "PARTIALLY_FILLED") -> models.Order:
    return models.Order(
        platform="qst",
        id="115332",
        account_id="297999",
        symbol="ESZ26",
        side=models.OrderSide.BUY,
        type=models.OrderType.LIMIT,
        quantity=Decimal(quantity),
        status=models.OrderStatus(status),
        price=Decimal("1000.50"),
        created_at=AT,
        executions=[
            models.Execution(id="e1", quantity=Decimal(1), price=Decimal("1.5"), executed_at=AT)
        ],
        raw={"dropped": True},
    )


@dataclasses.dataclass(frozen=True)
class _Day:
    day: date
    at: datetime | None
    amounts: tuple[Decimal, ...]


@dataclasses.dataclass(frozen=True)
class _Tree:
    """A dataclass that refers to itself: its decoder must find its own."""

    name: str
    parent: _Tree | None = None
    children: Sequence[_Tree] = ()
    notes: Mapping[str, Any] | None = None


class _Level(enum.IntEnum):
    LOW = 1


class _StrMap(Mapping[str, int]):
    """A mapping that is neither a dict nor a dataclass."""

    def __init__(self, **items: int) -> None:
        self._items = items

    def __getitem__(self, key: str) -> int:
        return self._items[key]

    def __iter__(self) -> Any:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


def test_models_inputs_and_leaves_as_json_safe_values() -> None:
    order_json = {
        "platform": "qst",
        "id": "115332",
        "account_id": "297999",
        "symbol": "ESZ26",
        "side": "BUY",
        "type": "LIMIT",
        "quantity": "10",  # 1E+1 never travels in exponent form
        "status": "PARTIALLY_FILLED",
        "time_in_force": "DAY",
        "filled_quantity": "0",
        "price": "1000.50",
        "stop_price": None,
        "average_fill_price": None,
        "expires_at": None,
        "created_at": AT_JSON,
        "updated_at": None,
        "client_order_id": None,
        "reject_reason": None,
        "executions": [
            {"id": "e1", "quantity": "1", "price": "1.5", "executed_at": AT_JSON}
        ],  # and no "raw" anywhere
    }
    cases: list[tuple[Any, Any]] = [
        (_order(), order_json),
        (
            PlaceOrderRequest(
                account_id="297999",
                symbol="ESZ26",
                side=models.OrderSide.SELL,
                type=models.OrderType.STOP,
                quantity=Decimal("0.001"),
                idempotency_key="k-00000001",
                stop_price=Decimal(7),
                expires_at=AT,
            ),
            {
                "account_id": "297999",
                "symbol": "ESZ26",
                "side": "SELL",
                "type": "STOP",
                "quantity": "0.001",
                "idempotency_key": "k-00000001",
                "price": None,
                "stop_price": "7",
                "time_in_force": "DAY",
                "expires_at": AT_JSON,
                "client_order_id": None,
            },
        ),
        (
            MoneyMovement(account_id="9000001", amount=Decimal("1.00"), idempotency_key="k-2"),
            {
                "account_id": "9000001",
                "amount": "1.00",
                "idempotency_key": "k-2",
                "currency": None,
                "comment": None,
            },
        ),
        (
            models.BalanceOperation(
                platform="ctrader",
                id="1",
                account_id="9000001",
                kind=models.BalanceOperationKind.DEPOSIT,
                amount=models.Money(Decimal("1.00"), "USD"),
                at=AT,
            ),
            {
                "platform": "ctrader",
                "id": "1",
                "account_id": "9000001",
                "kind": "DEPOSIT",
                "amount": {"amount": "1.00", "currency": "USD"},
                "at": AT_JSON,
                "balance_after": None,
                "comment": None,
                "external_id": None,
            },
        ),
        (  # a GraphQL input: an unset price stays the UNSET marker, as it was
            PlaceOrderInput(
                account_id=strawberry.ID("QWNjb3VudA"),
                symbol="ESZ26",
                side=models.OrderSide.BUY,
                type=models.OrderType.LIMIT,
                quantity=Decimal("1.0"),
                idempotency_key="k-3",
                price=strawberry.UNSET,
            ),
            {
                "account_id": "QWNjb3VudA",
                "symbol": "ESZ26",
                "side": "BUY",
                "type": "LIMIT",
                "quantity": "1.0",
                "idempotency_key": "k-3",
                "price": strawberry.UNSET,
                "stop_price": None,
                "time_in_force": "DAY",
                "expires_at": None,
                "client_order_id": None,
            },
        ),
        (  # mappings: keys as strings, values converted, whatever the mapping class
            {1: [_order(), (Decimal("2.50"), None)], "s": {"t": models.TimeInForce.GTC}},
            {"1": [order_json, ["2.50", None]], "s": {"t": "GTC"}},
        ),
        (_StrMap(a=1), {"a": 1}),
        ((AT, "text", 3, 4.5, True, None), [AT_JSON, "text", 3, 4.5, True, None]),
        (  # a day is its ISO day; a datetime with another offset keeps it
            _Day(
                day=date(2026, 3, 4),
                at=datetime(2026, 3, 4, 1, tzinfo=timezone(timedelta(hours=2))),
                amounts=(Decimal("0.10"), Decimal("-3E-2")),
            ),
            {"day": "2026-03-04", "at": "2026-03-04T01:00:00+02:00", "amounts": ["0.10", "-0.03"]},
        ),
        (_Level.LOW, 1),  # an IntEnum is an enum first, its value the answer
        (models.Order, models.Order),  # a class, not a value: as it is
        ({"raw": {"kept": True}}, {"raw": {"kept": True}}),  # only a dataclass drops raw
    ]
    for value, expected in cases:
        assert to_jsonable(value) == expected, value
        assert to_jsonable(value) == expected, value  # the class's rule, now cached
    assert json.loads(json.dumps(to_jsonable(_order()))) == order_json


def test_models_round_trip_through_json_as_they_were() -> None:
    # A replay answers from the stored JSON: it must rebuild the first answer.
    values: list[Any] = [
        _order(quantity="10"),  # 1E+1 comes back as 10: the same number, below
        _order(quantity="0.001", status="FILLED"),  # a second value of a known class
        PlaceOrderRequest(
            account_id="297999",
            symbol="ESZ26",
            side=models.OrderSide.SELL,
            type=models.OrderType.STOP,
            quantity=Decimal("0.001"),
            idempotency_key="k-00000001",
            stop_price=Decimal(7),
            expires_at=AT,
        ),
        MoneyMovement(account_id="9000001", amount=Decimal("1.00"), idempotency_key="k-2"),
        models.BalanceOperation(
            platform="ctrader",
            id="1",
            account_id="9000001",
            kind=models.BalanceOperationKind.WITHDRAWAL,
            amount=models.Money(Decimal("1.00"), "USD"),
            at=AT,
            balance_after=models.Money(Decimal("0.000"), "USD"),
        ),
        _Day(day=date(2026, 3, 4), at=None, amounts=(Decimal("0.10"),)),
        _Day(day=date(1999, 12, 31), at=AT, amounts=()),
        _Tree("root", children=(_Tree("a", parent=_Tree("p")), _Tree("b")), notes={"n": 1}),
    ]
    for value in values:
        stored = json.loads(json.dumps(to_jsonable(value)))
        rebuilt = from_jsonable(type(value), stored)
        assert rebuilt == value and repr(rebuilt) == repr(value), value
    order = from_jsonable(models.Order, to_jsonable(_order()))
    assert order.executions == _order().executions and order.raw is None
    assert isinstance(order.quantity, Decimal) and str(order.quantity) == "10"
    assert order.created_at == AT and order.created_at.tzinfo is not None


def _decoded(hint: Any, data: Any) -> Any:
    """``from_jsonable`` of a hint that is not a class (a list's items come back as a tuple)."""
    return from_jsonable(hint, data)


def test_hints_decode_their_own_shapes() -> None:
    assert from_jsonable(Decimal, "1.50") == Decimal("1.50")
    assert str(from_jsonable(Decimal, "1.50")) == "1.50"  # the digits as stored
    assert from_jsonable(date, "2026-03-04") == date(2026, 3, 4)
    assert from_jsonable(datetime, AT_JSON) == AT
    assert from_jsonable(models.OrderSide, "SELL") is models.OrderSide.SELL
    assert _decoded(Decimal | None, None) is None
    assert _decoded(list[Decimal], ["1", "2.5"]) == (Decimal(1), Decimal("2.5"))
    assert _decoded(tuple[str, ...], ["a", None]) == ("a", None)
    assert _decoded(list, [1, "x"]) == (1, "x")
    assert _decoded(dict[str, Any], {"a": [1]}) == {"a": [1]}
    assert _decoded(Any, {"a": 1}) == {"a": 1}
    # Extra keys of a stored dataclass (a field since removed) are left out.
    assert from_jsonable(models.Money, {"amount": "2", "currency": "EUR", "gone": 1}) == (
        models.Money(Decimal(2), "EUR")
    )
    # A hint that cannot be a key of the decoders (unhashable metadata) still decodes.
    assert _decoded(Annotated[str, []], "x") == "x"
