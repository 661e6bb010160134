"""The DXtrade platform's state and its rules: users, accounts, cash, dxFeed subscriptions.

Routes call these methods; they raise ``DxError`` for refusals.  What the platform must
do afterwards outside the state — send a dxFeed callback, log a user's sessions out — is
put in ``outbox`` and ``logouts`` for the server to drain after each call.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from brokergraph_dxtrade.sandbox.errors import (
    bad_request,
    conflict,
    insufficient_funds,
    not_found,
    precondition_failed,
)
from brokergraph_dxtrade.sandbox.model import (
    ACCOUNT_KINDS,
    ACCOUNT_STATUSES,
    ACCOUNT_TYPES,
    CASH_TYPES,
    CLIENT_STATUSES,
    CLIENT_TYPES,
    PROFILE_FIELDS,
    Account,
    CashOp,
    Client,
    FeedMode,
    Order,
    Position,
    Subscription,
    Transfer,
)
from brokergraph_dxtrade.sandbox.rules import REGISTER, Rules
from brokergraph_dxtrade.sandbox.seed import (
    ADMIN_DOMAIN,
    ADMIN_LOGIN,
    CATEGORIES,
    QUOTES,
    seed,
)
from brokergraph_dxtrade.sandbox.wire import amount, choice, now, optional_text, text

FEED_KINDS = (
    "subscription.activated",
    "subscription.deactivated",
    "subscription.added",
    "subscription.removed",
)
#: What ``subscription.added`` adds when the caller names no subscription.
DEFAULT_SUBSCRIPTION = Subscription("dxFeed Retail Level 1", "2027-12-31", True)


@dataclass(frozen=True)
class FeedEvent:
    """A dxFeed subscription change the sandbox tells the gateway about."""

    type: str
    dx_feed_account_id: str
    login: str
    domain: str
    subscriptions: tuple[dict[str, Any], ...]


def feed_account_id_for(login: str, domain: str) -> str:
    """The dxFeed account id the DxTradeXT mode creates at a user's first login."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"dxfeed:{login}@{domain}"))


def _fpl(position: Position) -> Decimal:
    sign = 1 if position.side == "BUY" else -1
    return (QUOTES[position.symbol] - position.open_price) * position.quantity * sign


def _margin(position: Position) -> Decimal:
    return QUOTES[position.symbol] * position.quantity * position.margin_rate


class DxState:
    """Seeded, deterministic platform state."""

    def __init__(self, rules: Rules | None = None) -> None:
        s = seed()
        #: The [I] behaviours this state follows (``sandbox.rules``).
        self.rules = rules or Rules()
        #: Permissions of the admin users, by (domain, login): the CRM account may
        #: register users but not log in on behalf of them (``sandbox.grant``).
        self.permissions: dict[tuple[str, str], set[str]] = {
            (ADMIN_DOMAIN, ADMIN_LOGIN): {REGISTER}
        }
        self.clients: dict[tuple[str, str], Client] = {c.key: c for c in s.clients}
        self.accounts: dict[tuple[str, str], Account] = {a.key: a for a in s.accounts}
        self.positions: list[Position] = s.positions
        self.orders: list[Order] = s.orders
        self.transfers: list[Transfer] = s.transfers
        self.feeds: dict[str, list[Subscription]] = s.feeds
        #: Category domain -> the values an account may take (``/api/register/category``).
        self.categories: dict[str, list[str]] = {k: list(v) for k, v in CATEGORIES.items()}
        #: The first cash operation under each (clearing, account, id).
        self.cash_ops: dict[tuple[str, str, str], CashOp] = {}
        #: Every cash operation that moved money, in order: a repeated id twice under
        #: ``rules.cash_id_repeat = "apply"``.
        self.cash_applied: list[CashOp] = []
        #: Logins on behalf of another user, allowed or not: (caller, target, allowed).
        self.on_behalf_logins: list[tuple[str, str, bool]] = []
        self.outbox: list[FeedEvent] = []
        self.logouts: list[tuple[str, str]] = []
        self._sequence = itertools.count(1)

    # -- lookups ------------------------------------------------------------------------

    def client(self, domain: str, login: str) -> Client:
        client = self.clients.get((domain, login))
        if client is None:
            raise not_found(f"no user {login}@{domain}")
        return client

    def account(self, clearing_code: str, account_code: str) -> Account:
        account = self.accounts.get((clearing_code, account_code))
        if account is None:
            raise not_found(f"no account {clearing_code}:{account_code}")
        return account

    def account_by_id(self, account_id: str) -> Account | None:
        clearing, _, code = account_id.partition(":")
        return self.accounts.get((clearing, code))

    def accounts_of(self, client: Client) -> list[Account]:
        return [a for a in self.accounts.values() if a.owner == client.key]

    def positions_of(self, account: Account) -> list[Position]:
        return [p for p in self.positions if p.account == account.id]

    def orders_of(self, account: Account) -> list[Order]:
        return [o for o in self.orders if o.account == account.id and o.status == "WORKING"]

    def history_of(self, account: Account) -> list[Order]:
        """The account's orders in a final status, oldest first."""
        final = [o for o in self.orders if o.account == account.id and o.status != "WORKING"]
        return sorted(final, key=lambda o: (o.completed or o.issued, o.order_id))

    def transfers_of(self, account: Account) -> list[Transfer]:
        return [t for t in self.transfers if t.account == account.id]

    def applied(self, op_id: str) -> list[CashOp]:
        """The cash operations that moved money under the client id ``op_id``."""
        return [op for op in self.cash_applied if op.id == op_id]

    def open_pl(self, account: Account) -> Decimal:
        return sum((_fpl(p) for p in self.positions_of(account)), Decimal(0))

    def margin(self, account: Account) -> Decimal:
        return sum((_margin(p) for p in self.positions_of(account)), Decimal(0))

    @staticmethod
    def fpl(position: Position) -> Decimal:
        return _fpl(position)

    @staticmethod
    def position_margin(position: Position) -> Decimal:
        return _margin(position)

    def withdrawable(self, account: Account) -> Decimal:
        """Balance less used margin and open losses; credit is never withdrawable."""
        free = account.balance + min(self.open_pl(account), Decimal(0)) - self.margin(account)
        return max(Decimal(0), min(account.balance, free))

    def subscriptions(self, client: Client) -> list[Subscription]:
        if client.dx_feed_account_id is None:
            return []
        return self.feeds.setdefault(client.dx_feed_account_id, [])

    def _next(self, prefix: str) -> str:
        return f"{prefix}-{next(self._sequence)}"

    # -- users ------------------------------------------------------------------------

    def create_client(self, body: Mapping[str, Any]) -> Client:
        domain, login = text(body, "domain", default="default"), text(body, "login")
        if (domain, login) in self.clients:
            raise conflict(f"user {login}@{domain} already exists")
        feed_id, email = optional_text(body, "dxFeedAccountId"), optional_text(body, "email")
        mode: FeedMode = "crm" if feed_id else "xt" if email else "single"
        client = Client(
            domain,
            login,
            optional_text(body, "password"),
            mode,
            status=choice(body, "status", CLIENT_STATUSES, "ONLINE"),
            type=choice(body, "type", CLIENT_TYPES, "CLIENT"),
            full_name=optional_text(body, "fullName"),
            email=email,
            broker_code=optional_text(body, "brokerCode") or "root_broker",
            dx_feed_account_id=feed_id,
            created=now(),
        )
        self._apply_profile(client, body)
        raw_accounts = body.get("accounts") or []
        if not isinstance(raw_accounts, list):
            raise bad_request("accounts must be a list")
        accounts = [self._parse_account(a, client.key) for a in raw_accounts]
        codes = [a.key for a in accounts]
        if len(set(codes)) != len(codes):
            raise conflict("accounts repeat an accountCode")
        for account in accounts:
            self._check_new_account(account)
        self.clients[client.key] = client
        if feed_id:
            self.feeds.setdefault(feed_id, [])
        for account in accounts:
            self._insert_account(account)
        return client

    def update_client(
        self, domain: str, login: str, body: Mapping[str, Any], if_match: str | None
    ) -> Client:
        client = self.client(domain, login)
        stale = if_match is not None and not _etag_matches(if_match, client.etag)
        if stale and self.rules.etag_checks:
            raise precondition_failed(f"If-Match {if_match} is stale; the ETag is {client.etag}")
        status = choice(body, "status", CLIENT_STATUSES, client.status)
        if client.status == "DISABLED" and status == "ONLINE":
            raise conflict("a DISABLED user is reactivated with status OFFLINE first (seed 004)")
        for key, attr in (("fullName", "full_name"), ("email", "email")):
            if key in body:
                setattr(client, attr, optional_text(body, key))
        if "dxFeedAccountId" in body:
            client.dx_feed_account_id = optional_text(body, "dxFeedAccountId")
        if "password" in body:  # ``password: null`` resets it (B4)
            client.password = optional_text(body, "password")
            client.password_reset = client.password is None
        if "passwordReset" in body:
            client.password_reset = bool(body["passwordReset"])
        if "passwordExpiry" in body:
            expiry = body["passwordExpiry"]
            if expiry is not None and (isinstance(expiry, bool) or not isinstance(expiry, int)):
                raise bad_request("passwordExpiry must be an integer")
            client.password_expiry = expiry
        for group in _group_names(body.get("groupsAdded")):
            if group not in client.groups:
                client.groups.append(group)
        removed = set(_group_names(body.get("groupsRemoved")))
        client.groups = [g for g in client.groups if g not in removed]
        self._apply_profile(client, body)
        self._set_client_status(client, status)
        client.version += 1
        return client

    def _set_client_status(self, client: Client, status: str) -> None:
        if status == "DISABLED":
            self.logouts.append(client.key)
        client.status = status

    @staticmethod
    def _apply_profile(client: Client, body: Mapping[str, Any]) -> None:
        for name in PROFILE_FIELDS:
            if name in body:
                client.profile[name] = body[name]
        if "userMetadata" in body:
            metadata = body["userMetadata"]
            if not isinstance(metadata, dict):
                raise bad_request("userMetadata must be an object")
            client.user_metadata = dict(metadata)
        if "groups" in body:
            client.groups = _group_names(body["groups"])

    def disable(self, domain: str, login: str, cancel_subscriptions: bool) -> Client:
        """seed 004 §2.3: DISABLED, every account TERMINATED, optionally cancel dxFeed."""
        client = self.client(domain, login)
        self._set_client_status(client, "DISABLED")
        for account in self.accounts_of(client):
            if not account.terminal:
                account.status = "TERMINATED"
                account.version += 1
        client.version += 1
        if cancel_subscriptions:
            cancelled = [s for s in self.subscriptions(client) if s.active]
            for subscription in cancelled:
                subscription.active = False
            if cancelled:
                self._emit("subscription.deactivated", client, cancelled)
        return client

    # -- accounts ---------------------------------------------------------------------

    def _parse_account(self, body: Any, owner: tuple[str, str] | None) -> Account:
        if not isinstance(body, dict):
            raise bad_request("an account must be a JSON object")
        currency = text(body, "currency")
        if len(currency) != 3 or not currency.isalpha() or not currency.isupper():
            raise bad_request("currency must be a 3-letter ISO code")
        balance = amount(body.get("balance", 0), "balance")
        credit = amount(body.get("credit", 0), "credit")
        if balance < 0 or credit < 0:
            raise bad_request("balance and credit must not be negative")
        categories = body.get("categories") or []
        if not isinstance(categories, list) or not all(
            isinstance(c, dict) and isinstance(c.get("category"), str) for c in categories
        ):
            raise bad_request("categories must be a list of {category, value}")
        if self.rules.unknown_categories == "refuse":
            for c in categories:
                if str(c.get("value")) not in self.categories.get(c["category"], ()):
                    raise bad_request(f"unknown category value {c['category']}={c.get('value')}")
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise bad_request("metadata must be an object")
        return Account(
            text(body, "clearingCode", default="default"),
            text(body, "accountCode"),
            owner,
            currency,
            balance,
            credit,
            status=choice(body, "status", ACCOUNT_STATUSES, "FULL_TRADING"),
            type=choice(body, "type", ACCOUNT_TYPES, "CLIENT"),
            account_type=choice(body, "accountType", ACCOUNT_KINDS, "LIVE"),
            cash_type=choice(body, "accountCashType", CASH_TYPES, "MARGIN"),
            broker_code=optional_text(body, "brokerCode") or "root_broker",
            categories=[
                {"category": c["category"], "value": str(c.get("value"))} for c in categories
            ],
            metadata=dict(metadata),
            expiration_date=optional_text(body, "expirationDate"),
            registered=now(),
        )

    def _check_new_account(self, account: Account) -> None:
        if account.key in self.accounts:
            raise conflict(f"account {account.id} already exists")

    def _insert_account(self, account: Account) -> None:
        self.accounts[account.key] = account
        if account.balance > 0:
            self._transfer(account, "DEPOSIT", account.balance, "Initial balance", None)

    def add_account(self, domain: str, login: str, body: Mapping[str, Any]) -> Account:
        client = self.client(domain, login)
        account = self._parse_account(body, client.key)
        self._check_new_account(account)
        if client.status == "DISABLED":
            raise conflict(f"user {login}@{domain} is DISABLED; set status OFFLINE first")
        self._insert_account(account)
        client.version += 1
        return account

    def update_accounts(self, updates: list[tuple[Account, Mapping[str, Any]]]) -> None:
        """Check every update first, then apply them all (or none)."""
        planned = [(account, self._plan_update(account, body)) for account, body in updates]
        for account, changes in planned:
            for attr, value in changes.items():
                setattr(account, attr, value)
            account.version += 1
            if account.owner in self.clients:
                self.clients[account.owner].version += 1

    @staticmethod
    def _plan_update(account: Account, body: Mapping[str, Any]) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        status = choice(body, "status", ACCOUNT_STATUSES, account.status)
        if account.terminal and status != account.status:
            raise conflict(f"account {account.id} is {account.status}, a terminal status")
        changes["status"] = status
        if "credit" in body and body["credit"] is not None:
            credit = amount(body["credit"], "credit")
            if credit < 0:
                raise bad_request("credit must not be negative")
            if account.terminal and credit != account.credit:
                raise conflict(f"account {account.id} is {account.status}")
            changes["credit"] = credit
        if "expirationDate" in body:
            changes["expiration_date"] = optional_text(body, "expirationDate")
        if "metadata" in body and body["metadata"] is not None:
            if not isinstance(body["metadata"], dict):
                raise bad_request("metadata must be an object")
            changes["metadata"] = dict(body["metadata"])
        return changes

    # -- cash -------------------------------------------------------------------------

    def cash(
        self, kind: str, clearing: str, code: str, op_id: str, body: Mapping[str, Any]
    ) -> CashOp:
        """Deposit, withdrawal or signed adjustment keyed by a client-generated id."""
        account = self.account(clearing, code)
        request = CashOp(
            kind,
            op_id,
            account,
            text(body, "currency"),
            amount(body.get("amount")),
            optional_text(body, "description"),
            now(),
        )
        first = self.cash_ops.get((clearing, code, op_id))
        repeat = self.rules.cash_id_repeat
        if first is not None and repeat != "apply":
            if repeat == "conflict":
                raise conflict(f"id {op_id} was already used on this account")
            if first.fingerprint() != request.fingerprint():
                raise conflict(f"id {op_id} was used for a different {first.kind} on this account")
            return first
        if request.currency != account.currency:
            raise bad_request(f"currency must be the account's, {account.currency}")
        if kind == "adjustment" and request.amount == 0:
            raise bad_request("an adjustment amount must not be zero")
        if kind != "adjustment" and request.amount <= 0:
            raise bad_request("amount must be positive")
        if account.terminal:
            raise conflict(f"account {account.id} is {account.status}")
        value = -request.amount if kind == "withdrawal" else request.amount
        if value < 0 and -value > self.withdrawable(account):
            available = self.withdrawable(account)
            raise insufficient_funds(f"insufficient balance: {-value} asked, {available} free")
        account.balance += value
        account.version += 1
        self._transfer(account, kind.upper(), value, request.description, op_id)
        self.cash_ops.setdefault((clearing, code, op_id), request)
        self.cash_applied.append(request)
        return request

    def _transfer(
        self, account: Account, kind: str, value: Decimal, comment: str | None, code: str | None
    ) -> None:
        self.transfers.append(
            Transfer(
                account.id,
                code or self._next("transfer"),
                kind,
                value,
                account.currency,
                comment,
                now(),
                self._next("tx"),
            )
        )

    # -- dxFeed -----------------------------------------------------------------------

    def link_feed_account_at_login(self, client: Client) -> None:
        """DxTradeXT mode: the dxFeed account is created at the user's first login."""
        if client.mode == "xt" and client.dx_feed_account_id is None:
            client.dx_feed_account_id = feed_account_id_for(client.login, client.domain)
            self.feeds.setdefault(client.dx_feed_account_id, [])
            client.version += 1

    def feed_change(
        self, kind: str, domain: str, login: str, names: list[dict[str, Any]] | None
    ) -> FeedEvent:
        """Apply a dxFeed-side change to a user's subscriptions and emit its callback."""
        kind = kind if kind.startswith("subscription.") else f"subscription.{kind}"
        if kind not in FEED_KINDS:
            raise ValueError(f"unknown callback kind {kind!r}; one of {FEED_KINDS}")
        client = self.client(domain, login)
        if client.dx_feed_account_id is None:
            if client.mode != "xt":
                raise ValueError(f"{login}@{domain} is in single-feed mode: no dxFeed account")
            self.link_feed_account_at_login(client)  # the user onboarded at dxFeed directly
        current = self.subscriptions(client)
        given = [_subscription(s) for s in names] if names is not None else None
        changed: list[Subscription]
        if kind == "subscription.added":
            changed = given if given is not None else [_copy(DEFAULT_SUBSCRIPTION)]
            for new in changed:
                current[:] = [s for s in current if s.name != new.name]
                current.append(new)
        elif kind == "subscription.removed":
            wanted = {s.name for s in given} if given is not None else {s.name for s in current}
            changed = [s for s in current if s.name in wanted]
            current[:] = [s for s in current if s.name not in wanted]
            for subscription in changed:
                subscription.active = False
        else:
            active = kind == "subscription.activated"
            changed = _select(current, given)
            for subscription in changed:
                subscription.active = active
        return self._emit(kind, client, changed)

    def _emit(self, kind: str, client: Client, changed: list[Subscription]) -> FeedEvent:
        assert client.dx_feed_account_id is not None
        event = FeedEvent(
            kind,
            client.dx_feed_account_id,
            client.login,
            client.domain,
            tuple(s.wire() for s in changed),
        )
        self.outbox.append(event)
        # DxTradeXT logs the user out once an update arrives (seed 004 §2.5).
        self.logouts.append(client.key)
        return event

    def drain(self) -> tuple[list[FeedEvent], list[tuple[str, str]]]:
        events, logouts = self.outbox, self.logouts
        self.outbox, self.logouts = [], []
        return events, logouts


def _select(current: list[Subscription], given: list[Subscription] | None) -> list[Subscription]:
    """The current subscriptions named in ``given`` (new ones are added), or all of them."""
    if given is None:
        return list(current)
    chosen = []
    for new in given:
        found = next((s for s in current if s.name == new.name), None)
        if found is None:
            found = new
            current.append(found)
        else:
            found.end_date = new.end_date
        chosen.append(found)
    return chosen


def _subscription(raw: Mapping[str, Any]) -> Subscription:
    return Subscription(
        str(raw["name"]),
        str(raw.get("endDate", DEFAULT_SUBSCRIPTION.end_date)),
        bool(raw.get("active", True)),
    )


def _copy(subscription: Subscription) -> Subscription:
    return Subscription(subscription.name, subscription.end_date, subscription.active)


def _group_names(raw: Any) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise bad_request("groups must be a list")
    names = []
    for group in raw:
        if isinstance(group, dict):  # a ClientGroup {domain, name}
            group = f"{group.get('domain', 'default')}/{group.get('name')}"
        if not isinstance(group, str):
            raise bad_request("a group is a name or {domain, name}")
        names.append(group)
    return names


def _etag_matches(if_match: str, etag: str) -> bool:
    candidates = [c.strip().removeprefix("W/") for c in if_match.split(",")]
    return any(c in ("*", etag, etag.strip('"')) for c in candidates)
