"""Trading access in QUIK: the limits upload and the intraday leverage change after it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal

from brokergraph_qort.sandbox.faults import QortFault
from brokergraph_qort.sandbox.store import Store
from brokergraph_qort.sandbox.tables import FIRMS, SUBACCS

__all__ = ["MAX_LEVERAGE", "Quik"]

MAX_LEVERAGE = Decimal(100)


class Quik:
    """Remembers the (sandbox-clock) day each sub-account's limits were last uploaded."""

    def __init__(self, store: Store, today: Callable[[], date]) -> None:
        self._store = store
        self._today = today
        self.uploaded_on: dict[str, date] = {}

    def upload(self, bocode: str) -> tuple[list[str], datetime]:
        """Upload the limits of the firm's active QUIK sub-accounts; their codes and the time."""
        if self._store.get(FIRMS, bocode) is None:
            raise QortFault("NOT_FOUND", f"no firm with BOCode {bocode!r}")
        codes = [
            r.values["SubAccCode"]
            for r in self._store.owned(SUBACCS, bocode)
            if r.values.get("IsQUIK") == "y" and r.values.get("ACSTAT_Const") == "5"
        ]
        if not codes:
            raise QortFault(
                "VALIDATION",
                f"firm {bocode} has no active QUIK sub-account (IsQUIK='y', ACSTAT_Const=5)",
            )
        today = self._today()
        for code in codes:
            self.uploaded_on[code] = today
            self._store.set_value(SUBACCS, (code,), "QuikUploadDate", f"{today:%Y%m%d}")
        now = datetime.now(UTC)
        return codes, datetime.combine(today, now.time().replace(microsecond=0), UTC)

    def set_leverage(self, subacc_code: str, leverage: Decimal) -> None:
        """Change only the leverage; allowed once the limits were uploaded the same day."""
        record = self._store.get(SUBACCS, subacc_code)
        if record is None:
            raise QortFault("NOT_FOUND", f"no sub-account with SubAccCode {subacc_code!r}")
        if not leverage.is_finite() or not 0 < leverage <= MAX_LEVERAGE:
            raise QortFault("VALIDATION", f"Leverage must be above 0 and at most {MAX_LEVERAGE}")
        today = self._today()
        if self.uploaded_on.get(subacc_code) != today:
            raise QortFault(
                "LEVERAGE_WITHOUT_UPLOAD",
                f"the limits of {subacc_code} were not uploaded to QUIK on {today:%Y%m%d}; "
                "call UploadQuikLimits for its firm first",
            )
        self._store.set_value(SUBACCS, (subacc_code,), "Leverage", str(leverage.normalize()))
