"""SOAP 1.1 envelopes: a hardened parser for requests, builders for responses and faults.

The parser is expat driven by hand, defusedxml style: a DOCTYPE (hence any entity
declaration, internal or external) ends the parse at once, so neither an entity
expansion bomb nor an external entity can get in; SOAP 1.1 forbids DTDs anyway.
The caller caps the body's size before it gets here.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn
from xml.parsers import expat

from brokergraph_qort.sandbox.faults import QortFault

__all__ = [
    "SOAP_ENV",
    "TNS",
    "child_text",
    "children",
    "envelope",
    "fault_envelope",
    "field_pairs",
    "leaf",
    "node",
    "optional_text",
    "parse_request",
    "row",
]

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
TNS = "urn:brokergraph:qort:v1"

ET.register_namespace("soap", SOAP_ENV)
ET.register_namespace("tns", TNS)


def _refuse(*_: Any) -> NoReturn:
    raise QortFault(
        "VALIDATION",
        "DTDs and entity declarations are not allowed in a SOAP message",
        http_status=400,
    )


def _clark(name: str) -> str:
    """expat's ``ns}local`` as ElementTree's ``{ns}local``."""
    return "{" + name if "}" in name else name


def safe_parse(body: bytes) -> ET.Element:
    """Parse ``body`` with no DTD, no entities, no external resources."""
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator="}")
    parser.buffer_text = True
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.UnparsedEntityDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse
    parser.StartElementHandler = lambda name, attrs: builder.start(
        _clark(name), {_clark(k): v for k, v in attrs.items()}
    )
    parser.EndElementHandler = lambda name: builder.end(_clark(name))
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(body, True)
    except expat.ExpatError as error:
        raise QortFault("VALIDATION", f"malformed XML: {error}", http_status=400) from None
    except (LookupError, ValueError) as error:  # an encoding Python or expat does not read
        raise QortFault("VALIDATION", f"unreadable XML: {error}", http_status=400) from None
    return builder.close()


def parse_request(body: bytes) -> tuple[str, ET.Element]:
    """The operation a request names (its body element less ``Request``) and that element."""
    root = safe_parse(body)
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise QortFault("VALIDATION", "the document is not a SOAP 1.1 Envelope", http_status=400)
    soap_body = root.find(f"{{{SOAP_ENV}}}Body")
    if soap_body is None or len(soap_body) != 1:
        raise QortFault("VALIDATION", "the SOAP Body must hold one element", http_status=400)
    payload = soap_body[0]
    prefix = f"{{{TNS}}}"
    if not payload.tag.startswith(prefix) or not payload.tag.endswith("Request"):
        raise QortFault("VALIDATION", f"unknown request element {payload.tag}", http_status=400)
    return payload.tag[len(prefix) : -len("Request")], payload


# -- reading request elements (children are matched by local name) --------------------------


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def children(element: ET.Element, name: str) -> list[ET.Element]:
    """Every direct child called ``name``, whatever its namespace."""
    return [child for child in element if _local(child.tag) == name]


def optional_text(element: ET.Element, name: str) -> str | None:
    """The stripped text of the one child ``name``, or None when there is none."""
    found = children(element, name)
    if len(found) > 1:
        raise QortFault("VALIDATION", f"{name} is given more than once")
    return (found[0].text or "").strip() if found else None


def child_text(element: ET.Element, name: str) -> str:
    """The stripped text of the one child ``name``; a VALIDATION fault when it is absent."""
    value = optional_text(element, name)
    if value is None:
        raise QortFault("VALIDATION", f"{name} is required")
    return value


def field_pairs(element: ET.Element) -> list[tuple[str, str]]:
    """The ``Field`` children of ``element`` as (Name, Value); Value keeps its spaces."""
    pairs = []
    for field in children(element, "Field"):
        name = child_text(field, "Name")
        value_elements = children(field, "Value")
        value = (value_elements[0].text or "") if value_elements else ""
        pairs.append((name, value))
    return pairs


# -- building responses --------------------------------------------------------------------


def leaf(name: str, value: str) -> ET.Element:
    """``<tns:name>value</tns:name>``."""
    element = ET.Element(f"{{{TNS}}}{name}")
    element.text = value
    return element


def node(name: str, items: Iterable[ET.Element]) -> ET.Element:
    """``<tns:name>`` holding ``items``."""
    element = ET.Element(f"{{{TNS}}}{name}")
    element.extend(items)
    return element


def row(name: str, pairs: Iterable[tuple[str, str]]) -> ET.Element:
    """A ``Row`` (or any Field list) called ``name``."""
    return node(name, (node("Field", [leaf("Name", k), leaf("Value", v)]) for k, v in pairs))


def envelope(payload: ET.Element | Sequence[ET.Element]) -> bytes:
    """A SOAP 1.1 envelope around ``payload``, UTF-8 with its declaration."""
    root = ET.Element(f"{{{SOAP_ENV}}}Envelope")
    body = ET.SubElement(root, f"{{{SOAP_ENV}}}Body")
    if isinstance(payload, ET.Element):
        body.append(payload)
    else:
        body.extend(payload)
    text: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return text


def fault_envelope(fault: QortFault) -> bytes:
    """``soap:Fault`` with faultcode soap:Client/soap:Server and the ``QortError`` detail."""
    element = ET.Element(f"{{{SOAP_ENV}}}Fault")
    # faultcode is a QName; "soap" is bound on the Envelope by register_namespace.
    ET.SubElement(element, "faultcode").text = f"soap:{fault.side}"
    ET.SubElement(element, "faultstring").text = fault.message
    detail = ET.SubElement(element, "detail")
    items = [leaf("Code", fault.code), leaf("Message", fault.message)]
    if fault.retry_after_seconds is not None:
        items.append(leaf("RetryAfter", f"{fault.retry_after_seconds:g}"))
    detail.append(node("QortError", items))
    return envelope(element)
