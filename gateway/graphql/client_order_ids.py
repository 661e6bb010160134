"""Client order ids the gateway keeps for platforms that have no field for them.

QST's PlaceOrderRequest has no client order id (its orders are known only by the
server's number), so the id a client gives ``placeOrder`` is kept in the gateway's
store against the order's number and read back for ``Order.clientOrderId``.  A
platform that carries the id returns it in the order itself, and nothing is stored.
"""

from __future__ import annotations

import logging

from gateway import models
from gateway.store import Store

__all__ = ["FLOW_KIND", "recall", "remember"]

logger = logging.getLogger("gateway.client_order_ids")

#: The kind of the store's records (one per tagged order).
FLOW_KIND = "client-order-id"


def _record_id(platform: str, account_id: str, order_id: str) -> str:
    return f"client-order:{platform}:{account_id}:{order_id}"


async def remember(store: Store, order: models.Order, client_order_id: str) -> None:
    """Keep the id of an order just placed.

    The order is placed whatever happens here: a failed save is logged, and the
    payload still shows the id (it is kept with the idempotency record); later reads
    of the order show none.
    """
    record = _record_id(order.platform, order.account_id, order.id)
    try:
        await store.save_flow(record, FLOW_KIND, {"clientOrderId": client_order_id})
    except Exception:
        logger.exception("keeping the client order id of %s failed", record)


async def recall(store: Store, order: models.Order) -> str | None:
    """The order's client id: the platform's own, else the one the gateway kept."""
    if order.client_order_id is not None:
        return order.client_order_id
    state = await store.get_flow(_record_id(order.platform, order.account_id, order.id))
    value = state.get("clientOrderId") if state else None
    return value if isinstance(value, str) else None
