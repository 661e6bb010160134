"""DXtrade refusals and the two error bodies they travel in.

dxweb answers ``ErrorDescription {errorCode: int, errorMessage, errorId}``; dxsca-web
(and the sandbox's dxFeed helper) answers ``ApiError {errorCode: str, description}``
(B7).  Only ``30005`` (HTTP 422, insufficient balance) is a published dxweb code; every
other dxweb ``errorCode`` here is the HTTP status itself.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

Surface = Literal["dxweb", "dxsca"]


class DxError(Exception):
    """A refusal: the HTTP status, the dxweb numeric code and the dxsca string code."""

    def __init__(
        self, status: int, code: str, message: str, *, web_code: int | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.web_code = web_code if web_code is not None else status

    def body(self, surface: Surface) -> dict[str, Any]:
        if surface == "dxweb":
            return {
                "errorCode": self.web_code,
                "errorMessage": self.message,
                "errorId": uuid.uuid4().hex,
            }
        return {"errorCode": self.code, "description": self.message}


def bad_request(message: str) -> DxError:
    return DxError(400, "BAD_REQUEST", message)


def unauthorized(message: str = "authentication required") -> DxError:
    return DxError(401, "UNAUTHORIZED", message)


def forbidden(message: str, code: str = "FORBIDDEN") -> DxError:
    return DxError(403, code, message)


def not_found(message: str) -> DxError:
    return DxError(404, "NOT_FOUND", message)


def conflict(message: str) -> DxError:
    return DxError(409, "CONFLICT", message)


def precondition_failed(message: str) -> DxError:
    return DxError(412, "PRECONDITION_FAILED", message)


def insufficient_funds(message: str) -> DxError:
    return DxError(422, "INSUFFICIENT_FUNDS", message, web_code=30005)


def rate_limited(message: str) -> DxError:
    return DxError(429, "TOO_MANY_REQUESTS", message)


def unavailable(status: int) -> DxError:
    return DxError(status, "SERVICE_UNAVAILABLE", "the platform is unavailable (a failure knob)")
