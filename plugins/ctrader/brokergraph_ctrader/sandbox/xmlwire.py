"""XML on the cTrader wire: what ``/v2/webserv`` answers without ``Accept: application/json``,
and what it accepts as a request body with an XML content type.

The vendor does not publish its XML element names; these are the sandbox's [I]
choices.  An answer is one root element whose children are the JSON object's keys:

=====================================  ===================  ===========================
call                                   root element         children
=====================================  ===================  ===========================
POST /managers/token                   ``<token>``          ``webservToken``
trader (4.1 create, 4.2 get)           ``<trader>``         the trader object's keys
traders list (4.3)                     ``<traders>``        ``<trader>`` per item, ``hasMore``
subaccounts (4.4)                      ``<subAccounts>``    ``subAccountLogins`` (``<login>``
                                                            per sub-account),
                                                            ``totalSubAccountsBalance``,
                                                            ``totalSubAccountsEquity``
changebalance (4.7)                    ``<balanceHistory>`` ``balanceHistoryId``
changebonus (4.10)                     ``<bonusHistory>``   ``bonusHistoryId``
tradergroups (4.11)                    ``<traderGroups>``   ``<traderGroup>`` per group
symbols (6.1)                          ``<symbols>``        ``<symbol>`` per symbol
depositAssets (6.2)                    ``<depositAssets>``  ``<depositAsset>`` per currency
any error                              ``<error>``          ``errorCode``, ``description``
=====================================  ===================  ===========================

A list becomes one element per item, named after the list's key (so
``{"trader": [...]}`` gives repeated ``<trader>``); a nested object becomes an element
with children; ``true``/``false`` are lower case; null keys are left out.  A request
body's root element name is ignored, its children are the fields (all strings; the
field readers convert them).  This is the observed PHP client's view: it reads
``$xml->webservToken`` and ``$xml->trader`` below the root.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from brokergraph_ctrader.sandbox.errors import invalid

DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _fill(element: ET.Element, value: Any) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            items = item if isinstance(item, list) else [item]
            for one in items:
                if one is not None:
                    _fill(ET.SubElement(element, key), one)
    else:
        element.text = _text(value)


def render(root: str, data: Mapping[str, Any]) -> bytes:
    """``data`` as the children of one ``root`` element."""
    element = ET.Element(root)
    _fill(element, data)
    return (DECLARATION + ET.tostring(element, encoding="unicode")).encode()


def _value(element: ET.Element) -> Any:
    children = list(element)
    if not children:
        return (element.text or "").strip()
    result: dict[str, Any] = {}
    for child in children:
        value = _value(child)
        if child.tag in result:
            previous = result[child.tag]
            items = previous if isinstance(previous, list) else [previous]
            result[child.tag] = [*items, value]
        else:
            result[child.tag] = value
    return result


def parse(body: bytes) -> dict[str, Any]:
    """A request body's fields.  Expat (Python >= 3.7.1) refuses entity expansion bombs
    and ElementTree never fetches external entities."""
    try:
        root = ET.fromstring(body)  # noqa: S314 - see the docstring
    except (ET.ParseError, LookupError, ValueError) as error:  # also unknown/multi-byte encodings
        raise invalid(f"the body is not well-formed XML: {error}") from None
    try:
        value = _value(root)
    except RecursionError:
        raise invalid("the body's XML is nested too deeply") from None
    return value if isinstance(value, dict) else {}
