"""Content negotiation: JSON when ``Accept`` contains ``application/json``, XML otherwise
(``/cid/*`` is JSON only, both ways); request bodies in JSON (numbers kept exact as
``Decimal``) or, on ``/v2/webserv``, XML."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from brokergraph_ctrader.sandbox import xmlwire
from brokergraph_ctrader.sandbox.errors import CTraderError, invalid

XML_TYPE = "application/xml"
CSV_TYPE = "text/csv"


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "").lower()


def reply(
    request: Request, root: str, data: dict[str, Any], status: int = 200, json_only: bool = False
) -> Response:
    if json_only or wants_json(request):
        return JSONResponse(data, status_code=status)
    return Response(xmlwire.render(root, data), status_code=status, media_type=XML_TYPE)


def error_reply(request: Request, error: CTraderError, json_only: bool = False) -> Response:
    if json_only or wants_json(request):
        return JSONResponse(error.body(), status_code=error.status)
    xml = xmlwire.render("error", error.body()["error"])
    return Response(xml, status_code=error.status, media_type=XML_TYPE)


def csv_reply(text: str) -> Response:
    """CSV grids are CSV whatever the Accept header says."""
    return Response(text, media_type=CSV_TYPE)


async def read_body(request: Request, json_only: bool = False) -> dict[str, Any]:
    """The request's fields; an empty body is an empty object."""
    raw = await request.body()
    if not raw.strip():
        return {}
    content_type = request.headers.get("content-type", "").lower()
    if "xml" in content_type or raw.lstrip().startswith(b"<"):
        if json_only:
            raise invalid("this call accepts JSON only")
        return xmlwire.parse(raw)
    try:
        body = json.loads(raw, parse_float=Decimal)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than json allows
        raise invalid("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise invalid("the body must be a JSON object")
    return body
