"""5.3: move a trader to another White Label (``brokerName``) of the same plant.

cTrader documents the call (5.3, verified) but its path and fields were recovered
only from one client (``POST /cid/ctid/changeCtidTraderAccount`` with ``traderLogin``,
``brokerName``, ``environmentName``; observed).  The gateway does not offer the move
yet; a later step does, through :meth:`WhiteLabelMixin.move_to_white_label`.
"""

from __future__ import annotations

from brokergraph_ctrader.connector._base import CTraderBase, _login_of
from gateway.contract import InvalidInput, NotFound, write

MOVE_PATH = "/cid/ctid/changeCtidTraderAccount"


class WhiteLabelMixin(CTraderBase):
    @write
    async def move_to_white_label(self, account_id: str, broker_name: str) -> None:
        """Move the trader ``account_id`` to White Label ``broker_name``.

        Checked before any call: an account id that cannot be a login is NotFound, an
        empty or blank broker name InvalidInput.  cTrader's refusals come through the
        error table: an unknown broker is ``CH_PLANT_INVALID`` (InvalidInput, field
        ``brokerName``), an unknown trader NotFound, a broker the manager may not use
        ``NOT_ENOUGH_RIGHTS``.
        """
        login = _login_of(account_id)
        if login is None:
            raise NotFound("account not found", field=["accountId"])
        broker = broker_name.strip()
        if not broker or broker != broker_name or len(broker) > 100:
            raise InvalidInput(
                "brokerName must be a White Label's name, without surrounding spaces",
                field=["brokerName"],
            )
        body = {
            "traderLogin": int(login),
            "brokerName": broker,
            "environmentName": self.settings.environment,
        }
        await self.client.post(MOVE_PATH, body)
