"""The QORT web-services sandbox: a SOAP 1.1 service (WSDL ``qort.wsdl``) on a local port."""

from brokergraph_qort.sandbox.server import MAX_BODY_BYTES, QortSandbox
from brokergraph_qort.sandbox.wsdl import WSDL_FILE

__all__ = ["MAX_BODY_BYTES", "WSDL_FILE", "QortSandbox"]
