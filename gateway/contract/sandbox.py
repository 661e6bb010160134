"""The public face for sandbox authors: a local server speaking one vendor's protocol.

An HTTP vendor's sandbox subclasses :class:`AsgiSandbox` (its ASGI app, its
connector settings, optionally its error body and reset) and gets start/stop/url
and the standard misbehaviour knobs the conformance kit drives.  A sandbox that
speaks another transport (QST's WebSocket) subclasses :class:`Sandbox` directly.

Sandboxes speak TLS like the vendors: :func:`sandbox_certificate` is the process's
throwaway CA and server certificate (``AsgiSandbox`` serves it by default; a
WebSocket sandbox hands its ``server_context()`` to its server).
"""

from __future__ import annotations

from gateway.asgi_server import ServedApp, serve_asgi
from gateway.contract._asgi_sandbox import ASGIApp, AsgiSandbox, Misbehaving
from gateway.contract._public import publish
from gateway.sandbox_tls import SandboxCertificate, sandbox_certificate
from gateway.sandboxes import DemoLink, Sandbox

__all__ = [
    "ASGIApp",
    "AsgiSandbox",
    "DemoLink",
    "Misbehaving",
    "Sandbox",
    "SandboxCertificate",
    "ServedApp",
    "sandbox_certificate",
    "serve_asgi",
]

publish(__name__, globals(), __all__)
