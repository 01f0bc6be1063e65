"""A local certificate authority and a server certificate for the emulator's HTTPS, made with ``cryptography``.

Unmodified apps refuse plain HTTP (azure-core sends bearer tokens only over TLS), so the emulator serves HTTPS
with a certificate signed by a CA of its own, created once per folder and reused while valid:

* ``ca.pem``: the emulator's CA certificate (what a client must trust);
* ``server.pem`` / ``server-key.pem``: the server certificate (localhost, 127.0.0.1, ::1 and any extra host
  names) and its key (mode 0600);
* ``ca-bundle.pem``: the CA followed by the public roots of ``certifi`` when it is installed. Pointing
  ``SSL_CERT_FILE`` / ``REQUESTS_CA_BUNDLE`` at it makes an app trust the emulator *and* still reach real
  HTTPS services (an exporter's backend, for instance).

The CA's private key is not kept: a new server certificate means a new CA (the folder is regenerated).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional, Union

__all__ = ["LocalCertificate", "default_directory", "ensure_certificate"]

_VALIDITY = datetime.timedelta(days=365)
_RENEW_BEFORE = datetime.timedelta(days=7)
_DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class LocalCertificate:
    """Paths of the files in a certificate folder."""

    directory: Path

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def cert_file(self) -> Path:
        return self.directory / "server.pem"

    @property
    def key_file(self) -> Path:
        return self.directory / "server-key.pem"

    @property
    def bundle_file(self) -> Path:
        return self.directory / "ca-bundle.pem"

    def server_context(self) -> ssl.SSLContext:
        """A server-side TLS context presenting the certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client-side context trusting only the emulator's CA."""
        return ssl.create_default_context(cafile=str(self.ca_file))


def default_directory() -> Path:
    """``$XDG_CACHE_HOME/azure-ai-agents-emulator/tls`` (``~/.cache/...`` by default)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "azure-ai-agents-emulator" / "tls"


def ensure_certificate(
    directory: Union[str, Path, None] = None, hosts: Iterable[str] = ()
) -> LocalCertificate:
    """The certificate folder ``directory`` (default :func:`default_directory`), created or renewed when
    missing, expiring within a week, or not covering ``hosts``."""
    certificate = LocalCertificate(Path(directory) if directory is not None else default_directory())
    names = tuple(dict.fromkeys((*_DEFAULT_HOSTS, *hosts)))
    certificate.directory.mkdir(parents=True, exist_ok=True)
    with _folder_lock(certificate.directory):  # two emulators starting at once make one certificate
        if not _usable(certificate, names):
            _generate(certificate, names)
    return certificate


@contextlib.contextmanager
def _folder_lock(directory: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # Windows: no lock (start emulators sharing a folder one at a time)
        yield
        return
    with open(directory / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _usable(certificate: LocalCertificate, names: tuple[str, ...]) -> bool:
    from cryptography import x509

    files = (certificate.ca_file, certificate.cert_file, certificate.key_file, certificate.bundle_file)
    if not all(f.is_file() for f in files):
        return False
    try:
        cert = x509.load_pem_x509_certificate(certificate.cert_file.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    if cert.not_valid_after_utc - _RENEW_BEFORE < datetime.datetime.now(datetime.timezone.utc):
        return False
    covered = {str(v) for v in san.get_values_for_type(x509.IPAddress)} | set(san.get_values_for_type(x509.DNSName))
    return all(_normal(n) in covered for n in names)


def _normal(name: str) -> str:
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name


def _generate(certificate: LocalCertificate, names: tuple[str, ...]) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "azure-ai-agents-emulator local CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = []
    for name in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_pem = ca_cert.public_bytes(pem)
    private = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    _write(certificate.key_file, private, 0o600)
    _write(certificate.cert_file, cert.public_bytes(pem) + ca_pem)
    _write(certificate.ca_file, ca_pem)
    _write(certificate.bundle_file, ca_pem + _public_roots())


def _public_roots() -> bytes:
    """certifi's roots (what requests trusts by default), if installed."""
    try:
        import certifi
    except ImportError:
        return b""
    return b"\n" + Path(certifi.where()).read_bytes()


def _write(path: Path, data: bytes, mode: Optional[int] = None) -> None:
    """Write atomically (a concurrent reader sees the old or the new file, never half of one)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    if mode is not None:
        os.chmod(temporary, mode)
    os.replace(temporary, path)
