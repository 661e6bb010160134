"""brokergraph connector for QORT (ARQA Technologies), the back office of record.

QORT's web-services module is reached over SOAP 1.1 (see ``/qort?wsdl`` of the
sandbox); the operation names are ours, built from QORT's documented behaviour
and its intermediate-database conventions, and kept in one WSDL so the real one
can be swapped in.
"""

__version__ = "0.1.0"
