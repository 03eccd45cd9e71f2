"""Certificates for the sandbox: a CA generated per run, the server's leaf, client certificates."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ssl
from dataclasses import dataclass
from pathlib import Path

import certifi
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

SERVER_NAMES = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class ServerTLS:
    """The files a client needs to trust the sandbox, and the server's own context."""

    ca_pem: Path
    ca_bundle: Path
    context: ssl.SSLContext


def make_server_tls(directory: Path) -> ServerTLS:
    """Generate a CA and a leaf for ``SERVER_NAMES``; write the CA and a combined bundle.

    The bundle is certifi's roots plus ours, so a process that trusts it can still reach
    other HTTPS hosts it legitimately needs (package indexes, for instance).
    """
    ca = trustme.CA(organization_name="jupyter_amlflow sandbox")
    leaf = ca.issue_cert(*SERVER_NAMES, common_name="jupyter_amlflow sandbox")
    ca_pem = directory / "sandbox-ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    bundle = directory / "ca-bundle.pem"
    bundle.write_bytes(Path(certifi.where()).read_bytes() + b"\n" + ca.cert_pem.bytes())
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    return ServerTLS(ca_pem=ca_pem, ca_bundle=bundle, context=context)


@dataclass(frozen=True)
class ClientCertificate:
    """A service principal's certificate: the PEM (key + cert) and a PKCS12 copy."""

    pem_path: Path
    pfx_path: Path
    pfx_password: str
    certificate: x509.Certificate

    @property
    def thumbprint_sha1(self) -> str:
        """Base64url SHA-1 thumbprint, as it appears in an assertion's ``x5t`` header."""
        digest = self.certificate.fingerprint(hashes.SHA1())
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    @property
    def thumbprint_sha256(self) -> str:
        """Base64url SHA-256 thumbprint (``x5t#S256``)."""
        digest = hashlib.sha256(self.certificate.public_bytes(serialization.Encoding.DER)).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def make_client_certificate(directory: Path, name: str, password: str) -> ClientCertificate:
    """A self-signed RSA certificate as Entra ID accepts for an app registration."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    pem_path = directory / f"{name}.pem"
    pem_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + cert.public_bytes(serialization.Encoding.PEM)
    )
    pem_path.chmod(0o600)
    pfx_path = directory / f"{name}.pfx"
    pfx_path.write_bytes(
        pkcs12.serialize_key_and_certificates(
            name.encode(),
            key,
            cert,
            None,
            serialization.BestAvailableEncryption(password.encode()),
        )
    )
    pfx_path.chmod(0o600)
    return ClientCertificate(pem_path, pfx_path, password, cert)
