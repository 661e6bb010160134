"""Wire helpers: JSON (exact decimals both ways), times, amounts."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse

from brokergraph_dxtrade.sandbox.errors import bad_request
from gateway.contract import exact_json_dumps, exact_json_loads


class DxJSONResponse(JSONResponse):
    """JSON with Decimal amounts as exact plain numbers (B7: amounts are plain decimals)."""

    def render(self, content: Any) -> bytes:
        return exact_json_dumps(content)


def now() -> datetime:
    return datetime.now(UTC)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def iso(moment: datetime | None) -> str | None:
    """ISO-8601 UTC with milliseconds and ``Z`` (B7)."""
    if moment is None:
        return None
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


async def json_body(request: Request, *, required: bool = True) -> Any:
    raw = await request.body()
    if not raw.strip():
        if required:
            raise bad_request("a JSON body is required")
        return {}
    try:
        return exact_json_loads(raw)
    except ValueError:
        raise bad_request("the body is not JSON") from None


async def json_object(request: Request, *, required: bool = True) -> dict[str, Any]:
    body = await json_body(request, required=required)
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    return body


async def form_or_json(request: Request) -> Mapping[str, str]:
    """Fields of a form-urlencoded body (the documented style) or of a JSON object."""
    if request.headers.get("content-type", "").startswith("application/json"):
        return {k: str(v) for k, v in (await json_object(request)).items()}
    fields = parse_qs((await request.body()).decode(), keep_blank_values=True)
    merged = {k: v[-1] for k, v in fields.items()}
    return {**dict(request.query_params), **merged}


def amount(value: Any, name: str = "amount") -> Decimal:
    """A money amount: a JSON number (or numeric string), finite."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str | float):
        raise bad_request(f"{name} must be a number")
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        raise bad_request(f"{name} must be a number") from None
    if not result.is_finite():
        raise bad_request(f"{name} must be finite")
    return result


def text(body: Mapping[str, Any], name: str, *, default: str | None = None) -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or not value:
        raise bad_request(f"{name} is required (a non-empty string)")
    return value


def optional_text(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise bad_request(f"{name} must be a string")
    return value


def choice(body: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = body.get(name)
    if value is None:
        return default
    if value not in allowed:
        raise bad_request(f"{name} must be one of {', '.join(allowed)}")
    return str(value)
