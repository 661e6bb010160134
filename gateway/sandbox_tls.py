"""The sandboxes' TLS: one throwaway CA per process and a certificate for this machine.

The vendors speak only HTTPS and WSS, so the sandboxes do too: a connector meets the
same certificate checks against a sandbox as in production, and a connector that
forgot to verify, or to take its CA from settings, fails in the tests instead.

The CA is made at the first sandbox start (``trustme``: an ECDSA P-256 CA and a
leaf for ``localhost``, ``127.0.0.1`` and ``::1``), written to a private temporary
directory (mode 0700, removed at exit) and reused by every sandbox of the process:
making keys costs CPU, and one CA means one trusted file for every sandbox.  It
signs nothing else and lives as long as the process, so its key never matters.
"""

from __future__ import annotations

import atexit
import shutil
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SandboxCertificate", "sandbox_certificate"]

#: The names a sandbox is reached by: it listens on the loopback interface only.
IDENTITIES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class SandboxCertificate:
    """The files of the process's sandbox certificate, and SSL contexts built on them."""

    #: PEM of the throwaway CA: what a client trusts (a connector's ``ca_file``).
    ca_file: Path
    #: PEM of the server certificate chain, and of its private key.
    cert_file: Path
    key_file: Path
    _contexts: dict[str, ssl.SSLContext] = field(default_factory=dict, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def server_context(self) -> ssl.SSLContext:
        """A server context serving the certificate (one per process, shared)."""
        with self._lock:
            if "server" not in self._contexts:
                context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                context.load_cert_chain(self.cert_file, self.key_file)
                self._contexts["server"] = context
            return self._contexts["server"]

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts the CA only, host names checked (one per process)."""
        with self._lock:
            if "client" not in self._contexts:
                self._contexts["client"] = ssl.create_default_context(cafile=self.ca_file)
            return self._contexts["client"]


_made: SandboxCertificate | None = None
_making = threading.Lock()


def sandbox_certificate() -> SandboxCertificate:
    """The process's sandbox certificate, made on the first call."""
    global _made
    with _making:
        if _made is None:
            _made = _make()
        return _made


def _make() -> SandboxCertificate:
    # Imported here: only a process that starts a sandbox pays for cryptography.
    import trustme

    ca = trustme.CA(organization_name="brokergraph sandbox CA")
    leaf = ca.issue_cert(*IDENTITIES)
    directory = Path(tempfile.mkdtemp(prefix="brokergraph-sandbox-tls-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    made = SandboxCertificate(
        ca_file=directory / "ca.pem",
        cert_file=directory / "server.pem",
        key_file=directory / "server.key",
    )
    ca.cert_pem.write_to_path(str(made.ca_file))
    made.cert_file.write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(made.key_file))
    return made
