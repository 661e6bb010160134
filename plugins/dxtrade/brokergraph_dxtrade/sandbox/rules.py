"""The sandbox's answers where the vendor facts only guess (tag [I]): one knob per guess.

Each knob defaults to the guess the vendor notes suggest and offers the alternatives a
real DXtrade host could as plausibly show, so the product's tests can run under every
one of them and nothing safe may depend on the guess:

* ``cash_id_repeat``: a cash PUT (deposit/withdrawal/adjustment) repeating an id the
  account already holds.  B3 only says the id must be unique; what a repeat does is
  [I].  ``"replay"``: the same body answers the first record and moves nothing, another
  body is 409 (B3's guess); ``"conflict"``: every repeat is 409, even the same body
  (B7's guess); ``"apply"``: no dedupe at all, the repeat moves money again.
* ``etag_checks``: B7 [O] says a user update *accepts* ``If-Match``; that a stale one is
  refused with 412 is [I].  ``True``: 412 on a stale ETag; ``False``: the header is
  ignored and the update simply overwrites.
* ``expired_session_status``: B7 [I] says an expired session answers 401; a host may
  as well answer 403 to a token it no longer knows.
* ``transfers_page_size``: B5 lists ``limit`` for the transfers read but no default
  page size.  ``None``: every transfer of the window; a number: at most that many
  (oldest first) when the caller gives no ``limit``, with nothing saying more exist.
* ``crm_sees_all_accounts``: that the CRM account's dxsca-web session sees every
  user's accounts is [I] (B5 says only "visible to caller").  ``False``: it sees none;
  a user's accounts are read in a session on behalf of that user (LOGIN_ON_BEHALF).
* ``disable_route``: seed 004's ``…/disable-user-and-terminate-accounts`` is in no
  vendor document (B3 "Known gaps").  ``None``: the sandbox serves it; ``404``,
  ``405`` or ``400``: the answers a host without it could give to a POST there.
* ``category_route``: ``GET /api/register/category`` is observed (D4), not in every
  host's documentation.  ``None``: the sandbox serves its category list; ``404``,
  ``405`` or ``400``: the answers of a host without it.
* ``unknown_categories``: what DXtrade does with an account category (domain or value)
  its list does not hold is [I].  ``"refuse"``: 400, nothing created; ``"keep"``: the
  account is created and keeps it as given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CashIdRepeat = Literal["replay", "conflict", "apply"]
CASH_ID_REPEATS: tuple[CashIdRepeat, ...] = ("replay", "conflict", "apply")
#: What a host may answer to a session token it no longer knows.
EXPIRED_SESSION_STATUSES: tuple[int, ...] = (401, 403)
#: What a host without the disable route may answer to a POST on it.
MISSING_ROUTE_STATUSES: tuple[int, ...] = (404, 405, 400)

UnknownCategories = Literal["refuse", "keep"]
UNKNOWN_CATEGORIES: tuple[UnknownCategories, ...] = ("refuse", "keep")

#: The permission a caller needs to open a session as another user (B2, [V] D1).
LOGIN_ON_BEHALF = "LOGIN_ON_BEHALF"
#: The permission to register and update users, accounts and cash (the CRM's own).
REGISTER = "REGISTER"


@dataclass
class Rules:
    """The [I] behaviours of one sandbox; see the module docstring for each."""

    cash_id_repeat: CashIdRepeat = "replay"
    etag_checks: bool = True
    expired_session_status: int = 401
    transfers_page_size: int | None = None
    crm_sees_all_accounts: bool = True
    disable_route: int | None = None
    category_route: int | None = None
    unknown_categories: UnknownCategories = "refuse"

    def __post_init__(self) -> None:
        if self.cash_id_repeat not in CASH_ID_REPEATS:
            raise ValueError(f"cash_id_repeat must be one of {CASH_ID_REPEATS}")
        if self.expired_session_status not in EXPIRED_SESSION_STATUSES:
            raise ValueError(f"expired_session_status must be one of {EXPIRED_SESSION_STATUSES}")
        if self.transfers_page_size is not None and self.transfers_page_size < 1:
            raise ValueError("transfers_page_size must be None or at least 1")
        if self.disable_route is not None and self.disable_route not in MISSING_ROUTE_STATUSES:
            raise ValueError(f"disable_route must be None or one of {MISSING_ROUTE_STATUSES}")
        if self.category_route is not None and self.category_route not in MISSING_ROUTE_STATUSES:
            raise ValueError(f"category_route must be None or one of {MISSING_ROUTE_STATUSES}")
        if self.unknown_categories not in UNKNOWN_CATEGORIES:
            raise ValueError(f"unknown_categories must be one of {UNKNOWN_CATEGORIES}")


__all__ = [
    "CASH_ID_REPEATS",
    "EXPIRED_SESSION_STATUSES",
    "LOGIN_ON_BEHALF",
    "MISSING_ROUTE_STATUSES",
    "REGISTER",
    "UNKNOWN_CATEGORIES",
    "CashIdRepeat",
    "Rules",
    "UnknownCategories",
]
