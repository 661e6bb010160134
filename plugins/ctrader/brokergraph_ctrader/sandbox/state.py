"""The sandbox's state and business rules, free of HTTP so they read as a spec.

Rules [V unless marked]: a manager sees a trader only if the trader's group is among
its allowed groups and its broker is not disabled for it (403 NOT_ENOUGH_RIGHTS
otherwise, absent from lists); money is scaled by moneyDigits; equity = balance +
nonWithdrawableBonus (credit) + unrealised P&L of open positions at the fixed marks,
freeMargin = equity - usedMargin, cashEquity = balance + unrealised P&L.
A WITHDRAW fails with NOT_ENOUGH_MONEY beyond the funds or "when open positions carry
unrealised P&L" [V]: the sandbox reads that as "beyond what stays once the open
positions are settled and their margin kept" — at most min(balance, balance +
unrealised P&L - usedMargin), so neither an open profit nor the credit backing a
losing position can be paid out [I, the rule's reading]; a credit withdrawal at most
min(credit, freeMargin) [I].

``externalId`` is only "the broker's reference" [V].  Two [I] readings, each a knob:
``dedupe_external_ids`` (on by default): a change whose ``externalId`` was already
used on that login's ledger answers the first history id and moves nothing — off,
it is a note only and a repeat moves money again (the alternative the vendor does
not rule out); ``refuse_reused_external_ids`` (on): with dedupe on, a repeat whose
type or amount differs is refused INVALID_REQUEST, not answered with the first id.

Manager tokens [V]: never expire; dead once the manager's password changes
(``change_manager_password``); ``revoke_tokens`` kills them as a password change
would, the password staying.  Other [I] choices: new logins count up from 9000008,
users from 1004; the deposit currency may change only on an account without money
or open positions.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from brokergraph_ctrader.sandbox import fields, seed
from brokergraph_ctrader.sandbox.attributes import Attributes, Authorise
from brokergraph_ctrader.sandbox.errors import CTraderError, invalid, no_rights
from brokergraph_ctrader.sandbox.market import BY_NAME, DEPOSIT_ASSETS, rate
from brokergraph_ctrader.sandbox.model import ClosingDeal, Link, Manager, Position, Trader, User
from brokergraph_ctrader.sandbox.money import parse_precise_amount, to_scaled, to_units
from brokergraph_ctrader.sandbox.times import to_ms
from brokergraph_ctrader.sandbox.traders import Figures, read_fields, wire

BALANCE_TYPES = (
    "DEPOSIT",
    "WITHDRAW",
    "DEPOSIT_NONWITHDRAWABLE_BONUS",
    "WITHDRAW_NONWITHDRAWABLE_BONUS",
)
BONUS_TYPES = ("DEPOSIT", "WITHDRAW")
_TOKENS = uuid.UUID("5f0c2a52-7a51-4c61-9d7e-0c7d2b1f3a11")


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One balance (4.7) or bonus (4.10) operation."""

    id: int
    login: int
    type: str
    amount: int
    timestamp_ms: int
    external_id: str | None = None
    comment: str | None = None
    external_note: str | None = None
    source: str | None = None


def _note(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return str(value)
    return fields.optional_text(key, value)


class State:
    def __init__(self, seed_value: int, clock: Callable[[], datetime]) -> None:
        world = seed.build_world(seed_value)
        self.seed = seed_value
        self.clock = clock
        self.managers = {manager.login: manager for manager in seed.MANAGERS}
        self.groups = {group.name: group for group in seed.GROUPS}
        self.users: dict[int, User] = world.users
        self.traders: dict[int, Trader] = world.traders
        self.links: dict[int, Link] = world.links
        self.positions: list[Position] = world.positions
        self.deals: list[ClosingDeal] = world.deals
        self.balance_history: list[HistoryEntry] = []
        self.bonus_history: list[HistoryEntry] = []
        for login, kind, amount in world.balance_history:
            registered = self.traders[login].registration_ms
            self._record(
                self.balance_history, seed.FIRST_BALANCE_HISTORY_ID, login, kind, amount, registered
            )
        for login, kind, amount in world.bonus_history:
            registered = self.traders[login].registration_ms
            self._record(
                self.bonus_history, seed.FIRST_BONUS_HISTORY_ID, login, kind, amount, registered
            )
        self.next_login = max(self.traders) + 1
        self.next_user_id = max(self.users) + 1
        self.next_link_id = seed.FIRST_LINK_ID + len(self.links)
        #: (ledger, login, externalId) -> (history id, type, scaled amount) of the first use.
        self._external: dict[tuple[str, int, str], tuple[int, str, int]] = {}
        #: Knobs (see the module docstring), set by the sandbox.
        self.dedupe_external_ids = True
        self.refuse_reused_external_ids = True
        self.attributes = Attributes()
        #: Per manager login: how many times its tokens were revoked.
        self._token_generation: dict[int, int] = {}
        self._equity_day: dict[int, date] = {}
        self._last_stamp = 0
        for trader in self.traders.values():
            self._equity_changed(trader)

    # -- time ---------------------------------------------------------------------

    def stamp(self) -> int:
        """Epoch ms of now, strictly increasing so new objects never share a timestamp."""
        self._last_stamp = max(to_ms(self.clock()), self._last_stamp + 1)
        return self._last_stamp

    # -- managers -----------------------------------------------------------------

    def _token(self, manager: Manager) -> str:
        generation = self._token_generation.get(manager.login, 0)
        name = f"{self.seed}:{manager.login}:{manager.password_md5}:{generation}"
        return str(uuid.uuid5(_TOKENS, name))

    def change_manager_password(self, login: int, password_md5: str) -> None:
        """cBroker's password change: the manager's tokens die, the new hash logs in."""
        self.managers[login] = dataclasses.replace(self.managers[login], password_md5=password_md5)

    def revoke_tokens(self, login: int | None = None) -> None:
        """Every token of ``login`` (of every manager when None) dies; passwords stay."""
        for manager in [login] if login is not None else list(self.managers):
            self._token_generation[manager] = self._token_generation.get(manager, 0) + 1

    def issue_token(self, body: dict[str, Any]) -> str:
        login = fields.integer("login", body.get("login"))
        hashed = fields.md5_hex("hashedPassword", body.get("hashedPassword"))
        manager = self.managers.get(login)
        if manager is None or manager.password_md5 != hashed:
            raise no_rights("wrong manager login or password")
        return self._token(manager)

    def manager_for_token(self, token: str | None) -> Manager:
        for manager in self.managers.values():
            if token and token == self._token(manager):
                return manager
        raise no_rights("missing or unknown token")

    # -- traders ------------------------------------------------------------------

    def trader(self, manager: Manager, login: int) -> Trader:
        trader = self.traders.get(login)
        if trader is None:
            raise CTraderError("TRADER_NOT_FOUND", f"trader {login} not found")
        if not manager.sees(trader.group_name, trader.broker_name):
            raise no_rights(f"the manager has no access to trader {login}")
        return trader

    def authorise(self, manager: Manager) -> Authorise:
        """Which attribute owners ``manager`` may read and change (4.14-4.22)."""
        groups = {g.id: g.name for g in self.groups.values()}

        def allowed(kind: str, owner: int) -> bool:
            if kind == "traders":
                trader = self.traders.get(owner)
                return trader is not None and manager.sees(trader.group_name, trader.broker_name)
            if kind == "tradergroups":
                return groups.get(owner) in manager.allowed_groups
            return owner == manager.login  # no super-administrator is seeded

        return allowed

    def visible(self, manager: Manager) -> list[Trader]:
        return [t for t in self.traders.values() if manager.sees(t.group_name, t.broker_name)]

    def unrealised(self, trader: Trader) -> Decimal:
        """Unrealised P&L of the trader's open positions at the marks, deposit currency."""
        total = Decimal(0)
        for position in self.positions:
            if position.login == trader.login:
                symbol = BY_NAME[position.symbol]
                side = 1 if position.direction == "BUY" else -1
                move = (symbol.mark - position.entry_price) * position.volume * side
                total += move * rate(symbol.quote, trader.deposit_currency)
        return total

    def figures(self, trader: Trader) -> Figures:
        digits = trader.money_digits
        unrealised = to_scaled(self.unrealised(trader), digits)
        margin = sum(
            (to_scaled(p.used_margin, digits) for p in self.positions if p.login == trader.login),
            start=0,
        )
        equity = trader.balance + trader.non_withdrawable_bonus + unrealised
        return Figures(equity, margin, equity - margin, trader.balance + unrealised)

    def _equity_changed(self, trader: Trader) -> None:
        """Keep minEquityDaily / maxEquityDaily for the current UTC day."""
        equity, today = self.figures(trader).equity, self.clock().date()
        if self._equity_day.get(trader.login) != today:
            self._equity_day[trader.login] = today
            trader.min_equity_daily = trader.max_equity_daily = equity
        trader.min_equity_daily = min(trader.min_equity_daily, equity)
        trader.max_equity_daily = max(trader.max_equity_daily, equity)

    def wire(self, trader: Trader) -> dict[str, Any]:
        self._equity_changed(trader)
        return wire(trader, self.figures(trader))

    def _check_placement(self, manager: Manager, group: str, broker: str, currency: str) -> None:
        if broker not in seed.BROKERS:
            raise CTraderError("CH_BROKER_NOT_FOUND", f"broker {broker!r} not found")
        if group not in self.groups:
            raise CTraderError("TRADER_GROUP_NOT_FOUND", f"trader group {group!r} not found")
        if currency not in DEPOSIT_ASSETS:
            raise invalid(f"depositCurrency {currency!r} is not a deposit asset")
        if not manager.sees(group, broker):
            raise no_rights(f"the manager has no access to group {group!r} of broker {broker!r}")

    def _check_currency(self, trader: Trader, currency: str) -> None:
        if currency == trader.deposit_currency:
            return
        busy = any(p.login == trader.login for p in self.positions)
        if busy or trader.balance or trader.bonus or trader.non_withdrawable_bonus:
            raise invalid("depositCurrency can change only on an account without money")

    def create_trader(self, manager: Manager, body: dict[str, Any]) -> Trader:
        values = read_fields(body, "create")
        self._check_placement(
            manager, values["group_name"], values["broker_name"], values["deposit_currency"]
        )
        stamp = self.stamp()
        trader = Trader(
            login=self.next_login, registration_ms=stamp, last_update_ms=stamp, **values
        )
        self.next_login += 1
        self.traders[trader.login] = trader
        if trader.balance:
            self._record(
                self.balance_history,
                seed.FIRST_BALANCE_HISTORY_ID,
                trader.login,
                "DEPOSIT",
                trader.balance,
                stamp,
            )
        self._equity_changed(trader)
        return trader

    def replace_trader(self, manager: Manager, login: int, body: dict[str, Any]) -> None:
        trader = self.trader(manager, login)
        values = read_fields(body, "replace")
        self._check_placement(
            manager, values["group_name"], values["broker_name"], values["deposit_currency"]
        )
        self._check_currency(trader, values["deposit_currency"])
        for attribute, value in values.items():
            setattr(trader, attribute, value)
        trader.last_update_ms = self.stamp()
        self._equity_changed(trader)

    def patch_trader(self, manager: Manager, login: int, body: dict[str, Any]) -> None:
        trader = self.trader(manager, login)
        values = read_fields(body, "patch")
        group = values.get("group_name", trader.group_name)
        broker = values.get("broker_name", trader.broker_name)
        currency = values.get("deposit_currency", trader.deposit_currency)
        self._check_placement(manager, group, broker, currency)
        self._check_currency(trader, currency)
        contact = values.pop("contact_details", None)
        if contact is not None:
            merged = {**trader.contact_details, **contact}
            trader.contact_details = {k: v for k, v in merged.items() if v is not None}
        for attribute, value in values.items():
            setattr(trader, attribute, value)
        trader.last_update_ms = self.stamp()
        self._equity_changed(trader)

    def delete_trader(self, manager: Manager, login: int) -> None:
        self.trader(manager, login)
        del self.traders[login]
        self.links.pop(login, None)
        self.positions = [p for p in self.positions if p.login != login]
        self.deals = [d for d in self.deals if d.login != login]

    def list_traders(
        self,
        manager: Manager,
        start: datetime,
        end: datetime,
        group_id: int | None,
        keys: list[str] | None,
        chunk: int,
        last_deal: tuple[datetime, datetime] | None = None,
        has_open_positions: bool | None = None,
    ) -> dict[str, Any]:
        """Traders registered in [start, end), newest first, at most ``chunk`` of them;
        optionally only those whose last deal falls in ``last_deal`` [from, to) and
        those with (or without) open positions."""
        group = None
        if group_id is not None:
            group = next((g for g in self.groups.values() if g.id == group_id), None)
            if group is None:
                raise CTraderError("TRADER_GROUP_NOT_FOUND", f"trader group {group_id} not found")
        low, high = to_ms(start), to_ms(end)
        rows = [
            t
            for t in self.visible(manager)
            if low <= t.registration_ms < high and (group is None or t.group_name == group.name)
        ]
        if last_deal is not None:
            first, last = last_deal
            times = {t.login: self.last_deal_at(t.login) for t in rows}
            rows = [t for t in rows if (at := times[t.login]) is not None and first <= at < last]
        if has_open_positions is not None:
            holding = {p.login for p in self.positions}
            rows = [t for t in rows if (t.login in holding) == has_open_positions]
        rows.sort(key=lambda t: (t.registration_ms, t.login), reverse=True)
        items = [self.wire(t) for t in rows[:chunk]]
        if keys:
            items = [{k: v for k, v in item.items() if k in keys} for item in items]
        return {"trader": items, "hasMore": len(rows) > chunk}

    def last_deal_at(self, login: int) -> datetime | None:
        """When the trader's latest deal (an opening or a closing one) was made."""
        times = [p.opened_at for p in self.positions if p.login == login]
        times += [d.closed_at for d in self.deals if d.login == login]
        return max(times, default=None)

    # -- money --------------------------------------------------------------------

    def _record(
        self,
        history: list[HistoryEntry],
        first_id: int,
        login: int,
        kind: str,
        amount: int,
        at_ms: int,
        body: dict[str, Any] | None = None,
    ) -> int:
        body = body or {}
        entry = HistoryEntry(
            first_id + len(history),
            login,
            kind,
            amount,
            at_ms,
            _note(body, "externalId"),
            _note(body, "comment"),
            _note(body, "externalNote"),
            _note(body, "source"),
        )
        history.append(entry)
        return entry.id

    @staticmethod
    def _check_login(body: dict[str, Any], login: int) -> None:
        if body.get("login") is not None and fields.integer("login", body["login"]) != login:
            raise invalid("the body's login differs from the path's")

    def _change(
        self, manager: Manager, login: int, body: dict[str, Any], family: str
    ) -> tuple[Trader, str, int, int | None]:
        """Validate a balance/bonus change; the trader, type, scaled amount, and the first
        history id when this externalId was used already (and is deduplicated)."""
        trader = self.trader(manager, login)
        self._check_login(body, login)
        types = BALANCE_TYPES if family == "balance" else BONUS_TYPES
        kind = fields.one_of(types)("type", body.get("type"))
        amount = parse_precise_amount(body.get("preciseAmount"), trader.money_digits)
        external = _note(body, "externalId")
        for key in ("comment", "externalNote", "source"):
            _note(body, key)  # validated now, stored once the change is made
        if not external or not self.dedupe_external_ids:
            return trader, kind, amount, None
        earlier = self._external.get((family, login, external))
        if earlier is None:
            return trader, kind, amount, None
        first, first_kind, first_amount = earlier
        if self.refuse_reused_external_ids and (first_kind, first_amount) != (kind, amount):
            raise invalid(f"externalId {external!r} was used for a different {family} change")
        return trader, kind, amount, first

    def change_balance(self, manager: Manager, login: int, body: dict[str, Any]) -> int:
        trader, kind, amount, first = self._change(manager, login, body, "balance")
        if first is not None:
            return first
        figures = self.figures(trader)
        free = figures.free_margin
        if kind == "DEPOSIT":
            trader.balance += amount
        elif kind == "WITHDRAW":
            # cash equity (balance + unrealised) less the margin: no credit, no open profit
            if amount > min(trader.balance, figures.cash_equity - figures.used_margin):
                raise CTraderError(
                    "NOT_ENOUGH_MONEY",
                    "the withdrawal exceeds the funds left once open positions are counted",
                )
            trader.balance -= amount
        elif kind == "DEPOSIT_NONWITHDRAWABLE_BONUS":
            trader.non_withdrawable_bonus += amount
        else:
            if amount > min(trader.non_withdrawable_bonus, free):
                raise CTraderError("NOT_ENOUGH_MONEY", "the credit withdrawal exceeds the credit")
            trader.non_withdrawable_bonus -= amount
        trader.last_update_ms = self.stamp()
        self._equity_changed(trader)
        entry_id = self._record(
            self.balance_history,
            seed.FIRST_BALANCE_HISTORY_ID,
            login,
            kind,
            amount,
            trader.last_update_ms,
            body,
        )
        self._remember("balance", login, kind, amount, body, entry_id)
        return entry_id

    def change_bonus(self, manager: Manager, login: int, body: dict[str, Any]) -> int:
        trader, kind, amount, first = self._change(manager, login, body, "bonus")
        if first is not None:
            return first
        if kind == "WITHDRAW" and amount > trader.bonus:
            raise CTraderError("NOT_ENOUGH_MONEY", "the bonus withdrawal exceeds the bonus")
        trader.bonus += amount if kind == "DEPOSIT" else -amount
        trader.last_update_ms = self.stamp()
        entry_id = self._record(
            self.bonus_history,
            seed.FIRST_BONUS_HISTORY_ID,
            login,
            kind,
            amount,
            trader.last_update_ms,
            body,
        )
        self._remember("bonus", login, kind, amount, body, entry_id)
        return entry_id

    def _remember(
        self, ledger: str, login: int, kind: str, amount: int, body: dict[str, Any], entry_id: int
    ) -> None:
        external = _note(body, "externalId")
        if external:
            self._external.setdefault((ledger, login, external), (entry_id, kind, amount))

    def history(
        self, ledger: str, login: int, start: datetime, end: datetime
    ) -> list[HistoryEntry]:
        """The login's balance (or bonus) operations made in [start, end), oldest first."""
        entries = self.balance_history if ledger == "balance" else self.bonus_history
        low, high = to_ms(start), to_ms(end)
        return [e for e in entries if e.login == login and low <= e.timestamp_ms < high]

    def change_password(self, manager: Manager, login: int, body: dict[str, Any]) -> None:
        trader = self.trader(manager, login)
        self._check_login(body, login)
        trader.password_md5 = fields.md5_hex("hashedPassword", body.get("hashedPassword"))
        trader.last_update_ms = self.stamp()

    def check_password(self, manager: Manager, login: int, body: dict[str, Any]) -> None:
        trader = self.trader(manager, login)
        self._check_login(body, login)
        if fields.md5_hex("hashedPassword", body.get("hashedPassword")) != trader.password_md5:
            raise CTraderError("WRONG_PASSWORD", "the password does not match")

    # -- reads --------------------------------------------------------------------

    def subaccounts(self, manager: Manager, login: int) -> dict[str, Any]:
        """Copy sub-accounts of a trader; totals in the parent's currency, scaled."""
        parent = self.trader(manager, login)
        subs = sorted(
            (t for t in self.visible(manager) if t.sub_account_of == login), key=lambda t: t.login
        )

        def total(pick: Callable[[Trader], int]) -> int:
            units = sum(
                (
                    to_units(pick(t), t.money_digits)
                    * rate(t.deposit_currency, parent.deposit_currency)
                    for t in subs
                ),
                start=Decimal(0),
            )
            return to_scaled(units, parent.money_digits)

        return {
            "subAccountLogins": {"login": [t.login for t in subs]},
            "totalSubAccountsBalance": total(lambda t: t.balance),
            "totalSubAccountsEquity": total(lambda t: self.figures(t).equity),
        }

    def groups_of(self, manager: Manager) -> list[dict[str, Any]]:
        groups = sorted(self.groups.values(), key=lambda g: g.id)
        return [g.wire() for g in groups if g.name in manager.allowed_groups]

    def open_positions(self, manager: Manager, login: int | None) -> list[Position]:
        logins = self._logins(manager, login)
        return [p for p in self.positions if p.login in logins]

    def closed_deals(
        self, manager: Manager, start: datetime, end: datetime, login: int | None
    ) -> list[ClosingDeal]:
        """Closing deals of positions opened in [start, end)."""
        logins = self._logins(manager, login)
        return [d for d in self.deals if d.login in logins and start <= d.opened_at < end]

    def _logins(self, manager: Manager, login: int | None) -> set[int]:
        if login is not None:
            return {self.trader(manager, login).login}
        return {t.login for t in self.visible(manager)}

    # -- cTID -----------------------------------------------------------------------

    def create_user(self, body: dict[str, Any]) -> dict[str, Any]:
        """A new cTID's object, or only its ``userId`` when the email exists already."""
        email = fields.text("email", body.get("email")).strip()
        if "@" not in email or " " in email:
            raise invalid(f"email {email!r} is not valid")
        broker = fields.optional_text("brokerName", body.get("brokerName"))
        if broker is not None and broker not in seed.BROKERS:
            raise CTraderError("CH_PLANT_INVALID", f"broker {broker!r} is not on this plant")
        language = fields.optional_text("preferredLanguage", body.get("preferredLanguage")) or "EN"
        if len(language) != 2 or not language.isalpha():
            raise invalid("preferredLanguage must be an ISO 639-1 (Alpha-2) code")
        for user in self.users.values():
            if user.email.lower() == email.lower():
                return {"userId": user.user_id}
        user = User(self.next_user_id, email, f"ctid{self.next_user_id}", language.upper(),
                    self.stamp())  # fmt: skip
        self.next_user_id += 1
        self.users[user.user_id] = user
        return user.wire()

    def link(self, manager: Manager, body: dict[str, Any]) -> Link:
        login = fields.integer("traderLogin", body.get("traderLogin"))
        hashed = fields.md5_hex("traderPasswordHash", body.get("traderPasswordHash"))
        user_id = fields.integer("userId", body.get("userId"))
        broker = fields.text("brokerName", body.get("brokerName"))
        environment = fields.text("environmentName", body.get("environmentName"))
        if broker not in seed.BROKERS:
            raise CTraderError("CH_PLANT_INVALID", f"broker {broker!r} is not on this plant")
        if environment != seed.ENVIRONMENT:
            raise invalid(f"environment {environment!r} not found")
        if user_id not in self.users:
            raise invalid(f"user {user_id} not found")
        trader = self.trader(manager, login)
        if trader.broker_name != broker:
            raise no_rights(f"broker {broker!r} has no access to trader {login}")
        if trader.password_md5 != hashed:
            raise CTraderError("WRONG_PASSWORD", "traderPasswordHash does not match")
        if login in self.links:
            raise CTraderError("TRADER_ALREADY_LINKED", f"trader {login} is linked already")
        link = Link(self.next_link_id, user_id, login, broker, environment)
        self.next_link_id += 1
        self.links[login] = link
        return link

    def move_trader(self, manager: Manager, body: dict[str, Any]) -> None:
        """5.3: the trader (and its cTID link) moves to another White Label."""
        login = fields.integer("traderLogin", body.get("traderLogin"))
        broker = fields.text("brokerName", body.get("brokerName"))
        environment = fields.text("environmentName", body.get("environmentName"))
        if broker not in seed.BROKERS:
            raise CTraderError("CH_PLANT_INVALID", f"broker {broker!r} is not on this plant")
        if environment != seed.ENVIRONMENT:
            raise invalid(f"environment {environment!r} not found")
        trader = self.trader(manager, login)
        if broker in manager.disabled_brokers:
            raise no_rights(f"the manager has no access to broker {broker!r}")
        trader.broker_name = broker
        trader.last_update_ms = self.stamp()
        link = self.links.get(login)
        if link is not None:
            self.links[login] = dataclasses.replace(link, broker_name=broker)
