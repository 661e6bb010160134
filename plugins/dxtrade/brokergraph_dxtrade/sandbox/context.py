"""What a route handler gets: the state, the sessions, the caller; and the route table type."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from starlette.requests import Request

from brokergraph_dxtrade.sandbox.auth import Principal, Sessions
from brokergraph_dxtrade.sandbox.errors import Surface
from brokergraph_dxtrade.sandbox.state import DxState


@dataclass
class Context:
    state: DxState
    sessions: Sessions
    webhook_secret: str
    #: The authenticated caller (None on the login routes and the dxFeed helper).
    caller: Principal | None = None

    @property
    def principal(self) -> Principal:
        assert self.caller is not None
        return self.caller


Handler = Callable[[Request, Context], Awaitable[Any]]
#: "none": no auth; "user": any session or Basic user; "admin": the register permission.
Access = Literal["none", "user", "admin"]


@dataclass(frozen=True)
class Api:
    surface: Surface
    method: str
    path: str
    handler: Handler
    access: Access = "user"
    read: bool = False
