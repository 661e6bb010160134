"""What every family of the cTrader connector shares: lifecycle, the trader read, the
connector's records in the gateway store and the reference data."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from brokergraph_ctrader.client import WebServicesClient
from brokergraph_ctrader.money import money_digits_of
from brokergraph_ctrader.settings import CTraderSettings
from brokergraph_ctrader.wire import account_from_trader
from gateway.contract import (
    Account,
    BrokerGraphError,
    Connector,
    ConnectorContext,
    ConnectorHealth,
    HealthStatus,
    NotFound,
    Outcome,
    ProtocolError,
    ProvisioningStep,
    TraderStatus,
    UpstreamError,
    UpstreamRejected,
    UpstreamUnavailable,
)

TRADERS = "/v2/webserv/traders"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _login_of(account_id: str) -> str | None:
    """The login an account id names, or None when it cannot be a cTrader login."""
    text = account_id.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 18 or int(text) <= 0:
        return None
    return str(int(text))


def _now() -> datetime:
    return datetime.now(UTC)


def _step(name: str, reference: Any = None, message: str | None = None) -> ProvisioningStep:
    return ProvisioningStep(
        name=name,
        succeeded=True,
        reference=None if reference is None else str(reference),
        message=message,
    )


def _may_have_applied(error: BrokerGraphError) -> bool:
    """Whether a write that failed with ``error`` may have been applied: not after a
    refusal, nor after a failure proven to precede sending (the contract's rule, which
    marks the others ``details.outcome = UNKNOWN``)."""
    if not isinstance(error, UpstreamError) or isinstance(error, UpstreamRejected):
        return False
    if isinstance(error, UpstreamUnavailable):
        return error.details.get("outcome") == Outcome.UNKNOWN.value
    return True


def _failed(name: str, error: BrokerGraphError) -> ProvisioningStep:
    """A failed step; one that may have been applied says OUTCOME_UNKNOWN (its resume
    reads what it did before sending anything), with the error's own code in the text."""
    code = "OUTCOME_UNKNOWN" if _may_have_applied(error) else error.code
    return ProvisioningStep(
        name=name, succeeded=False, message=f"{error.code}: {error.message}", code=code
    )


class CTraderBase(Connector):
    """Settings, client and the helpers the family mixins share."""

    def __init__(self, context: ConnectorContext) -> None:
        super().__init__(context)
        self._settings: CTraderSettings | None = None
        self._client: WebServicesClient | None = None
        #: login -> (moneyDigits, depositCurrency), learnt from every trader read; both
        #: are fixed once an account exists, and money writes need them before sending.
        self._digits: dict[str, tuple[int, str]] = {}
        #: Striped locks serialising createTrader per email within this process.
        self._locks = [asyncio.Lock() for _ in range(64)]

    @property
    def settings(self) -> CTraderSettings:
        if self._settings is None:
            raise RuntimeError("the cTrader connector is not started")
        return self._settings

    @property
    def client(self) -> WebServicesClient:
        if self._client is None:
            raise RuntimeError("the cTrader connector is not started")
        return self._client

    async def start(self) -> None:
        # Settings are read here: a bad section fails this connector only.
        self._settings = CTraderSettings.from_section(self.context.name, self.context.settings)
        self._client = WebServicesClient(
            self._settings.url,
            manager_login=self._settings.login,
            manager_password=self._settings.password,
            timeout_seconds=self._settings.timeout_seconds,
            verify=self._settings.ssl_context(),
        )
        await self._client.start()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def health(self) -> ConnectorHealth:
        started = time.perf_counter()
        try:
            await self._groups()  # one cheap GET that needs the manager's token
        except BrokerGraphError as error:
            return ConnectorHealth(status=HealthStatus.DOWN, detail=error.code)
        elapsed = round((time.perf_counter() - started) * 1000, 2)
        return ConnectorHealth(status=HealthStatus.UP, latency_ms=elapsed)

    def _key(self, *parts: str) -> str:
        """A key of the connector's records in the gateway store."""
        return ":".join((self.name, *parts))

    def _account(self, data: Mapping[str, Any], trader_id: str | None = None) -> Account:
        account = account_from_trader(
            data, self.platform, is_live=self.settings.is_live, trader_id=trader_id
        )
        self._digits[account.id] = (money_digits_of(data.get("moneyDigits", 2)), account.currency)
        return account

    async def _trader_json(self, login: str) -> dict[str, Any]:
        data = await self.client.get(f"{TRADERS}/{login}")
        if not isinstance(data, dict):
            raise ProtocolError("cTrader answered a trader read without an object")
        return data

    async def _read_account(self, account_id: str) -> Account:
        """One account, or NotFound (single-object operations never answer None)."""
        login = _login_of(account_id)
        if login is None:
            raise NotFound("account not found", field=["accountId"])
        account = self._account(await self._trader_json(login))
        return account

    async def _account_trader_ids(self, logins: Sequence[str]) -> dict[str, str]:
        """login -> userId, from the gateway's links of the accounts' partners."""
        store = self.context.store
        owners = await store.owners(self.platform, "account", list(logins))
        wanted = set(logins)
        found: dict[str, str] = {}
        for code in {o for o in owners if o is not None}:
            for link in await store.links_of_partner(code, platform=self.platform, kind="account"):
                if link.external_id in wanted and link.trader_id:
                    found[link.external_id] = link.trader_id
        return found

    async def _user_record(self, user_id: str) -> dict[str, Any] | None:
        return await self.context.store.get_flow(self._key("user", user_id))

    async def _save_user(self, user_id: str, record: dict[str, Any]) -> None:
        await self.context.store.save_flow(self._key("user", user_id), f"{self.name}-user", record)

    async def _add_login(
        self, user_id: str, login: str, *, email: str | None = None, name: str | None = None
    ) -> None:
        record = await self._user_record(user_id) or {
            "userId": user_id,
            "email": email,
            "name": name,
            "status": TraderStatus.ACTIVE.value,
            "createdAt": _now().isoformat(),
            "logins": [],
        }
        if login and login not in record["logins"]:
            record["logins"] = [*record["logins"], login]
        await self._save_user(user_id, record)

    async def _user_logins(self, user_ids: Sequence[str]) -> dict[str, list[str]]:
        """userId -> logins: the connector's records plus the gateway's account links."""
        store = self.context.store
        result: dict[str, list[str]] = {u: [] for u in user_ids}
        records = await asyncio.gather(*(self._user_record(u) for u in user_ids))
        for user_id, record in zip(user_ids, records, strict=True):
            if record is not None:
                result[user_id].extend(str(login) for login in record.get("logins", []))
        owners = await store.owners(self.platform, "trader", list(user_ids))
        for code in {o for o in owners if o is not None}:
            for link in await store.links_of_partner(code, platform=self.platform, kind="account"):
                if link.trader_id in result and link.external_id not in result[link.trader_id]:
                    result[link.trader_id].append(link.external_id)
        return result

    async def _require_user(self, user_id: str) -> dict[str, Any] | None:
        """The user's record (None when known only by a link); NotFound when unknown."""
        if _login_of(user_id) is None:
            raise NotFound("trader not found", field=["traderId"])
        record = await self._user_record(user_id)
        if record is not None:
            return record
        (owner,) = await self.context.store.owners(self.platform, "trader", [user_id])
        if owner is None:
            raise NotFound("trader not found", field=["traderId"])
        return None

    async def _groups(self) -> list[str]:
        """The trader groups the manager sees (read afresh: see ``_check_group``)."""
        data = await self.client.get("/v2/webserv/tradergroups")
        items = data.get("traderGroup") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise ProtocolError("cTrader's trader groups answer is not a list")
        return [str(g["name"]) for g in items if isinstance(g, dict) and "name" in g]
