"""A user's order-entry session: what outlives a connection and what a re-login gets back.

One session per username holds the current account, the Order Activity Log (OAL)
subscription and the activity items recorded while subscribed.  A disconnect keeps it
(orders keep working and filling meanwhile); ``OELoginRequest(is_relogin=true)`` resumes
it; ``is_relogin=false`` starts afresh: first account, OAL unsubscribed, empty log.

OAL choice [D]: order notifications (Order/NetPosition/AccountInformation/text) flow to
an OE-logged-in connection whether or not OAL is subscribed, as QST's docs start the
notification stream at OE login; the OAL subscription only decides whether order
activity is recorded for ``GetActivityItemsRequest``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ActivityItem:
    account: str
    order_number: str
    time_ms: int
    action: str
    status: str
    description: str


@dataclass(slots=True)
class UserSession:
    username: str
    accounts: list[str]
    current_account: str = ""
    oal_subscribed: bool = False
    activity: list[ActivityItem] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.current_account:
            self.current_account = self.accounts[0]

    def reset(self) -> None:
        """A fresh (not re-) OE login."""
        self.current_account = self.accounts[0]
        self.oal_subscribed = False
        self.activity.clear()

    def record(self, item: ActivityItem) -> None:
        if self.oal_subscribed:
            self.activity.append(item)

    def activity_of_current_account(self) -> list[ActivityItem]:
        return [i for i in self.activity if i.account == self.current_account]
