"""Sending a call to the holder's internal endpoint, and what came of it.

Three outcomes, never two: the holder *answered* (a result or a typed error), the
call was provably *not delivered* (no connection, or the replica refused it before
running anything because it no longer holds the lease) — safe to send again,
even a write — or it was *lost*: sent, and no answer came.  A lost write is never
sent again; the caller reports its outcome as unknown.

Writes travel on a fresh connection each (no keep-alive), so a connection error
really means nothing was sent: a pooled connection the holder closed meanwhile
would fail *after* the request was written, and look lost.
"""

from __future__ import annotations

import enum
import logging
import secrets
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from gateway.cluster._leases import Holder
from gateway.cluster._signing import SIGNATURE_HEADER, sign
from gateway.connectors import MethodKind

__all__ = ["CALL_PATH", "Delivery", "Router", "Sent"]

logger = logging.getLogger("gateway.cluster")

CALL_PATH = "/_cluster/call"


class Delivery(enum.Enum):
    ANSWERED = "ANSWERED"
    NOT_DELIVERED = "NOT_DELIVERED"
    LOST = "LOST"


@dataclass(frozen=True, slots=True)
class Sent:
    delivery: Delivery
    #: The holder's answer: ``{"result": …}``, ``{"error": {...}}`` or ``{"internal": id}``.
    answer: dict[str, Any] | None = None
    why: str = ""


class Router:
    """HTTP to other replicas, signed with the cluster secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._reads = httpx.AsyncClient(limits=httpx.Limits(keepalive_expiry=2.0))
        self._writes = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0))

    async def close(self) -> None:
        await self._reads.aclose()
        await self._writes.aclose()

    async def send(
        self,
        holder: Holder,
        *,
        connector: str,
        method: str,
        kind: MethodKind,
        arguments: dict[str, Any],
        seconds: float,
    ) -> Sent:
        body = orjson.dumps(
            {
                "id": secrets.token_hex(16),
                "connector": connector,
                "method": method,
                "token": holder.token,
                "arguments": arguments,
            }
        )
        client = self._reads if kind is MethodKind.READ else self._writes
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(self._secret, body)}
        try:
            response = await client.post(
                holder.address.rstrip("/") + CALL_PATH,
                content=body,
                headers=headers,
                timeout=seconds,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
            return Sent(Delivery.NOT_DELIVERED, why=f"{holder.address}: {error!r}")
        except httpx.TransportError as error:
            return Sent(Delivery.LOST, why=f"{holder.address}: {error!r}")
        if response.status_code == 200:
            answer: dict[str, Any] = orjson.loads(response.content)
            return Sent(Delivery.ANSWERED, answer)
        if response.status_code == 409:  # not (or no longer) the holder: nothing ran
            return Sent(Delivery.NOT_DELIVERED, why=f"{holder.address} no longer holds it")
        if response.status_code == 401:
            logger.error(
                "replica %s refused a routed call's signature: is [cluster] secret the same "
                "on every replica?",
                holder.address,
            )
            return Sent(Delivery.NOT_DELIVERED, why="signature refused")
        if response.status_code in (400, 404):
            raise RuntimeError(f"replica {holder.address} refused a routed call: {response.text}")
        return Sent(Delivery.LOST, why=f"{holder.address} answered HTTP {response.status_code}")
