"""The QORT sandbox's error: one ``soap:Fault`` with a ``QortError`` detail."""

from __future__ import annotations

from typing import Final, Literal

__all__ = ["CODES", "QortFault"]

#: Fault codes of the shared contract; the value says whose fault it is (soap:Client/Server).
CODES: Final[dict[str, Literal["Client", "Server"]]] = {
    "INVALID_CREDENTIALS": "Client",
    "APP_NOT_ALLOWED": "Client",
    "BUSY": "Server",
    "INVALID_TOKEN": "Client",
    "VALIDATION": "Client",
    "NOT_FOUND": "Client",
    "LEVERAGE_WITHOUT_UPLOAD": "Client",
    "REPORT_NOT_READY": "Client",
    "INTERNAL": "Server",
    # [I] QORT's throttling answer is not public: the sandbox's throttle_next knob.
    "TOO_MANY_REQUESTS": "Server",
}


class QortFault(Exception):
    """An operation refused; ``http_status`` is 500 as SOAP 1.1 asks, unless a gate says so."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        http_status: int = 500,
        retry_after_seconds: float | None = None,
    ) -> None:
        if code not in CODES:
            raise ValueError(f"unknown QORT fault code {code!r}")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status
        #: Sent as ``<RetryAfter>`` in the detail (and the Retry-After header) when set.
        self.retry_after_seconds = retry_after_seconds

    @property
    def side(self) -> Literal["Client", "Server"]:
        """``Client`` when the caller is at fault, ``Server`` when a retry may succeed."""
        return CODES[self.code]
