"""cTrader WebServices errors: a code, a description and the HTTP status it travels with.

The body is ``{"error": {"errorCode": ..., "description": ...}}`` (``<error>`` in XML).
The doc does not publish the code-to-status mapping; this one is the shared contract's.
"""

from __future__ import annotations

from typing import Any

#: HTTP status of each error code the sandbox emits.
STATUS: dict[str, int] = {
    "INVALID_REQUEST": 400,
    "NOT_ENOUGH_MONEY": 400,
    "CHANGE_BALANCE_BAD_AMOUNT": 400,
    "TRADER_GROUP_NOT_FOUND": 400,
    "CH_BROKER_NOT_FOUND": 400,
    "CH_PLANT_INVALID": 400,
    "WRONG_PASSWORD": 400,
    "CH_EMAIL_ALREADY_EXISTS": 400,
    "TRADER_ALREADY_LINKED": 400,
    "NOT_ENOUGH_RIGHTS": 403,
    "TRADER_NOT_FOUND": 404,
    "REQUEST_FREQUENCY_EXCEEDED": 429,
    "UNKNOWN_ERROR": 500,
}


class CTraderError(Exception):
    """A refusal the server answers with the documented error body."""

    def __init__(self, code: str, description: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.status = status if status is not None else STATUS[code]

    def body(self) -> dict[str, Any]:
        return {"error": {"errorCode": self.code, "description": self.description}}


def invalid(description: str) -> CTraderError:
    return CTraderError("INVALID_REQUEST", description)


def no_rights(description: str) -> CTraderError:
    return CTraderError("NOT_ENOUGH_RIGHTS", description)
