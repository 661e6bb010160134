"""The holder's side of a routed call: check it, run it through the guards, answer.

Answers are ``(HTTP status, JSON body)``: 401 for a bad signature, 400 for a
malformed or replayed call or a method that may not be routed, 404 for a
connector this replica does not have, 409 when this replica does not hold the
lease under the token the call names (nothing ran: the caller may send it again),
200 with ``result``, ``error`` (a typed error) or ``internal`` (an error id; the
exception is logged here) once the call ran.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from gateway.cluster._codec import decode_arguments, encode, encode_error
from gateway.cluster._leases import Lease
from gateway.cluster._routed import local_attribute, routed_kind
from gateway.cluster._signing import SeenCalls, verify
from gateway.errors import BrokerGraphError
from gateway.resilience import GuardedConnector

__all__ = ["Lookup", "serve_call"]

logger = logging.getLogger("gateway.cluster")

#: The guarded connector and lease of a single-session connector by name, if configured.
Lookup = Callable[[str], tuple[GuardedConnector, Lease] | None]


async def serve_call(
    body: bytes, signature: str | None, *, secret: bytes, seen: SeenCalls, lookup: Lookup
) -> tuple[int, dict[str, Any]]:
    if not verify(secret, signature, body):
        return 401, {"refused": "signature"}
    try:
        data = orjson.loads(body)
        call_id, name, method = str(data["id"]), str(data["connector"]), str(data["method"])
        token, raw_arguments = int(data["token"]), data["arguments"]
        if not isinstance(raw_arguments, dict):
            raise TypeError("arguments must be an object")
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        return 400, {"refused": f"malformed call: {error}"}
    if not seen.first_time(call_id):
        return 400, {"refused": "replayed call"}
    target = lookup(name)
    if target is None:
        return 404, {"refused": f"no single-session connector {name!r} here"}
    guarded, lease = target
    cls = type(guarded.wrapped)
    if routed_kind(cls, method) is None:
        return 400, {"refused": f"{name}.{method} may not be routed"}
    if not lease.serving or lease.token != token:
        return 409, {"refused": "not-holder"}
    try:
        arguments = decode_arguments(cls, method, raw_arguments)
    except (LookupError, TypeError, ValueError) as error:
        return 400, {"refused": f"bad arguments: {error}"}
    lease.enter()
    try:
        result = await local_attribute(guarded, method)(**arguments)
    except BrokerGraphError as error:
        return 200, {"error": encode_error(error)}
    except Exception:
        error_id = uuid.uuid4().hex
        logger.exception("routed call %s.%s failed (error %s)", name, method, error_id)
        return 200, {"internal": error_id}
    finally:
        lease.leave()
    return 200, {"result": encode(result)}
