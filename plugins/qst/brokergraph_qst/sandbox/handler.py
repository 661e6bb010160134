"""One connection's protocol state machine: login gating, then one handler per request.

Phases: CONNECTED -> (LoginRequest ok) LOGGED_IN -> (OELoginRequest ok) OE_LOGGED_IN
-> (OELogoutRequest) OE_LOGGED_OUT -> (OELoginRequest ok) OE_LOGGED_IN ...

* Before a successful LoginRequest, and before the first successful OELoginRequest, any
  other request closes the connection with 4001 "login required" [D]; a failed login
  leaves the phase as it was (the client may try again).
* After OELogoutRequest, order-entry requests answer ServerErrorMessage "Order Entry
  connection is not established" (the login itself still holds; OELoginRequest is allowed).
* LogoutRequest closes with 1000 at any phase, after what is already queued.
* Every request gets exactly one response with its request_id, delayed by the latency and
  jitter knobs; notifications (request_id 0) are never delayed, so they may overtake a
  response.  With ``echo_request_id`` off a response carries request_id 0 instead (QST's
  order-routing docs never mention the id [I]: the client must then wait for each
  answer).  A response queued while an earlier request of its connection is still
  unanswered counts in ``reordered_responses``; ``max_in_flight`` is the most requests
  a connection had unanswered at once.
* PlaceOrderResponse and CancelReplaceOrderResponse carry the new order's number [D];
  with ``order_number_in_response`` off they do not (QST's workflow reads the order book
  "to get the id of last placed request" [V]).
* Order statuses are display texts ("New Order", "Working", ...) [V for "New Order"];
  ``status_texts`` renames them on the wire (e.g. to the JSON API's codes) [I].
* A cancel-replace gives the order a new number [D]; with ``replace_keeps_number`` the
  order keeps its number and changes in place (QST does not say which) [I].
* A pending fault (``fail_next``/``drop_next``) is taken by the next request of a
  logged-in session, not by the requests that log in or out.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from brokergraph_qst._proto import order_routing_pb2 as pb
from brokergraph_qst.sandbox.book import (
    Book,
    Event,
    Order,
    OrderEvent,
    Outcome,
    PositionEvent,
    TextEvent,
)
from brokergraph_qst.sandbox.outbox import Outbox
from brokergraph_qst.sandbox.session import UserSession
from brokergraph_qst.sandbox.wire import (
    PROVIDER,
    account_message,
    account_summary,
    activity_message,
    notification,
    order_message,
    order_spec,
    position_message,
)

#: ClientMessage's oneof field -> the documented request name (the key of ``requests``).
REQUEST_NAMES: dict[str, str] = {
    f.name: t.name if (t := f.message_type) is not None else f.name
    for f in pb.ClientMessage.DESCRIPTOR.oneofs_by_name["request"].fields
}
NOT_ESTABLISHED = "Order Entry connection is not established"
#: Requests that open or end a session: faults are not spent on them.
SESSION_REQUESTS = frozenset({"login", "oe_login", "oe_logout", "logout"})


@dataclass(frozen=True, slots=True)
class Fail:
    """Answer a server error instead of applying the request."""

    status: int


@dataclass(frozen=True, slots=True)
class Drop:
    """Drop the connection instead of answering (after applying, if ``after_apply``)."""

    after_apply: bool


Fault = Fail | Drop


class Phase(enum.Enum):
    CONNECTED = enum.auto()
    LOGGED_IN = enum.auto()
    OE_LOGGED_IN = enum.auto()
    OE_LOGGED_OUT = enum.auto()


class Hub(Protocol):
    """What a connection needs from the sandbox."""

    book: Book
    requests: Counter[str]
    echo_request_id: bool
    order_number_in_response: bool
    replace_keeps_number: bool
    report_fills: bool
    status_texts: dict[str, str]
    reordered_responses: int
    max_in_flight: int

    def attach(self, handler: ConnectionHandler, username: str) -> UserSession: ...

    def route(self, events: list[Event]) -> None: ...

    def response_delay(self) -> float: ...

    def take_fault(self) -> Fault | None: ...

    def now_ms(self) -> int: ...

    def text_title(self, username: str, kind: str) -> str: ...


class ConnectionHandler:
    def __init__(self, hub: Hub, outbox: Outbox) -> None:
        self.hub = hub
        self.outbox = outbox
        self.phase = Phase.CONNECTED
        self.username = ""
        self._session: UserSession | None = None
        #: Arrival numbers of the requests not answered yet, and the one being handled.
        self._received = 0
        self._unanswered: set[int] = set()
        self._current = 0
        self._handlers: dict[str, Callable[[int, pb.ClientMessage], None]] = {
            "login": self._login,
            "oe_login": self._oe_login,
            "oe_logout": self._oe_logout,
            "order_book": self._order_book,
            "oe_switch_account": self._switch_account,
            "place_order": self._place_order,
            "cancel_order": self._cancel_order,
            "cancel_orders": self._cancel_orders,
            "cancel_orders_for_contract": self._cancel_for_contract,
            "cancel_replace_order": self._cancel_replace,
            "change_oal_subscription_level": self._change_oal,
            "get_activity_items": self._activity_items,
            "account_info": self._account_info,
        }

    @property
    def receives_notifications(self) -> bool:
        return self.phase is Phase.OE_LOGGED_IN and self.outbox.accepting

    @property
    def session(self) -> UserSession:
        assert self._session is not None, "no session before login"
        return self._session

    # -- entry points -----------------------------------------------------------------

    def handle(self, message: pb.ClientMessage) -> None:
        if not self.outbox.accepting:
            return
        kind = message.WhichOneof("request")
        self.hub.requests[REQUEST_NAMES[kind] if kind else "Unknown"] += 1
        if kind == "logout":
            self.outbox.close(1000, "logout")
            return
        gated = (self.phase is Phase.CONNECTED and kind != "login") or (
            self.phase is Phase.LOGGED_IN and kind not in ("login", "oe_login")
        )
        if gated:
            self.outbox.close(4001, "login required")
            return
        self._received += 1
        self._current = self._received
        self._unanswered.add(self._current)
        self.hub.max_in_flight = max(self.hub.max_in_flight, len(self._unanswered))
        if kind is None:
            self._error(message.request_id, "Unknown request")
            return
        fault = None if kind in SESSION_REQUESTS else self.hub.take_fault()
        if isinstance(fault, Fail):
            self._error(message.request_id, f"Internal server error ({fault.status})")
            return
        if isinstance(fault, Drop) and not fault.after_apply:
            self.outbox.drop(1011, "sandbox dropped the connection (drop_next)")
            return
        self._handlers[kind](message.request_id, message)
        if fault is not None:  # applied: the answer and its notifications go with the socket
            self.outbox.drop(1011, "sandbox dropped the connection (drop_next)")

    def deliver(self, event: Event) -> None:
        """Send one book event as notifications (an Order is always followed by its text)."""
        if isinstance(event, OrderEvent):
            self._notify(pb.OrderEntryNotification(order=self._order(event.order)), event)
            self._text(event)
        elif isinstance(event, TextEvent):
            self._text(event)
        elif isinstance(event, PositionEvent):
            self._notify(pb.OrderEntryNotification(net_position=position_message(event.position)))
        else:
            info = account_message(event.view)
            self._notify(pb.OrderEntryNotification(account_information=info))

    # -- plumbing ---------------------------------------------------------------------

    def _order(self, order: Order) -> pb.Order:
        message = order_message(
            order,
            self.hub.book.market.prices.get(order.contract),
            report_fills=self.hub.report_fills,
        )
        message.status = self.hub.status_texts.get(order.status, order.status)
        return message

    def _respond(self, message: pb.ServerMessage) -> None:
        if not self.hub.echo_request_id:
            message.request_id = 0
        number = self._current

        def queued() -> None:
            self._unanswered.discard(number)
            if self._unanswered and min(self._unanswered) < number:
                self.hub.reordered_responses += 1

        self.outbox.push_later(message, self.hub.response_delay(), queued)

    def _error(self, request_id: int, text: str) -> None:
        error = pb.ServerErrorMessage(message=text)
        self._respond(pb.ServerMessage(request_id=request_id, error=error))

    def _notify(self, inner: pb.OrderEntryNotification, event: OrderEvent | None = None) -> None:
        self.outbox.push(notification(inner), order_number=event.order.number if event else "")

    def _text(self, event: OrderEvent | TextEvent) -> None:
        title = self.hub.text_title(self.username, event.kind)
        text = pb.OETextNotification(title=title, body=event.body)
        self._notify(pb.OrderEntryNotification(text_notification=text))

    def _account_status(self, account: str, status: str) -> None:
        update = pb.AccountStatus(account_id=account, status=status)
        self._notify(pb.OrderEntryNotification(account_status_update=update))

    def _order_entry_ready(self, request_id: int) -> bool:
        if self.phase is Phase.OE_LOGGED_IN:
            return True
        self._error(request_id, NOT_ESTABLISHED)
        return False

    def _finish(self, outcome: Outcome) -> None:
        self.hub.route(outcome.events)

    @staticmethod
    def _status(ok: bool) -> pb.StatusCode:
        return pb.OK if ok else pb.FAILED

    def _number(self, outcome: Outcome) -> str:
        return outcome.order_number if self.hub.order_number_in_response else ""

    # -- session requests ---------------------------------------------------------------

    def _login(self, request_id: int, message: pb.ClientMessage) -> None:
        if self.phase is not Phase.CONNECTED:
            self._error(request_id, "Already logged in")
            return
        request = message.login
        username = request.username.strip()
        if not self.hub.book.check_password(username, request.password):
            failed = pb.LoginResponse(success=False, server_message="Invalid username or password")
            self._respond(pb.ServerMessage(request_id=request_id, login=failed))
            return
        self.username, self.phase = username, Phase.LOGGED_IN
        self._session = self.hub.attach(self, username)
        self._respond(pb.ServerMessage(request_id=request_id, login=pb.LoginResponse(success=True)))

    def _oe_login(self, request_id: int, message: pb.ClientMessage) -> None:
        request = message.oe_login

        def refuse(reason: str) -> None:
            response = pb.OELoginResponse(success=False, server_message=reason)
            self._respond(pb.ServerMessage(request_id=request_id, oe_login=response))

        credentials_ok = request.username.strip() == self.username and (
            self.hub.book.check_password(self.username, request.password_hash)
        )
        if self.phase is Phase.OE_LOGGED_IN:
            refuse("Already logged in to Order Entry")
            return
        if not credentials_ok:
            refuse("Invalid Order Entry username or password")
            return
        if request.order_entry_provider != PROVIDER:
            provider = request.order_entry_provider
            known = provider in pb.OrderEntryProvider.values()
            name = pb.OrderEntryProvider.Name(provider) if known else str(provider)
            refuse(f"Order Entry provider {name} is not available")
            return
        session = self.session
        if not request.is_relogin:
            session.reset()
        self.phase = Phase.OE_LOGGED_IN
        accounts = [account_summary(self.hub.book.accounts[n]) for n in session.accounts]
        response = pb.OELoginResponse(
            success=True, accounts=accounts, current_account_id=session.current_account
        )
        self._respond(pb.ServerMessage(request_id=request_id, oe_login=response))
        self._account_status(session.current_account, "LOGGED_IN")

    def _oe_logout(self, request_id: int, message: pb.ClientMessage) -> None:
        if not self._order_entry_ready(request_id):
            return
        response = pb.OELogoutResponse(status=pb.OK)
        self._respond(pb.ServerMessage(request_id=request_id, oe_logout=response))
        self._account_status(self.session.current_account, "LOGGED_OUT")
        self.phase = Phase.OE_LOGGED_OUT

    def _switch_account(self, request_id: int, message: pb.ClientMessage) -> None:
        if not self._order_entry_ready(request_id):
            return
        account = message.oe_switch_account.account_id.strip()
        if not self.hub.book.owns(self.username, account):
            self._error(request_id, f"Invalid account id: {account}")
            return
        self.session.current_account = account
        response = pb.OESwitchAccountResponse(account_id=account)
        self._respond(pb.ServerMessage(request_id=request_id, oe_switch_account=response))
        self._account_status(account, "SWITCHED")

    # -- reads ----------------------------------------------------------------------------

    def _order_book(self, request_id: int, message: pb.ClientMessage) -> None:
        if not self._order_entry_ready(request_id):
            return
        book, account = self.hub.book, self.session.current_account
        response = pb.OrderBookResponse(
            oe_provider=PROVIDER,
            net_positions=[position_message(p) for p in book.positions_of(account)],
            orders=[self._order(o) for o in book.orders_of(account)],
        )
        self._respond(pb.ServerMessage(request_id=request_id, order_book=response))

    def _account_info(self, request_id: int, message: pb.ClientMessage) -> None:
        if not self._order_entry_ready(request_id):
            return
        view = self.hub.book.account_view(self.session.current_account)
        info = account_message(view, message.account_info.currency_code)
        response = pb.AccountInfoResponse(account_information=info)
        self._respond(pb.ServerMessage(request_id=request_id, account_info=response))

    def _change_oal(self, request_id: int, message: pb.ClientMessage) -> None:
        if not self._order_entry_ready(request_id):
            return
        level = message.change_oal_subscription_level.subscription_level
        ok = level in (pb.SUBSCRIBED, pb.UNSUBSCRIBED)
        if ok:
            self.session.oal_subscribed = level == pb.SUBSCRIBED
        response = pb.ChangeOALSubscriptionLevelResponse(status=self._status(ok))
        self._respond(
            pb.ServerMessage(request_id=request_id, change_oal_subscription_level=response)
        )

    def _activity_items(self, request_id: int, message: pb.ClientMessage) -> None:
        if not self._order_entry_ready(request_id):
            return
        items = [activity_message(i) for i in self.session.activity_of_current_account()]
        response = pb.GetActivityItemsResponse(items=items)
        self._respond(pb.ServerMessage(request_id=request_id, get_activity_items=response))

    # -- order entry ------------------------------------------------------------------------

    def _place_order(self, request_id: int, message: pb.ClientMessage) -> None:
        if not self._order_entry_ready(request_id):
            return
        request, book, current = message.place_order, self.hub.book, self.session.current_account
        spec = order_spec(request)
        account = request.override_account.strip() or current
        if book.owns(self.username, account):
            outcome = book.place(self.username, account, spec, self.hub.now_ms())
        else:
            reason = f"Invalid account: {account}"
            outcome = book.reject_place(self.username, current, spec, reason)
        response = pb.PlaceOrderResponse(
            status=self._status(outcome.ok), order_number=self._number(outcome)
        )
        self._respond(pb.ServerMessage(request_id=request_id, place_order=response))
        self._finish(outcome)

    def _cancel_order(self, request_id: int, message: pb.ClientMessage) -> None:
        if not self._order_entry_ready(request_id):
            return
        order_id = message.cancel_order.order_id.strip()
        outcome = self.hub.book.cancel(self.username, self.session.current_account, order_id)
        response = pb.CancelOrderResponse(status=self._status(outcome.ok))
        self._respond(pb.ServerMessage(request_id=request_id, cancel_order=response))
        self._finish(outcome)

    def _cancel_orders(self, request_id: int, message: pb.ClientMessage) -> None:
        if not self._order_entry_ready(request_id):
            return
        ids = [i.strip() for i in message.cancel_orders.order_ids]
        outcome = self.hub.book.cancel_many(self.username, self.session.current_account, ids)
        response = pb.CancelOrdersResponse(status=self._status(outcome.ok))
        self._respond(pb.ServerMessage(request_id=request_id, cancel_orders=response))
        self._finish(outcome)

    def _cancel_for_contract(self, request_id: int, message: pb.ClientMessage) -> None:
        if not self._order_entry_ready(request_id):
            return
        contract = message.cancel_orders_for_contract.contract_to_be_canceled.strip()
        outcome = self.hub.book.cancel_for_contract(self.session.current_account, contract)
        response = pb.CancelOrdersForContractResponse(status=self._status(outcome.ok))
        self._respond(pb.ServerMessage(request_id=request_id, cancel_orders_for_contract=response))
        self._finish(outcome)

    def _cancel_replace(self, request_id: int, message: pb.ClientMessage) -> None:
        if not self._order_entry_ready(request_id):
            return
        request = message.cancel_replace_order
        outcome = self.hub.book.replace(
            self.username,
            self.session.current_account,
            request.order_id_to_be_replaced.strip(),
            order_spec(request),
            self.hub.now_ms(),
            keep_number=self.hub.replace_keeps_number,
        )
        response = pb.CancelReplaceOrderResponse(
            status=self._status(outcome.ok), order_number=self._number(outcome)
        )
        self._respond(pb.ServerMessage(request_id=request_id, cancel_replace_order=response))
        self._finish(outcome)
