"""The service description shipped with the package (``qort.wsdl``), addressed per request."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

__all__ = ["WSDL_FILE", "wsdl_for"]

WSDL_FILE = "qort.wsdl"
_PLACEHOLDER = 'location="http://localhost/qort"'


@cache
def _template() -> str:
    text = files(__package__).joinpath(WSDL_FILE).read_text(encoding="utf-8")
    if _PLACEHOLDER not in text:
        raise RuntimeError(f"{WSDL_FILE} lacks the soap:address placeholder")
    return text


def wsdl_for(endpoint: str) -> bytes:
    """The WSDL whose soap:address is ``endpoint`` (escaped for an XML attribute)."""
    escaped = endpoint.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return _template().replace(_PLACEHOLDER, f'location="{escaped}"').encode("utf-8")
