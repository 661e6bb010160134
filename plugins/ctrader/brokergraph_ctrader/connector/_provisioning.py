"""TRADER_PROVISIONING: createTrader (user → trader → link, resumable), openAccount,
updateAccount (PATCH only) and deactivate/reactivate by access rights."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from brokergraph_ctrader.client import md5_hex
from brokergraph_ctrader.connector._base import (
    TRADERS,
    _failed,
    _login_of,
    _may_have_applied,
    _now,
    _step,
)
from brokergraph_ctrader.connector._reads import ReadsMixin
from brokergraph_ctrader.csvwire import format_timestamp
from brokergraph_ctrader.money import leverage_to_cents
from brokergraph_ctrader.records import trader_from_record
from brokergraph_ctrader.wire import ACCESS_RIGHTS, access_rights_for
from gateway.contract import (
    Account,
    BrokerGraphError,
    Conflict,
    CreateTraderRequest,
    DeactivateTraderRequest,
    InvalidInput,
    NotFound,
    OpenAccountRequest,
    ProtocolError,
    ProvisioningResult,
    ProvisioningStep,
    ReactivateTraderRequest,
    TraderProvisioning,
    TraderStatus,
    UpdateAccountRequest,
    VendorIdentity,
    exact_json_dumps,
    exact_json_loads,
    read,
    write,
)

ACCOUNT_TYPES = frozenset({"HEDGED", "NETTED", "SPREAD_BETTING"})
MARGIN_TYPES = frozenset({"MAX", "SUM", "NET"})
#: The gateway's policy for a trader password it sets (cTrader states none of its own).
PASSWORD_LENGTH = range(8, 129)


#: cTrader's bounds of an attribute (A4.6, verified): names 1-64 and values 1-512
#: characters, at most 100 per call.
ATTRIBUTE_NAME, ATTRIBUTE_VALUE, ATTRIBUTES_PER_CALL = range(1, 65), range(1, 513), 100


def check_attribute_names(names: Sequence[str]) -> list[str]:
    """Names checked against cTrader's bounds (field ``names``) — no upstream call."""
    if not 1 <= len(names) <= ATTRIBUTES_PER_CALL or len(set(names)) != len(names):
        raise InvalidInput(
            f"name 1 to {ATTRIBUTES_PER_CALL} attributes, each once", field=["names"]
        )
    for name in names:
        if len(name) not in ATTRIBUTE_NAME or name.strip() != name:
            raise InvalidInput(
                "an attribute name has 1-64 characters without surrounding spaces",
                field=["names"],
            )
    return list(names)


def check_attributes(attributes: Mapping[str, str]) -> dict[str, str]:
    """Name/value pairs checked against cTrader's bounds (field ``attributes``)."""
    try:
        check_attribute_names(list(attributes))
    except InvalidInput as error:
        raise InvalidInput(error.message, field=["attributes"]) from None
    if any(len(value) not in ATTRIBUTE_VALUE for value in attributes.values()):
        raise InvalidInput("an attribute value has 1-512 characters", field=["attributes"])
    return dict(attributes)


#: Partner (IB) attribution on create (A1, verified): free-text partner ids cTrader keeps
#: in the trader's contactDetails; ``options`` keys of the same names carry them.
INTRODUCING_BROKERS = ("introducingBroker1", "introducingBroker2")


def _introducing_brokers(options: Mapping[str, Any]) -> dict[str, str]:
    """``options.introducingBroker1/2`` checked (the gateway's bound: 1-100 characters
    without surrounding spaces; cTrader states none)."""
    found: dict[str, str] = {}
    for key in INTRODUCING_BROKERS:
        value = options.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not 1 <= len(value) <= 100 or value.strip() != value:
            raise InvalidInput(
                f"options.{key} must be a partner id of 1-100 characters "
                "without surrounding spaces",
                field=["options", key],
            )
        found[key] = value
    return found


def _password(password: str, *, policy: bool) -> str:
    """``password`` checked; never part of a message.  A password being checked meets
    only the length bound (it may predate the policy), one being set the whole policy."""
    lengths = PASSWORD_LENGTH if policy else range(1, PASSWORD_LENGTH.stop)
    if len(password) not in lengths or not password.isprintable() or password.strip() != password:
        raise InvalidInput(
            f"the password must be {lengths.start}-{lengths.stop - 1} printable characters "
            "without surrounding spaces",
            field=["password"],
        )
    return password


class ProvisioningMixin(ReadsMixin, TraderProvisioning):
    def _check_environment(self, is_live: bool | None) -> None:
        """cTrader makes live or demo accounts by server (the link's environmentName),
        not by request: one the connector's environment cannot make is refused."""
        if is_live is None or is_live == self.settings.is_live:
            return
        have, want = ("live", "demo") if self.settings.is_live else ("demo", "live")
        raise InvalidInput(
            f"this cTrader connector serves the {have} environment "
            f"({self.settings.environment!r}): it cannot create a {want} account; "
            f"use a connector for a {want} server, or set isLive to {str(not is_live).lower()}",
            field=["isLive"],
        )

    # Groups and deposit assets are read afresh for every check, not cached: two GETs
    # (which cTrader does not rate-limit) next to the three writes of a createTrader,
    # and a group or asset added in cBroker is usable at once.

    async def _check_group(self, group: str) -> str:
        name = group.strip()
        if name in await self._groups():
            return name
        raise InvalidInput(f"cTrader has no trader group {name!r}", field=["group"])

    async def _deposit_assets(self) -> list[str] | None:
        try:
            data = await self.client.get("/v2/webserv/depositAssets")
        except NotFound:
            return None  # an older server without 6.2: cTrader checks on create
        items = data.get("depositAsset") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise ProtocolError("cTrader's deposit assets answer is not a list")
        return [str(a).upper() for a in items]

    async def _check_currency(self, currency: str | None) -> str:
        code = (currency or self.settings.default_currency).strip().upper()
        assets = await self._deposit_assets()
        if not code or (assets is not None and code not in assets):
            raise InvalidInput(f"cTrader takes no deposits in {code!r}", field=["currency"])
        return code

    async def _new_trader_body(
        self,
        *,
        group: str | None,
        currency: str | None,
        leverage: Decimal | None,
        options: Mapping[str, Any],
        email: str | None,
        name: str | None,
        password_hash: str,
        marker: str,
    ) -> dict[str, Any]:
        """The body of 4.1, every field checked (and groups/currencies looked up) first."""
        rights = str(options.get("accessRights", "FULL_ACCESS")).upper()
        if rights not in ACCESS_RIGHTS:
            raise InvalidInput(
                f"options.accessRights must be one of {sorted(ACCESS_RIGHTS)}", field=["options"]
            )
        account_type = str(options.get("accountType", "HEDGED")).upper()
        if account_type not in ACCOUNT_TYPES:
            raise InvalidInput(
                f"options.accountType must be one of {sorted(ACCOUNT_TYPES)}", field=["options"]
            )
        margin = str(options.get("totalMarginCalculationType", "MAX")).upper()
        if margin not in MARGIN_TYPES:
            raise InvalidInput(
                f"options.totalMarginCalculationType must be one of {sorted(MARGIN_TYPES)}",
                field=["options"],
            )
        contact: dict[str, Any] = {"email": email} if email else {}
        contact.update(_introducing_brokers(options))
        cents = leverage_to_cents(
            leverage if leverage is not None else self.settings.default_leverage
        )
        group_name, deposit_currency = await asyncio.gather(
            self._check_group(group or self.settings.default_group),
            self._check_currency(currency),
        )
        body: dict[str, Any] = {
            "accessRights": rights,
            "accountType": account_type,
            "balance": 0,
            "brokerName": self.settings.broker_name,
            "depositCurrency": deposit_currency,
            "groupName": group_name,
            "hashedPassword": password_hash,
            "leverageInCents": cents,
            "totalMarginCalculationType": margin,
            "contactDetails": contact,
            # Finds the trader again if the create answer is lost (see _find_marked).
            "description": marker,
            "swapFree": bool(options.get("swapFree", False)),
        }
        if name:
            body["name"] = name
        return body

    async def _find_marked(self, marker: str, since: datetime) -> dict[str, Any] | None:
        """A trader created by a create call whose answer was lost, by its description."""
        params = {
            "from": format_timestamp(since - timedelta(minutes=5)),
            "to": format_timestamp(_now() + timedelta(minutes=5)),
        }
        data = await self.client.get(f"{TRADERS}/", params)
        items = data.get("trader", []) if isinstance(data, dict) else []
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and item.get("description") == marker:
                return item
        return None

    async def _create_and_link(
        self, user_id: str, body: Mapping[str, Any], password_hash: str
    ) -> tuple[Account, Any]:
        """4.1 then 5.2 for a known user (openAccount); the login is recorded in between."""
        created = await self.client.post(TRADERS, body)
        if not isinstance(created, dict):
            raise ProtocolError("cTrader answered the trader creation without an object")
        account = self._account(created, user_id)
        await self._add_login(user_id, account.id)
        try:
            reference = await self._link(user_id, account.id, password_hash)
        except BrokerGraphError as error:
            error.details.setdefault("createdLogin", account.id)
            error.details.setdefault("failedStep", "link-user")
            raise
        return account, reference

    async def _link(self, user_id: str, login: str, password_hash: str) -> Any:
        body = {
            "traderLogin": int(login),
            "traderPasswordHash": password_hash,
            "userId": int(user_id),
            "brokerName": self.settings.broker_name,
            "environmentName": self.settings.environment,
            "returnAccountDetails": True,
        }
        data = await self.client.post("/cid/ctid/link", body)
        return data.get("ctidTraderAccountId") if isinstance(data, dict) else None

    def _flow_kind(self) -> str:
        return f"{self.name}-create-trader"

    def _email_key(self, email: str) -> str:
        return self._key("create-trader-email", email.strip().lower())

    def _user_by_email_key(self, email: str) -> str:
        return self._key("ctid-email", email.strip().lower())

    async def creation_identities(self, request: CreateTraderRequest) -> Sequence[VendorIdentity]:
        """The cTID user the e-mail names: create-user is idempotent by e-mail, so the
        e-mail is the user's identity, and the user (when create-user answered for this
        e-mail before) holds it.  Read from the gateway store only: cTrader has no read
        of a user by e-mail, so a user never seen through the gateway is found by the
        create-user answer (checked in :meth:`_run_create_flow` before any other write)."""
        known = await self.context.store.get_flow(self._user_by_email_key(request.email))
        user_id = known.get("userId") if known else None
        return [
            VendorIdentity(
                kind="ctid-email",
                id=request.email.strip().lower(),
                holders=(str(user_id),) if user_id is not None else (),
                field=("email",),
            )
        ]

    async def _foreign_user(self, user_id: str, partner_code: object) -> bool:
        """Whether the user is linked to a partner other than the flow's."""
        (owner,) = await self.context.store.owners(self.platform, "trader", [user_id])
        return owner is not None and owner != partner_code

    async def create_trader(self, request: CreateTraderRequest) -> ProvisioningResult:
        """create-user (cTID) → create-trader → link-user, resumable at the failed step.

        One flow per email at a time: while a createTrader for an email is unfinished, a
        new one (without ``resume_token``) is a Conflict naming the token to resume with,
        so a retry that lost the first answer cannot make a second trading account.
        """
        self._check_environment(request.is_live)
        email_key = self._email_key(request.email)
        # In-process serialisation per email (and so per flow): a double submit waits
        # for the first and then meets its state.
        lock = self._locks[int(md5_hex(email_key)[:8], 16) % len(self._locks)]
        async with lock:
            return await self._create_trader(request, email_key)

    async def _create_trader(
        self, request: CreateTraderRequest, email_key: str
    ) -> ProvisioningResult:
        store = self.context.store
        key_record = self._creation_key(request)
        if key_record is not None and not request.resume_token:
            known = await store.get_flow(key_record)
            earlier = None if known is None else await store.get_flow(str(known["flowId"]))
            if known is not None and earlier is not None:
                # This key's flow, re-sent after its answer was lost: it goes on where
                # it stopped (reading first what an unanswered step did), never anew.
                result = await self._run_create_flow(str(known["flowId"]), earlier)
                if result.complete:
                    await store.delete_flow(email_key)
                return result
        if request.resume_token:
            flow_id = request.resume_token
            state = await store.get_flow(flow_id)
            if state is None or not flow_id.startswith(f"{self.name}-ct-"):
                raise InvalidInput(
                    "the resume token names no createTrader flow", field=["resumeToken"]
                )
            if state.get("partnerCode") != request.partner_code:
                # Told like an unknown token: the flow is another partner's business.
                raise InvalidInput(
                    "the resume token names no createTrader flow", field=["resumeToken"]
                )
            if state.get("email", "").lower() != request.email.lower():
                raise InvalidInput(
                    "the resume token belongs to another email", field=["resumeToken"]
                )
        else:
            running = await store.get_flow(email_key)
            if running is not None:
                earlier = await store.get_flow(str(running["flowId"]))
                if earlier is not None and not earlier.get("linked"):
                    if earlier.get("partnerCode") != request.partner_code:
                        # Its token is for whoever started it, never for another partner.
                        raise Conflict(
                            "an unfinished createTrader stands in the way of this one",
                            field=["email"],
                        )
                    raise Conflict(
                        "a createTrader for this email stopped midway: send the same input "
                        f"with resumeToken {running['flowId']} to finish it",
                        field=["resumeToken"],
                        details={"platform": self.platform, "resumeToken": running["flowId"]},
                    )
            generated = request.password is None
            # A strong random password when none is given; neither it nor its hash is
            # ever logged.  Users sign in with their cTID; the trader password only
            # authorises the link.
            password = request.password or secrets.token_urlsafe(24)
            flow_id = f"{self.name}-ct-{uuid.uuid4().hex}"
            password_hash = md5_hex(password)
            body = await self._new_trader_body(
                group=request.group,
                currency=request.currency,
                leverage=request.leverage,
                options=request.options,
                email=request.email,
                name=request.name,
                password_hash=password_hash,
                marker=f"brokergraph:{flow_id}",
            )
            language = str(
                request.options.get("preferredLanguage", self.settings.preferred_language)
            )
            if key_record is None:
                await self._refuse_double_submit(request, body, language)
            state = {
                "email": request.email,
                "name": request.name,
                "partnerCode": request.partner_code,
                "language": language.upper(),
                "body": {k: v for k, v in body.items() if k != "hashedPassword"},
                "passwordHash": password_hash,
                "passwordGenerated": generated,
                "startedAt": _now().isoformat(),
                "userId": None,
                "login": None,
                "traderAttemptedAt": None,
                "linked": False,
                "ctidTraderAccountId": None,
            }
            await store.save_flow(flow_id, self._flow_kind(), state)
            await store.save_flow(
                email_key, f"{self.name}-create-trader-email", {"flowId": flow_id}
            )
            if key_record is not None:
                await store.save_flow(
                    key_record, f"{self.name}-create-trader-key", {"flowId": flow_id}
                )
        result = await self._run_create_flow(flow_id, state)
        if result.complete:
            await store.delete_flow(email_key)
            await self._remember_done(state, result)
        return result

    @staticmethod
    def _sameness(body: Mapping[str, Any], name: object, language: object) -> dict[str, Any]:
        """What makes two createTraders the same request (the marker and hash aside)."""
        kept = {k: v for k, v in body.items() if k not in ("description", "hashedPassword")}
        return {"body": kept, "name": name, "language": language}

    def _done_key(self, email: str) -> str:
        return self._key("create-trader-done", email.strip().lower())

    async def _remember_done(self, state: Mapping[str, Any], result: ProvisioningResult) -> None:
        """The last finished createTrader of an e-mail, for the double-submit check."""
        record = {
            "partnerCode": state["partnerCode"],
            "completedAt": _now().isoformat(),
            "login": state.get("login"),
            "request": self._sameness(state["body"], state["name"], state["language"]),
        }
        await self.context.store.save_flow(
            self._done_key(str(state["email"])), f"{self.name}-create-trader-done", record
        )

    async def _refuse_double_submit(
        self, request: CreateTraderRequest, body: Mapping[str, Any], language: str
    ) -> None:
        """Without a key, a createTrader identical to one finished for the same e-mail
        and partner within ``double_submit_seconds`` is a double submit: create-user
        would answer the same cTID and create-trader make it a second account.  CONFLICT
        naming the first's account, before anything is sent."""
        window = self.settings.double_submit_seconds
        done = await self.context.store.get_flow(self._done_key(request.email))
        if window <= 0 or done is None or done.get("partnerCode") != request.partner_code:
            return
        finished = datetime.fromisoformat(str(done["completedAt"]))
        if _now() - finished > timedelta(seconds=window):
            return
        asked = exact_json_loads(exact_json_dumps(self._sameness(body, request.name, language)))
        if asked != exact_json_loads(exact_json_dumps(done["request"])):
            return
        raise Conflict(
            f"cTrader account {done.get('login')} was created for this e-mail from the same "
            f"request {int((_now() - finished).total_seconds())} s ago (a double submit?): "
            "nothing was sent. To create another account for this cTID, send an "
            "idempotencyKey (one per creation) or use openAccount",
            field=["email"],
            details={"platform": self.platform, "accountId": done.get("login")},
        )

    async def _run_create_flow(self, flow_id: str, state: dict[str, Any]) -> ProvisioningResult:
        store = self.context.store
        kind = self._flow_kind()
        steps: list[ProvisioningStep] = []
        earlier = "done in an earlier attempt"

        async def save() -> None:
            await store.save_flow(flow_id, kind, state)

        # 1. create-user: idempotent by email on cTrader's side.
        if state["userId"] is None:
            try:
                data = await self.client.post(
                    "/cid/ctid/create",
                    {
                        "email": state["email"],
                        "brokerName": self.settings.broker_name,
                        "preferredLanguage": state["language"],
                    },
                )
                user_id = data.get("userId") if isinstance(data, dict) else None
                if isinstance(user_id, bool) or not isinstance(user_id, int | str):
                    raise ProtocolError("cTrader's create-user answer has no userId")
            except BrokerGraphError:
                # Nothing exists upstream yet: report the typed error, keep no flow.
                await store.delete_flow(flow_id)
                await store.delete_flow(self._email_key(state["email"]))
                raise
            # Remembered first, so the next request for this e-mail is checked against
            # the user before anything is sent (see creation_identities).
            await store.save_flow(
                self._user_by_email_key(state["email"]),
                f"{self.name}-ctid-email",
                {"userId": str(user_id)},
            )
            if await self._foreign_user(str(user_id), state["partnerCode"]):
                # An existing cTID of another partner's client: create-user changed
                # nothing (idempotent by e-mail), and nothing else is sent.
                await store.delete_flow(flow_id)
                await store.delete_flow(self._email_key(state["email"]))
                raise Conflict(
                    f"this {self.platform} ctid-email is in use outside this business "
                    "partner and cannot be used for it",
                    field=["email"],
                )
            state["userId"] = str(user_id)
            await save()
            steps.append(_step("create-user", state["userId"]))
        else:
            steps.append(_step("create-user", state["userId"], earlier))
        user_id = str(state["userId"])
        await self._add_login(user_id, "", email=state["email"], name=state["name"])
        record = await self._user_record(user_id)
        trader = trader_from_record(self.platform, user_id, record)

        # 2. create-trader.
        account: Account | None = None
        if state["login"] is None:
            marker = str(state["body"]["description"])
            found = None
            if state["traderAttemptedAt"] is not None:  # the last answer was lost
                since = datetime.fromisoformat(state["traderAttemptedAt"])
                found = await self._find_marked(marker, since)
            if found is None:
                state["traderAttemptedAt"] = _now().isoformat()
                await save()
                try:
                    found = await self.client.post(
                        TRADERS, {**state["body"], "hashedPassword": state["passwordHash"]}
                    )
                    if not isinstance(found, dict):
                        raise ProtocolError(
                            "cTrader answered the trader creation without an object"
                        )
                except BrokerGraphError as error:
                    if not _may_have_applied(error):
                        state["traderAttemptedAt"] = None  # refused: certainly not created
                        await save()
                    steps.append(_failed("create-trader", error))
                    return ProvisioningResult(steps=steps, trader=trader, resume_token=flow_id)
            account = self._account(found, user_id)
            state["login"] = account.id
            await save()
            await self._add_login(user_id, account.id)
            steps.append(_step("create-trader", account.id))
        else:
            steps.append(_step("create-trader", state["login"], earlier))
            with contextlib.suppress(BrokerGraphError):
                account = self._account(await self._trader_json(str(state["login"])), user_id)
        login = str(state["login"])
        accounts = [account] if account is not None else []

        # 3. link-user.
        if not state["linked"]:
            try:
                reference = await self._link(user_id, login, str(state["passwordHash"]))
            except Conflict:
                reference = None  # linked by the attempt whose answer was lost
            except BrokerGraphError as error:
                steps.append(_failed("link-user", error))
                return ProvisioningResult(
                    steps=steps, trader=trader, accounts=accounts, resume_token=flow_id
                )
            state.update(linked=True, ctidTraderAccountId=reference, passwordHash=None)
            state["completedAt"] = _now().isoformat()
            await save()
            steps.append(_step("link-user", reference))
        else:
            steps.append(_step("link-user", state["ctidTraderAccountId"], earlier))
        return ProvisioningResult(steps=steps, trader=trader, accounts=accounts)

    def _creation_key(self, request: CreateTraderRequest) -> str | None:
        """The record naming a keyed createTrader's flow (``{name}:create-trader-key:…``)."""
        key = request.idempotency_key
        return None if key is None else self._key("create-trader-key", key)

    def _opening_key(self, request: OpenAccountRequest) -> str | None:
        key = request.idempotency_key
        return None if key is None else self._key("open-account-key", request.trader_id, key)

    @read
    async def find_created_trader(self, request: CreateTraderRequest) -> ProvisioningResult | None:
        """A keyed createTrader's flow as cTrader and the flow's record show it, once it
        is finished (the trader linked to the user): the user, the account (read from
        cTrader) and every step done.  None for a flow not finished or never started:
        the gateway's re-sent request then resumes the key's flow, which reads first
        what its unanswered step did."""
        record = self._creation_key(request)
        known = None if record is None else await self.context.store.get_flow(record)
        state = None if known is None else await self.context.store.get_flow(str(known["flowId"]))
        if state is None or not state.get("linked") or state.get("login") is None:
            return None
        user_id, login = str(state["userId"]), str(state["login"])
        trader = trader_from_record(self.platform, user_id, await self._user_record(user_id))
        account = self._account(await self._trader_json(login), user_id)
        read_back = "read back under this idempotency key"
        steps = [
            _step("create-user", user_id, read_back),
            _step("create-trader", login, read_back),
            _step("link-user", state.get("ctidTraderAccountId"), read_back),
        ]
        return ProvisioningResult(steps=steps, trader=trader, accounts=[account])

    @read
    async def find_opened_account(self, request: OpenAccountRequest) -> Account | None:
        """A keyed openAccount's trader, found by the marker its attempt gave it, once
        linked to the user.  None before that: the gateway's re-sent request then
        finds it by the marker and links it (see :meth:`open_account`)."""
        record = self._opening_key(request)
        known = None if record is None else await self.context.store.get_flow(record)
        if known is None or not known.get("linked"):
            return None
        since = datetime.fromisoformat(str(known["startedAt"]))
        found = await self._find_marked(str(known["marker"]), since)
        if found is None:
            return None
        account = self._account(found, request.trader_id)
        await self._add_login(request.trader_id, account.id)
        return account

    async def open_account(self, request: OpenAccountRequest) -> Account:
        """A new trader (4.1) linked (5.2) to an existing user.

        With a key, the attempt's marker and password hash are kept first (the hash
        only until the link is done); the key's attempt re-sent after a lost answer
        reads cTrader for its trader by the marker before creating one, and links a
        found trader the lost answer left unlinked."""
        self._check_environment(request.is_live)
        record = await self._require_user(request.trader_id)
        marker = f"brokergraph:open:{uuid.uuid4().hex}"
        password_hash = md5_hex(secrets.token_urlsafe(24))
        store, key_record = self.context.store, self._opening_key(request)
        kind = f"{self.name}-open-account-key"
        if key_record is not None:
            known = await store.get_flow(key_record)
            if known is not None and known.get("linked"):
                found = await self.find_opened_account(request)
                if found is not None:
                    return found
            if known is not None and known.get("passwordHash"):
                marker, password_hash = str(known["marker"]), str(known["passwordHash"])
                since = datetime.fromisoformat(str(known["startedAt"]))
                made = await self._find_marked(marker, since)
                if made is not None:  # created, its answer lost: link it, once
                    account = self._account(made, request.trader_id)
                    await self._add_login(request.trader_id, account.id)
                    with contextlib.suppress(Conflict):  # linked by the lost attempt
                        await self._link(request.trader_id, account.id, password_hash)
                    linked = {**known, "linked": True, "passwordHash": None}
                    await store.save_flow(key_record, kind, linked)
                    return account
            else:
                known = {"marker": marker, "startedAt": _now().isoformat(), "linked": False}
                known["passwordHash"] = password_hash
                await store.save_flow(key_record, kind, known)
        body = await self._new_trader_body(
            group=request.group,
            currency=request.currency,
            leverage=request.leverage,
            options=request.options,
            email=record.get("email") if record else None,
            name=record.get("name") if record else None,
            password_hash=password_hash,
            marker=marker,
        )
        account, _ = await self._create_and_link(request.trader_id, body, password_hash)
        if key_record is not None:
            done = {"marker": marker, "startedAt": _now().isoformat(), "linked": True}
            await store.save_flow(key_record, kind, {**done, "passwordHash": None})
        return account

    async def update_account(self, request: UpdateAccountRequest) -> Account:
        """PATCH (4.5.2) with only the changed fields — all three are PATCH fields, so a
        PUT (which would reset every omitted field) is never needed."""
        login = _login_of(request.account_id)
        if login is None:
            raise NotFound("account not found", field=["accountId"])
        body: dict[str, Any] = {}
        if request.leverage is not None:
            body["leverageInCents"] = leverage_to_cents(request.leverage)
        if request.status is not None:
            body["accessRights"] = access_rights_for(request.status)
        if request.group is not None:
            body["groupName"] = await self._check_group(request.group)
        if not body:
            raise InvalidInput("nothing to change", field=["leverage"])
        await self.client.patch(f"{TRADERS}/{login}", body)
        (account,) = await self.get_accounts([login])
        if account is None:
            raise NotFound("account not found", field=["accountId"])
        return account

    async def _set_rights(
        self, user_id: str, target: Callable[[str, str], str], step: str
    ) -> tuple[list[ProvisioningStep], dict[str, str]]:
        """PATCH accessRights of every login of a user; ``target(login, current)``."""
        logins = (await self._user_logins([user_id]))[user_id]
        steps: list[ProvisioningStep] = []
        previous: dict[str, str] = {}
        for login in logins:
            try:
                current = str((await self._trader_json(login)).get("accessRights"))
                wanted = target(login, current)
                previous[login] = current
                if wanted != current:
                    await self.client.patch(f"{TRADERS}/{login}", {"accessRights": wanted})
                steps.append(_step(step, login, wanted))
            except BrokerGraphError as error:
                steps.append(_failed(step, error))
        return steps, previous

    async def deactivate_trader(self, request: DeactivateTraderRequest) -> ProvisioningResult:
        """cTrader has no user switch: every account of the user goes to NO_LOGIN, and
        the rights they had are remembered for :meth:`reactivate_trader`."""
        record = await self._require_user(request.trader_id) or {
            "userId": request.trader_id,
            "logins": [],
            "createdAt": _now().isoformat(),
        }
        steps, previous = await self._set_rights(
            request.trader_id, lambda _login, _current: "NO_LOGIN", "disable-account"
        )
        saved = dict(record.get("savedRights") or {})
        for login, rights in previous.items():
            if rights != "NO_LOGIN":
                saved[login] = rights
        record.update(status=TraderStatus.DISABLED.value, savedRights=saved)
        await self._save_user(request.trader_id, record)
        trader = trader_from_record(self.platform, request.trader_id, record)
        return ProvisioningResult(steps=steps, trader=trader)

    async def reactivate_trader(self, request: ReactivateTraderRequest) -> ProvisioningResult:
        record = await self._require_user(request.trader_id) or {
            "userId": request.trader_id,
            "logins": [],
            "createdAt": _now().isoformat(),
        }
        saved: dict[str, str] = dict(record.get("savedRights") or {})
        steps, _ = await self._set_rights(
            request.trader_id,
            lambda login, current: (
                saved.get(login, "FULL_ACCESS") if current == "NO_LOGIN" else current
            ),
            "enable-account",
        )
        record.update(status=TraderStatus.ACTIVE.value, savedRights={})
        await self._save_user(request.trader_id, record)
        accounts: list[Account] = []
        if request.new_account is not None:
            opened = await self.open_account(request.new_account)
            accounts.append(opened)
            steps.append(_step("open-account", opened.id))
        trader = trader_from_record(self.platform, request.trader_id, record)
        return ProvisioningResult(steps=steps, trader=trader, accounts=accounts)

    # -- trader passwords (4.8, 4.9): only their MD5 travels, nothing logs either --------

    def _trader_login(self, account_id: str) -> int:
        """The login of an account id, as cTrader's trader calls take it."""
        login = _login_of(account_id)
        if login is None:
            raise NotFound("account not found", field=["accountId"])
        return int(login)

    @write
    async def change_trader_password(self, account_id: str, password: str) -> None:
        """4.8: set the trader password of ``account_id`` (checked against the policy)."""
        login = self._trader_login(account_id)
        body = {"login": login, "hashedPassword": md5_hex(_password(password, policy=True))}
        await self.client.post(f"{TRADERS}/{login}/changepassword", body)

    @write
    async def reset_trader_password(self, account_id: str) -> None:
        """4.8 with a strong random password nobody learns: the old one stops working.

        Users sign in with their cTID; a trader password only authorises a link, so a
        leaked one is revoked this way, and a new one is set by ``change_trader_password``.
        """
        login = self._trader_login(account_id)
        body = {"login": login, "hashedPassword": md5_hex(secrets.token_urlsafe(24))}
        await self.client.post(f"{TRADERS}/{login}/changepassword", body)

    @read
    async def check_trader_password(self, account_id: str, password: str) -> bool:
        """4.9: whether ``password`` is the trader's; cTrader answers WRONG_PASSWORD if not.

        4.9's path was not recovered (inferred), so it is the setting
        ``check_password_path``; the fields are verified.
        """
        login = self._trader_login(account_id)
        body = {"login": login, "hashedPassword": md5_hex(_password(password, policy=False))}
        path = self.settings.check_password_path.format(login=login)
        try:
            await self.client.post(path, body)
        except InvalidInput as error:
            if error.details.get("vendorCode") == "WRONG_PASSWORD":
                return False
            raise
        return True

    # -- trader attributes (4.14, 4.17, 4.20): key/value metadata of a trader ---------

    def _attributes(self, suffix: str) -> str:
        return f"{self.settings.attributes_path}/traders{suffix}"

    @read
    async def get_trader_attributes(self, account_id: str) -> dict[str, str]:
        """4.14 for one trader: its attributes by name (none: an empty mapping)."""
        login = self._trader_login(account_id)
        answer = await self.client.post(self._attributes("/list"), {"ids": [login]})
        items = answer.get("items") if isinstance(answer, Mapping) else None
        if not isinstance(items, list):
            raise ProtocolError("cTrader's attribute list has no items")
        found: dict[str, str] = {}
        for item in items:
            if not isinstance(item, Mapping) or item.get("id") != login:
                continue
            for pair in item.get("attributes") or []:
                name, value = pair.get("name"), pair.get("value")
                if not isinstance(name, str) or not isinstance(value, str):
                    raise ProtocolError("cTrader sent an attribute without a text name/value")
                found[name] = value
        return found

    @write
    async def set_trader_attributes(self, account_id: str, attributes: Mapping[str, str]) -> None:
        """4.17: add or replace these attributes of the trader; others stay."""
        login = self._trader_login(account_id)
        pairs = [{"name": n, "value": v} for n, v in check_attributes(attributes).items()]
        await self.client.post(
            self._attributes(""), {"items": [{"id": login, "attributes": pairs}]}
        )

    @write
    async def remove_trader_attributes(self, account_id: str, names: Sequence[str]) -> None:
        """4.20 with the names given (never none: cTrader would delete every one)."""
        login = self._trader_login(account_id)
        body = {"ids": [login], "names": check_attribute_names(names)}
        await self.client.post(self._attributes("/delete"), body)
