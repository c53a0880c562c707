"""Certificates and keys for the local control plane, made with the openssl command-line tool.

A private CA signs the API server's serving certificate (so kubeconfigs verify TLS against the CA), and
an RSA key pair signs and verifies service-account tokens. Private keys are written with mode 0600.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import DevClusterError

SERVING_SANS = (
    "IP:127.0.0.1",
    "DNS:localhost",
    "DNS:kubernetes",
    "DNS:kubernetes.default",
    "DNS:kubernetes.default.svc",
    "DNS:kubernetes.default.svc.cluster.local",
)
_RENEW_BEFORE_SECONDS = 30 * 24 * 3600


@dataclass(frozen=True)
class Pki:
    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def serving_cert(self) -> Path:
        return self.directory / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.directory / "apiserver.key"

    @property
    def sa_key(self) -> Path:
        return self.directory / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.directory / "sa.pub"


def _openssl(*args: str, cwd: Path) -> None:
    try:
        result = subprocess.run(
            ["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError as exc:
        raise DevClusterError("the openssl command is missing: apt-get install -y openssl") from exc
    if result.returncode != 0:
        raise DevClusterError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def _valid_for_a_while(cert: Path) -> bool:
    if not cert.exists():
        return False
    result = subprocess.run(
        ["openssl", "x509", "-noout", "-checkend", str(_RENEW_BEFORE_SECONDS), "-in", str(cert)],
        capture_output=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    return result.returncode == 0


def ensure_pki(directory: Path, service_ip: str) -> Pki:
    """Create (once) the CA, the API server's serving certificate and the service-account key pair.

    The serving certificate is re-issued when it is missing or expires within 30 days, or when the CA was
    re-created. Existing material is otherwise kept, so kubeconfigs handed out earlier stay valid.
    """
    pki = Pki(directory)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    old_umask = os.umask(0o077)
    try:
        new_ca = False
        if not (pki.ca_key.exists() and _valid_for_a_while(pki.ca_cert)):
            _openssl(
                "req", "-x509", "-new", "-nodes",
                "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-keyout", pki.ca_key.name, "-out", pki.ca_cert.name,
                "-days", "3650", "-subj", "/CN=postmaster-dev-ca",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                cwd=directory,
            )  # fmt: skip
            new_ca = True
        if new_ca or not (pki.serving_key.exists() and _valid_for_a_while(pki.serving_cert)):
            _issue_serving_cert(pki, service_ip)
        if not (pki.sa_key.exists() and pki.sa_pub.exists()):
            _openssl(
                "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", pki.sa_key.name,
                cwd=directory,
            )  # fmt: skip
            _openssl("pkey", "-in", pki.sa_key.name, "-pubout", "-out", pki.sa_pub.name, cwd=directory)
    finally:
        os.umask(old_umask)
    for public in (pki.ca_cert, pki.serving_cert, pki.sa_pub):
        os.chmod(public, 0o644)
    return pki


def _issue_serving_cert(pki: Pki, service_ip: str) -> None:
    directory = pki.directory
    csr = directory / "apiserver.csr"
    ext = directory / "apiserver.ext"
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
        f"subjectAltName={','.join((*SERVING_SANS, f'IP:{service_ip}'))}\n"
    )
    try:
        _openssl(
            "req", "-new", "-nodes",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-keyout", pki.serving_key.name, "-out", csr.name, "-subj", "/CN=kube-apiserver",
            cwd=directory,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", csr.name,
            "-CA", pki.ca_cert.name, "-CAkey", pki.ca_key.name,
            "-set_serial", "0x" + secrets.token_hex(16),
            "-days", "825", "-extfile", ext.name, "-out", pki.serving_cert.name,
            cwd=directory,
        )  # fmt: skip
    finally:
        csr.unlink(missing_ok=True)
        ext.unlink(missing_ok=True)
