"""A small Docker token server for tests: issues ES256 JWTs that CNCF Distribution's `token`
auth trusts (the signing certificate is in its `rootcertbundle`; each token carries it in
its `x5c` header), grants what Basic credentials allow, and counts its requests."""

from __future__ import annotations

import base64
import datetime
import hmac
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

ISSUER = "cargobay-test-token-issuer"
SERVICE = "cargobay-test-upstream"


_SIGNING_USAGE = x509.KeyUsage(
    digital_signature=True, key_cert_sign=True, content_commitment=False,
    key_encipherment=False, data_encipherment=False, key_agreement=False,
    crl_sign=False, encipher_only=False, decipher_only=False,
)  # fmt: skip


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class SigningKey:
    """An EC P-256 key and a self-signed certificate for it (the whole trust chain)."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cargobay test token signer")])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_SIGNING_USAGE, critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def write_bundle(self, path: Path) -> Path:
        path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        return path

    def jwt(self, claims: dict) -> str:
        der = self.cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(der).decode()]}
        signing_input = (
            _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        )
        r, s = decode_dss_signature(
            self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        )
        return signing_input + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


class TokenServer:
    """`GET /token?service=&scope=` on 127.0.0.1. Valid Basic credentials get every action
    asked for; anonymous requests get pull only when `anonymous_pull`; wrong credentials 401."""

    def __init__(
        self, username: str, password: str, *, expires_in: int = 300, anonymous_pull: bool = False
    ) -> None:
        self.signer = SigningKey()
        self.username, self.password = username, password
        self.expires_in = expires_in
        self.anonymous_pull = anonymous_pull
        self.requests: list[dict] = []  # {"scope": [...], "user": str | None}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def start(self) -> TokenServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def _user(self, header: str) -> str | bool | None:
        """The authenticated user, None when anonymous, False when the credentials are bad."""
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return False
        good = hmac.compare_digest(user, self.username) and hmac.compare_digest(
            password, self.password
        )
        return user if scheme.lower() == "basic" and good else False

    def issue(self, service: str, scopes: list[str], user: str | None) -> str:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            wanted = [a for a in actions.split(",") if a]
            granted = wanted if user else [a for a in wanted if a == "pull"]
            access.append({"type": kind, "name": name, "actions": granted})
        now = int(time.time())
        claims = {
            "iss": ISSUER, "sub": user or "", "aud": service, "exp": now + self.expires_in,
            "nbf": now - 1, "iat": now, "jti": _b64url(os.urandom(12)), "access": access,
        }  # fmt: skip
        return self.signer.jwt(claims)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                user = server._user(self.headers.get("Authorization", ""))
                with server._lock:
                    server.requests.append({"scope": query.get("scope", []), "user": user})
                if (
                    parts.path != "/token"
                    or user is False
                    or (user is None and not server.anonymous_pull)
                ):
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                token = server.issue(query.get("service", [""])[0], query.get("scope", []), user)
                body = json.dumps(
                    {"token": token, "expires_in": server.expires_in,
                     "issued_at": datetime.datetime.now(datetime.UTC).isoformat()}
                ).encode()  # fmt: skip
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler
