"""Test certificates for the control plane's TLS and mutual TLS, made with `cryptography`.

`make_tls_files(directory)` writes a CA, a server certificate for 127.0.0.1, ::1 and
localhost, a client certificate (subject `CN=ops,O=Acme`) signed by that CA, and a
"stranger" client certificate signed by another CA. `tls_files` is a session-scoped fixture
of the same; bind it in a test module (`tls_files = tls_support.tls_files`).
ECDSA P-256 keys: a session's files take a few milliseconds to make.
"""

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CLIENT_SUBJECT = "CN=ops,O=Acme"


@dataclass(frozen=True)
class TlsFiles:
    """PEM files; `ca` signed `server_cert` and `client_cert`, `stranger_cert` is signed by another CA."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path
    stranger_key: Path

    def client_credentials(self, certificate: bool = False, stranger: bool = False) -> grpc.ChannelCredentials:
        """Channel credentials that trust `ca`; with `certificate`, presenting the client
        certificate (the stranger's with `stranger`)."""
        if not certificate:
            return grpc.ssl_channel_credentials(root_certificates=self.ca.read_bytes())
        cert, key = (self.stranger_cert, self.stranger_key) if stranger else (self.client_cert, self.client_key)
        return grpc.ssl_channel_credentials(root_certificates=self.ca.read_bytes(),
                                            private_key=key.read_bytes(), certificate_chain=cert.read_bytes())


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization is not None:
        parts.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(parts)


def _certificate(subject: x509.Name, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
                 issuer_key: ec.EllipticCurvePrivateKey, extensions: list[tuple[x509.ExtensionType, bool]]
                 ) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=30)))
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())


def _ca(common_name: str) -> tuple[x509.Name, ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    cert = _certificate(name, key, name, key, [
        (x509.BasicConstraints(ca=True, path_length=0), True),
        (x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                       encipher_only=False, decipher_only=False), True),
        (x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False),
    ])
    return name, key, cert


def _leaf(subject: x509.Name, ca: tuple[x509.Name, ec.EllipticCurvePrivateKey, x509.Certificate],
          usage: x509.ObjectIdentifier, names: list[x509.GeneralName] | None = None
          ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    extensions: list[tuple[x509.ExtensionType, bool]] = [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.ExtendedKeyUsage([usage]), False),
        (x509.AuthorityKeyIdentifier.from_issuer_public_key(ca[1].public_key()), False),
    ]
    if names:
        extensions.append((x509.SubjectAlternativeName(names), False))
    return key, _certificate(subject, key, ca[0], ca[1], extensions)


def _write(path: Path, cert: x509.Certificate | None = None, key: ec.EllipticCurvePrivateKey | None = None) -> Path:
    if cert is not None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        path.chmod(0o600)
    return path


def make_tls_files(directory: Path) -> TlsFiles:
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca("Headrace Test CA")
    server_key, server_cert = _leaf(_name("localhost"), ca, ExtendedKeyUsageOID.SERVER_AUTH, [
        x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1"))])
    client_key, client_cert = _leaf(_name("ops", "Acme"), ca, ExtendedKeyUsageOID.CLIENT_AUTH)
    stranger_key, stranger_cert = _leaf(_name("stranger", "Elsewhere"), _ca("Another CA"),
                                        ExtendedKeyUsageOID.CLIENT_AUTH)
    return TlsFiles(
        ca=_write(directory / "ca.pem", cert=ca[2]),
        server_cert=_write(directory / "server.pem", cert=server_cert),
        server_key=_write(directory / "server.key", key=server_key),
        client_cert=_write(directory / "client.pem", cert=client_cert),
        client_key=_write(directory / "client.key", key=client_key),
        stranger_cert=_write(directory / "stranger.pem", cert=stranger_cert),
        stranger_key=_write(directory / "stranger.key", key=stranger_key),
    )


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))
