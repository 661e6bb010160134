"""TRADER_PROVISIONING: create a user (with its first account), open and update
accounts, and seed 004's deactivation and reactivation, each effect reported as a step."""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from brokergraph_dxtrade.client import DXWEB, Response
from brokergraph_dxtrade.connector._base import error_text
from brokergraph_dxtrade.connector._categories import CategoriesMixin
from brokergraph_dxtrade.connector._options import (
    ACCOUNT_KINDS,
    ACCOUNT_OPTIONS,
    CODE,
    FEED_ID,
    MODES,
    NAME_TRIES,
    OPENING_STATUSES,
    TRADER_OPTIONS,
    AccountPlan,
    check_option_keys,
    currency_code,
    invalid_option,
    login_base,
    option_balance,
    option_categories,
    option_choice,
    option_text,
)
from brokergraph_dxtrade.mapping import (
    ACCOUNT_STATUS_OUT,
    account_id,
    account_model,
    parse_time,
    trader_id,
    trader_model,
)
from gateway.contract import (
    Account,
    BrokerGraphError,
    Conflict,
    CreateTraderRequest,
    DeactivateTraderRequest,
    InvalidInput,
    NotFound,
    OpenAccountRequest,
    ProvisioningResult,
    ProvisioningStep,
    ReactivateTraderRequest,
    TraderProvisioning,
    UpdateAccountRequest,
    VendorIdentity,
    read,
)

__all__ = ["DxTradeProvisioning"]

#: What a keyed createTrader / openAccount chose (login, account code), kept before it
#: is sent, so the gateway can read back an attempt whose answer was lost.
CREATION_FLOW = "dxtrade-create-trader-key"
OPENING_FLOW = "dxtrade-open-account-key"


class DxTradeProvisioning(CategoriesMixin, TraderProvisioning):
    """Users and accounts through DxRegister (see the package docstring's table)."""

    def _account_plan(
        self,
        options: Mapping[str, Any],
        currency: str,
        is_live: bool | None,
        leverage: Decimal | None,
        *,
        template: Mapping[str, Any] | None = None,
    ) -> AccountPlan:
        t = template or {}
        default_type = "DEMO" if is_live is False else "LIVE"  # None: live, as before
        account_type = option_choice(
            options, "accountType", ("LIVE", "DEMO"), str(t.get("accountType", default_type))
        )
        if is_live is not None and "accountType" in options and account_type != default_type:
            raise invalid_option(
                f"accountType {account_type} contradicts isLive {str(is_live).lower()}",
                "accountType",
            )
        code = option_text(options, "accountCode", CODE)
        clearing = option_text(options, "clearingCode", CODE) or str(
            t.get("clearingCode", self.settings.clearing_code)
        )
        categories = (
            option_categories(options)
            if "categories" in options
            else tuple(
                {"category": str(c["category"]), "value": str(c.get("value"))}
                for c in t.get("categories") or []
                if isinstance(c, Mapping) and "category" in c
            )
        )
        if leverage is not None and (leverage <= 0 or leverage > 10_000):
            raise InvalidInput("leverage must be between 0 and 10000", field=["leverage"])
        return AccountPlan(
            clearing_code=clearing,
            account_code=code,
            currency=currency,
            account_type=account_type,
            cash_type=option_choice(
                options,
                "accountCashType",
                ("MARGIN", "CASH"),
                str(t.get("accountCashType", "MARGIN")),
            ),
            categories=categories,
            balance=option_balance(options, account_type),
            leverage=leverage,
            kind=option_choice(options, "type", ACCOUNT_KINDS, str(t.get("type", "CLIENT"))),
            # Never the template's: the account it copies may have been terminated.
            status=option_choice(options, "status", OPENING_STATUSES, "FULL_TRADING"),
        )

    async def _exists(self, path: str, what: str) -> bool:
        try:
            await self.client.get(DXWEB, path, what=what)
        except NotFound:
            return False
        return True

    @staticmethod
    async def _free_name(base: str, taken: Callable[[str], Awaitable[bool]]) -> str:
        """``base`` or the first free ``base-N`` (then a random suffix)."""
        for n in range(1, NAME_TRIES + 1):
            candidate = base if n == 1 else f"{base}-{n}"
            if not await taken(candidate):
                return candidate
        return f"{base}-{secrets.token_hex(3)}"

    async def _free_account_code(
        self, plan: AccountPlan, base: str, also_taken: Collection[str] = ()
    ) -> str:
        async def taken(code: str) -> bool:
            if code in also_taken:
                return True
            return await self._exists(self._account_path(plan.clearing_code, code), "account")

        if plan.account_code is not None:
            return plan.account_code
        return await self._free_name(base, taken)

    @staticmethod
    def _client_body(
        request: CreateTraderRequest,
        domain: str,
        login: str,
        broker_code: str | None,
        feed_id: str | None,
    ) -> dict[str, Any]:
        """Seed 004 §2.1's createClient body (accounts added by the caller)."""
        body: dict[str, Any] = {
            "domain": domain,
            "login": login,
            "type": "CLIENT",
            "status": "ONLINE",
            # Without a password the user gets a random one and must reset it.
            "password": request.password or secrets.token_urlsafe(12),
            "passwordReset": request.password is None,
        }
        if request.name:
            body["fullName"] = request.name
        if broker_code is not None:
            body["brokerCode"] = broker_code
        if request.group is not None:
            body["groups"] = [request.group]
        body["email"] = request.email  # _feed_mode refuses SINGLE_FEED, which would drop it
        if feed_id is not None:
            body["dxFeedAccountId"] = feed_id
        return body

    async def _feed_holders(self, feed_id: str) -> list[str]:
        """The users naming dxFeed account ``feed_id``: one read of the user list, as
        DxRegister has no search by dxFeed account (B4)."""
        response = await self.client.get(DXWEB, "/api/register/client", what="users")
        users = response.body if isinstance(response.body, list) else []
        return [
            trader_id(str(user.get("login")), str(user.get("domain")))
            for user in users
            if isinstance(user, Mapping) and user.get("dxFeedAccountId") == feed_id
        ]

    @staticmethod
    def _feed_mode(options: Mapping[str, Any]) -> tuple[str | None, str]:
        """The dxFeed account id and XT mode ``options`` ask for, both checked."""
        check_option_keys(options, TRADER_OPTIONS)
        feed_id = option_text(options, "dxFeedAccountId", FEED_ID)
        # Seed 004 §2.1: "In DxTradeXT mode - only user email should be specified".
        mode = option_choice(options, "mode", MODES, "CRM" if feed_id else "DXTRADE_XT")
        if mode == "CRM" and feed_id is None:
            raise invalid_option(
                "CRM mode needs options.dxFeedAccountId (the CRM creates the dxFeed account "
                "first, seed 004 §2.1)",
                "dxFeedAccountId",
            )
        if mode != "CRM" and feed_id is not None:
            raise invalid_option(
                f"options.dxFeedAccountId is for CRM mode, not {mode}", "dxFeedAccountId"
            )
        if mode == "SINGLE_FEED":
            # DxTradeXT reads an email without dxFeedAccountId as DxTradeXT mode, so a
            # single-feed user is created without one: the email would be lost.
            raise InvalidInput(
                "a single-feed DXtrade user keeps no email (DxTradeXT takes an email as "
                "DxTradeXT mode), and createTrader's email must not be dropped: use mode "
                "DXTRADE_XT (the default) or CRM",
                field=["email"],
            )
        return feed_id, mode

    def _creation_plan(self, request: CreateTraderRequest) -> AccountPlan | None:
        """The first account's plan (None: no account), every option checked; no call."""
        options = request.options
        plan: AccountPlan | None = None
        if request.currency is not None or ACCOUNT_OPTIONS & set(options):
            if request.currency is None:
                raise InvalidInput(
                    "currency is required when account options are given", field=["currency"]
                )
            plan = self._account_plan(
                options, currency_code(request.currency), request.is_live, request.leverage
            )
        elif request.leverage is not None:
            raise InvalidInput(
                "leverage applies to an account: give a currency too", field=["leverage"]
            )
        if request.group is not None and not CODE.match(request.group):
            raise InvalidInput("group must be a DXtrade user group name", field=["group"])
        return plan

    async def creation_identities(self, request: CreateTraderRequest) -> Sequence[VendorIdentity]:
        """The dxFeed account a CRM-mode user is created with, and the users naming it
        already: they share its subscriptions (cancelling them locks all of them out).
        Options are checked first (categories against DXtrade's list, which is read at
        most once per ``category_cache_seconds``), so a bad request costs no other call."""
        feed_id, _ = self._feed_mode(request.options)
        plan = self._creation_plan(request)
        if plan is not None:
            await self._check_categories(plan.categories)
        if feed_id is None:
            return ()
        return [
            VendorIdentity(
                kind="dxfeed-account",
                id=feed_id,
                holders=await self._feed_holders(feed_id),
                field=("options", "dxFeedAccountId"),
            )
        ]

    async def deactivation_identities(
        self, request: DeactivateTraderRequest
    ) -> Sequence[VendorIdentity]:
        """With ``cancel_market_data_subscriptions``: the user's dxFeed account, whose
        subscriptions every user naming it loses."""
        if not request.cancel_market_data_subscriptions:
            return ()
        feed_id = (await self._client(request.trader_id)).body.get("dxFeedAccountId")
        if not isinstance(feed_id, str) or not feed_id:
            return ()
        return [
            VendorIdentity(
                kind="dxfeed-account",
                id=feed_id,
                holders=await self._feed_holders(feed_id),
                field=("cancelMarketDataSubscriptions",),
            )
        ]

    async def create_trader(self, request: CreateTraderRequest) -> ProvisioningResult:
        """One call: the user and (with a currency) its first account, as seed 004 §2.1.

        ``options``: ``mode`` (DXTRADE_XT | CRM; CRM when a ``dxFeedAccountId`` is
        given, else DXTRADE_XT, as seed 004 says; SINGLE_FEED is refused: it would drop
        the email), ``dxFeedAccountId`` (CRM only,
        required there), ``login`` (default: the email's local part, made unique),
        ``domain``, ``brokerCode``, and for the account ``accountCode``, ``accountType``
        (LIVE | DEMO), ``accountCashType`` (MARGIN | CASH), ``clearingCode``,
        ``categories`` [{category, value}], ``balance`` (DEMO only).
        """
        options = request.options
        if request.resume_token is not None:
            raise InvalidInput(
                "DXtrade creates a user and its account in one call: there is nothing to resume",
                field=["resumeToken"],
            )
        feed_id, mode = self._feed_mode(options)
        if mode == "DXTRADE_XT" and not request.email:
            raise InvalidInput("DxTradeXT mode needs the user's email", field=["email"])
        login_option = option_text(options, "login", CODE)
        domain = option_text(options, "domain", CODE) or self.settings.domain
        broker_code = option_text(options, "brokerCode", CODE) or self.settings.broker_code
        plan = self._creation_plan(request)
        if plan is not None:
            await self._check_categories(plan.categories)

        # A key's earlier attempt (its answer lost, found absent by the gateway's read)
        # is sent again under the names it chose, never under fresh ones.
        chosen = await self._creation_choice(request)
        if chosen is not None:
            found = await self.find_created_trader(request)
            if found is not None:
                return found
        if (
            chosen is None
            and login_option is not None
            and await self._exists(self._trader_path(login_option, domain), "user")
        ):
            raise Conflict(
                f"DXtrade user {login_option}@{domain} exists already", field=["options", "login"]
            )
        if (
            chosen is None
            and plan is not None
            and plan.account_code is not None
            and await self._exists(
                self._account_path(plan.clearing_code, plan.account_code), "account"
            )
        ):
            raise Conflict(
                f"DXtrade account {plan.clearing_code}:{plan.account_code} exists already",
                field=["options", "accountCode"],
            )
        base = login_option or login_base(request.email)
        if request.idempotency_key is None and login_option is None:
            await self._refuse_double_submit(request, base, domain, plan)
        for attempt in range(2):
            if chosen is not None:
                login = str(chosen["login"])
            elif login_option is not None:
                login = login_option
            elif attempt == 0:
                login = await self._free_name(
                    base, lambda c: self._exists(self._trader_path(c, domain), "user")
                )
            else:
                login = f"{base}-{secrets.token_hex(3)}"
            body = self._client_body(request, domain, login, broker_code, feed_id)
            if plan is not None:
                code = (
                    str(chosen["accountCode"])
                    if chosen is not None and chosen.get("accountCode")
                    else await self._free_account_code(plan, f"{login}-{plan.currency.lower()}")
                )
                body["accounts"] = [plan.body(code, broker_code)]
            if request.idempotency_key is not None and chosen is None:
                choice = {"login": login, "domain": domain, "email": request.email}
                if plan is not None:
                    choice["accountCode"] = code
                await self.context.store.save_flow(
                    self._creation_key(request.idempotency_key), CREATION_FLOW, choice
                )
            try:
                response = await self.client.call(
                    DXWEB, "POST", "/api/register/client", what="user", body=body
                )
            except Conflict:
                # A derived name was taken between our check and the create: once more.
                if attempt or login_option is not None or chosen is not None:
                    raise
                continue
            break
        client = response.body if isinstance(response.body, Mapping) else {}
        trader = trader_model(client)
        accounts = await self._accounts_of(client)
        steps = [
            ProvisioningStep(
                name="create user" + (" with account" if accounts else ""),
                succeeded=True,
                reference=trader.id,
                message=f"{mode} mode",
            )
        ]
        return ProvisioningResult(
            steps=steps,
            trader=trader,
            accounts=[account_model(a, owner=trader.id) for a in accounts],
        )

    async def _refuse_double_submit(
        self, request: CreateTraderRequest, base: str, domain: str, plan: AccountPlan | None
    ) -> None:
        """Without a key, a createTrader identical to one that made a user within
        ``double_submit_seconds`` is a double submit: CONFLICT naming that user, so the
        CRM's second click does not make ``retry.x-2``.  The users are the ones the
        derived login would skip (``base``, ``base-2`` ...), read from DxRegister: same
        e-mail and name, created that recently, and (with an account asked for) an
        account of the same currency and type.  A live and a demo user for one e-mail
        differ, and pass."""
        window = self.settings.double_submit_seconds
        if window <= 0:
            return
        since = datetime.now(UTC) - timedelta(seconds=window)
        for n in range(1, NAME_TRIES + 1):
            candidate = base if n == 1 else f"{base}-{n}"
            client = await self._client_or_none(trader_id(candidate, domain))
            if client is None:
                return  # the derived names stop here: this one is free
            created = parse_time(client.get("createdDateTime"))
            same = (
                str(client.get("email", "")).lower() == request.email.lower()
                and (client.get("fullName") or None) == (request.name or None)
                and created is not None
                and created >= since
            )
            if same and plan is not None:
                same = any(
                    isinstance(a, Mapping)
                    and a.get("currency") == plan.currency
                    and a.get("accountType") == plan.account_type
                    for a in client.get("accounts") or []
                )
            if same and created is not None:
                tid = trader_id(candidate, domain)
                age = int((datetime.now(UTC) - created).total_seconds())
                raise Conflict(
                    f"DXtrade user {tid} was created from the same request {age} s ago "
                    "(a double submit?): nothing was created. To create another user for "
                    "this e-mail, send an idempotencyKey (one per creation)",
                    field=["email"],
                    details={"platform": "dxtrade", "traderId": tid},
                )

    # -- keyed provisioning: what a key's attempt chose, read back ------------------

    @staticmethod
    def _creation_key(key: str) -> str:
        return f"dxtrade:create-trader-key:{key}"

    @staticmethod
    def _opening_key(trader: str, key: str) -> str:
        return f"dxtrade:open-account-key:{trader}:{key}"

    async def _creation_choice(self, request: CreateTraderRequest) -> Mapping[str, Any] | None:
        if request.idempotency_key is None:
            return None
        return await self.context.store.get_flow(self._creation_key(request.idempotency_key))

    @read
    async def find_created_trader(self, request: CreateTraderRequest) -> ProvisioningResult | None:
        """The user (and account) a keyed createTrader made, read from DxRegister by the
        login the key's attempt chose (kept in the gateway store before the POST): None
        when no attempt chose one, or DxRegister has no such user with this email."""
        choice = await self._creation_choice(request)
        if choice is None:
            return None
        tid = trader_id(str(choice["login"]), str(choice["domain"]))
        client = await self._client_or_none(tid)
        if client is None or str(client.get("email", "")).lower() != request.email.lower():
            return None
        trader = trader_model(client)
        accounts = await self._accounts_of(client)
        step = ProvisioningStep(
            name="create user" + (" with account" if accounts else ""),
            succeeded=True,
            reference=trader.id,
            message="read back from DXtrade under this idempotency key",
        )
        return ProvisioningResult(
            steps=[step],
            trader=trader,
            accounts=[account_model(a, owner=trader.id) for a in accounts],
        )

    @read
    async def find_opened_account(self, request: OpenAccountRequest) -> Account | None:
        """The account a keyed openAccount made, by the code its attempt chose."""
        if request.idempotency_key is None:
            return None
        choice = await self.context.store.get_flow(
            self._opening_key(request.trader_id, request.idempotency_key)
        )
        if choice is None:
            return None
        aid = account_id(str(choice["clearingCode"]), str(choice["accountCode"]))
        account = await self._account_or_none(aid)
        if account is None:
            return None
        await self._remember_owner(aid, request.trader_id)
        return account_model(account, owner=request.trader_id)

    async def open_account(self, request: OpenAccountRequest) -> Account:
        options = request.options
        check_option_keys(options, ACCOUNT_OPTIONS)
        login, domain = self._trader_parts(request.trader_id)
        plan = self._account_plan(
            options, currency_code(request.currency), request.is_live, request.leverage
        )
        if request.group is not None:
            raise InvalidInput(
                "DXtrade accounts have categories, not groups: use options.categories",
                field=["group"],
            )
        await self._check_categories(plan.categories)
        choice = None
        if request.idempotency_key is not None:
            key = self._opening_key(request.trader_id, request.idempotency_key)
            choice = await self.context.store.get_flow(key)
            if choice is not None:  # the key's earlier attempt: read back, else re-sent
                found = await self.find_opened_account(request)
                if found is not None:
                    return found
                plan = dataclasses.replace(plan, account_code=str(choice["accountCode"]))
        client = (await self._client(request.trader_id)).body
        own = {str(a.get("accountCode")) for a in client.get("accounts") or []}
        return await self._add_account(
            login, domain, plan, own, key=request.idempotency_key, retried=choice is not None
        )

    async def _add_account(
        self,
        login: str,
        domain: str,
        plan: AccountPlan,
        own: set[str],
        base: str | None = None,
        *,
        key: str | None = None,
        retried: bool = False,
    ) -> Account:
        owner = trader_id(login, domain)
        code = await self._free_account_code(plan, base or f"{login}-{plan.currency.lower()}", own)
        path = f"{self._trader_path(login, domain)}/account"
        body = plan.body(code, self.settings.broker_code)
        if key is not None and not retried:
            choice = {"clearingCode": plan.clearing_code, "accountCode": code}
            await self.context.store.save_flow(self._opening_key(owner, key), OPENING_FLOW, choice)
        try:
            response = await self.client.call(DXWEB, "POST", path, what="account", body=body)
        except Conflict:
            if plan.account_code is not None or key is not None:
                raise
            body["accountCode"] = f"{code}-{secrets.token_hex(3)}"
            response = await self.client.call(DXWEB, "POST", path, what="account", body=body)
        account = response.body if isinstance(response.body, Mapping) else {}
        aid = account_id(str(account.get("clearingCode")), str(account.get("accountCode")))
        await self._remember_owner(aid, owner)
        return account_model(account, owner=owner)

    async def update_account(self, request: UpdateAccountRequest) -> Account:
        """Status, and leverage recorded in the account's ``metadata`` (see the README:
        DXtrade has no account leverage; margin follows instrument margin rates and the
        account's Margining category)."""
        clearing, code = self._account_parts(request.account_id)
        if request.group is not None:
            raise InvalidInput("DXtrade accounts have categories, not groups", field=["group"])
        body: dict[str, Any] = {}
        if request.status is not None:
            status = ACCOUNT_STATUS_OUT.get(request.status)
            if status is None:
                raise InvalidInput(
                    f"DXtrade has no account status {request.status.value}; log a user out "
                    "with deactivateTrader",
                    field=["status"],
                )
            body["status"] = status
        if request.leverage is not None:
            if request.leverage <= 0 or request.leverage > 10_000:
                raise InvalidInput("leverage must be between 0 and 10000", field=["leverage"])
            current = await self._account_or_none(request.account_id)
            if current is None:
                raise NotFound(f"no DXtrade account {request.account_id!r}")
            metadata = dict(current.get("metadata") or {})
            metadata["leverage"] = format(request.leverage, "f")
            body["metadata"] = metadata
        if not body:
            raise InvalidInput("nothing to change", field=["status"])
        response = await self.client.call(
            DXWEB, "PUT", self._account_path(clearing, code), what="account", body=body
        )
        account = response.body if isinstance(response.body, Mapping) else {}
        return account_model(account, owner=await self._owner(request.account_id))

    #: What a host without seed 004's disable route may answer to a POST on it (B3
    #: found no such route): not found, method not allowed, or a bad request.  The user
    #: exists (it is read just before), so these speak of the route; nothing changed.
    MISSING_ROUTE = frozenset({400, 404, 405})

    async def deactivate_trader(self, request: DeactivateTraderRequest) -> ProvisioningResult:
        """Seed 004 §2.3: one call disables the user, terminates every account and, when
        asked, cancels the dxFeed subscriptions.  Each effect is read back and reported
        as its own step (disable user, terminate accounts, cancel market-data
        subscriptions).  A host without that route (answering 404, 405 or 400) or
        ``use_disable_route = false`` gets B3's two documented steps instead.  A
        refused step ends the flow with that step failed and its reason; the steps
        before it stay done.  A call whose outcome is unknown (5xx, lost answer) is
        judged by reading the user back, like a successful one."""
        login, domain = self._trader_parts(request.trader_id)
        before = (await self._client(request.trader_id)).body
        cancel = request.cancel_market_data_subscriptions
        self._feed_ids.pop(request.trader_id, None)
        if self.settings.use_disable_route:
            path = f"{self._trader_path(login, domain)}/disable-user-and-terminate-accounts"
            try:
                await self.client.call(
                    DXWEB,
                    "POST",
                    path,
                    what="deactivation",
                    body={"cancelDxFeedSubscriptions": cancel},
                )
            except BrokerGraphError as error:
                if error.details.get("status") in self.MISSING_ROUTE:
                    steps = await self._deactivate_in_steps(login, domain, before, cancel)
                elif self._may_have_applied(error):
                    steps = []  # what it did, if anything, is read back below
                else:
                    return self._deactivation_refused(request.trader_id, before, error)
            else:
                steps = []
        else:
            steps = await self._deactivate_in_steps(login, domain, before, cancel)
        after = (await self._client(request.trader_id)).body
        accounts = await self._accounts_of(after)
        result_accounts = [account_model(a, owner=request.trader_id) for a in accounts]
        if any(not s.succeeded for s in steps):
            return ProvisioningResult(
                steps=steps, trader=trader_model(after), accounts=result_accounts
            )
        steps = [self._disabled_step(request.trader_id, after), self._terminated_step(accounts)]
        if cancel:
            steps.append(await self._check_cancelled(request.trader_id, after))
        return ProvisioningResult(steps=steps, trader=trader_model(after), accounts=result_accounts)

    @staticmethod
    def _deactivation_refused(
        tid: str, before: Mapping[str, Any], error: BrokerGraphError
    ) -> ProvisioningResult:
        refused = ProvisioningStep(
            name="disable user",
            succeeded=False,
            reference=tid,
            message=f"DXtrade refused the deactivation: {error_text(error)}; nothing was changed",
            code=error.code,
        )
        return ProvisioningResult(steps=[refused], trader=trader_model(before))

    @staticmethod
    def _disabled_step(tid: str, client: Mapping[str, Any]) -> ProvisioningStep:
        disabled = client.get("status") == "DISABLED"
        return ProvisioningStep(
            name="disable user",
            succeeded=disabled,
            reference=tid,
            message=None if disabled else f"the user is still {client.get('status')}",
        )

    @staticmethod
    def _terminated_step(accounts: Sequence[Mapping[str, Any]]) -> ProvisioningStep:
        ids = [account_id(a["clearingCode"], a["accountCode"]) for a in accounts]
        still_open = [
            i
            for i, a in zip(ids, accounts, strict=True)
            if a.get("status") not in ("TERMINATED", "EXPIRED")
        ]
        return ProvisioningStep(
            name="terminate accounts",
            succeeded=not still_open,
            reference=",".join(ids) or None,
            message=f"still open: {', '.join(still_open)}" if still_open else None,
        )

    async def _check_cancelled(self, tid: str, client: Mapping[str, Any]) -> ProvisioningStep:
        name = "cancel market-data subscriptions"
        feed_id = client.get("dxFeedAccountId")
        if not isinstance(feed_id, str):
            return ProvisioningStep(
                name=name, succeeded=True, message="the user has no dxFeed account (single feed)"
            )
        try:
            subscriptions = await self._subscriptions_of(tid, feed_id)
        except BrokerGraphError as error:
            return ProvisioningStep(
                name=name,
                succeeded=False,
                reference=feed_id,
                message=f"could not read the subscriptions back: {error_text(error)}",
                code=error.code,
            )
        active = [s.name for s in subscriptions if s.active]
        return ProvisioningStep(
            name=name,
            succeeded=not active,
            reference=feed_id,
            message=f"still active: {', '.join(active)}" if active else None,
        )

    async def _deactivate_in_steps(
        self, login: str, domain: str, client: Mapping[str, Any], cancel: bool
    ) -> list[ProvisioningStep]:
        """B3's two documented steps.  dxFeed subscriptions cannot be cancelled this way,
        so with ``cancel`` the last step is reported as refused."""
        tid = trader_id(login, domain)
        try:
            await self._put_client(login, domain, {"status": "DISABLED"})
        except BrokerGraphError as error:
            return [
                ProvisioningStep(
                    name="disable user",
                    succeeded=False,
                    reference=tid,
                    message=f"DXtrade refused: {error_text(error)}; nothing was changed",
                )
            ]
        steps = [ProvisioningStep(name="disable user", succeeded=True, reference=tid)]
        updates = [
            {
                "clearingCode": a["clearingCode"],
                "accountCode": a["accountCode"],
                "status": "TERMINATED",
            }
            for a in client.get("accounts") or []
            if a.get("status") not in ("TERMINATED", "EXPIRED")
        ]
        try:
            if updates:
                await self.client.call(
                    DXWEB, "PUT", "/api/register/account", what="account update", body=updates
                )
        except BrokerGraphError as error:
            steps.append(
                ProvisioningStep(
                    name="terminate accounts",
                    succeeded=False,
                    message=f"DXtrade refused: {error_text(error)}; the user is disabled",
                )
            )
            return steps
        steps.append(ProvisioningStep(name="terminate accounts", succeeded=True))
        if cancel:
            steps.append(
                ProvisioningStep(
                    name="cancel market-data subscriptions",
                    succeeded=False,
                    message="this DXtrade host has no disable-user-and-terminate-accounts "
                    "route: cancel the subscriptions in dxFeed",
                )
            )
        return steps

    async def _put_client(self, login: str, domain: str, body: Mapping[str, Any]) -> Response:
        """PUT a user update with ``If-Match`` (B7); a stale ETag is re-read once."""
        path = self._trader_path(login, domain)
        for attempt in range(2):
            etag = (await self.client.get(DXWEB, path, what="user")).etag
            try:
                return await self.client.call(
                    DXWEB, "PUT", path, what="user update", body=body, if_match=etag
                )
            except Conflict as error:
                if attempt or error.details.get("status") != 412:
                    raise
        raise AssertionError("unreachable")

    async def reactivate_trader(self, request: ReactivateTraderRequest) -> ProvisioningResult:
        """Seed 004 §2.4: status OFFLINE, then a NEW account (terminated ones stay so).

        The new account is ``new_account`` when given, else a copy of the user's latest
        account's settings (currency, type, cash type, categories) with a new code and
        no money.
        """
        login, domain = self._trader_parts(request.trader_id)
        if request.new_account is not None:  # checked before any call
            new = request.new_account
            check_option_keys(new.options, ACCOUNT_OPTIONS)
            given = self._account_plan(
                new.options, currency_code(new.currency), new.is_live, new.leverage
            )
            await self._check_categories(given.categories)
        client = (await self._client(request.trader_id)).body
        accounts = [a for a in client.get("accounts") or [] if isinstance(a, Mapping)]
        template = accounts[-1] if accounts else None
        if request.new_account is not None:
            plan = given
        elif template is not None:
            plan = self._account_plan(
                {}, currency_code(str(template.get("currency"))), True, None, template=template
            )
        else:
            raise InvalidInput(
                "the user has no account to copy: give newAccount", field=["newAccount"]
            )
        steps: list[ProvisioningStep] = []
        status = client.get("status")
        if status == "DISABLED":
            try:
                await self._put_client(login, domain, {"status": "OFFLINE"})
            except BrokerGraphError as error:
                steps.append(
                    ProvisioningStep(
                        name="set user OFFLINE",
                        succeeded=False,
                        reference=request.trader_id,
                        message=f"DXtrade refused: {error_text(error)}; no account was opened",
                    )
                )
                return ProvisioningResult(steps=steps, trader=trader_model(client))
            steps.append(
                ProvisioningStep(
                    name="set user OFFLINE", succeeded=True, reference=request.trader_id
                )
            )
        else:
            steps.append(
                ProvisioningStep(
                    name="set user OFFLINE",
                    succeeded=True,
                    reference=request.trader_id,
                    message=f"already enabled ({status}); left as is",
                )
            )
        opened: list[Account] = []
        own = {str(a.get("accountCode")) for a in accounts}
        base = None
        if template is not None and plan.account_code is None:
            base = re.sub(r"-\d+$", "", str(template.get("accountCode")))
        try:
            account = await self._add_account(login, domain, plan, own, base)
        except BrokerGraphError as error:
            steps.append(
                ProvisioningStep(
                    name="open new account",
                    succeeded=False,
                    message=f"DXtrade refused the new account: {error_text(error)}",
                )
            )
        else:
            opened.append(account)
            steps.append(
                ProvisioningStep(name="open new account", succeeded=True, reference=account.id)
            )
        after = (await self._client(request.trader_id)).body
        return ProvisioningResult(steps=steps, trader=trader_model(after), accounts=opened)
