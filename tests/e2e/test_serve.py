"""`cargobay serve` as an operator meets it: first start, settings, TLS, bad settings."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import requests

from conftest import require_tool
from e2e.ocihttp import Client, assert_error
from server import Server, free_port


def admin(server: Server, *args: str) -> str:
    """`cargobay admin ...` against the server's deployment; its standard output."""
    return subprocess.run(
        [sys.executable, "-m", "cargobay", "admin", "--data-dir", str(server.data_dir), *args],
        capture_output=True,
        text=True,
        check=True,
        env=server.process_env,
    ).stdout


def test_first_start_writes_admin_credentials_0600(fresh_registry: Server) -> None:
    path = fresh_registry.data_dir / "admin-credentials"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert text.startswith("[default]\n")
    key, secret = fresh_registry.credentials
    assert key.startswith("AKIA") and len(secret) >= 40
    assert f"aws_access_key_id = {key}" in text
    # The secret never reaches the log.
    assert secret not in fresh_registry.log_path.read_text()
    assert str(path) in fresh_registry.log_path.read_text()  # says where it is
    # A restart keeps the same key and does not rewrite the file.
    before = path.read_text()
    fresh_registry.stop()
    fresh_registry.start()
    assert path.read_text() == before
    assert fresh_registry.session().get(f"{fresh_registry.url}/v2/").status_code == 200


def test_admin_key_from_the_environment(tmp_path: Path) -> None:
    key, secret = "AKIAENVIRONMENTKEY00", "an-environment-secret-of-enough-length"
    server = Server(
        tmp_path / "data",
        env={"CARGOBAY_ADMIN_ACCESS_KEY_ID": key, "CARGOBAY_ADMIN_SECRET_ACCESS_KEY": secret},
    ).start()
    try:
        assert requests.get(f"{server.url}/v2/", auth=(key, secret)).status_code == 200
        wrong = requests.get(f"{server.url}/v2/", auth=(key, secret + "x"))
        assert_error(wrong, 401, "UNAUTHORIZED")
        assert not (server.data_dir / "admin-credentials").exists()
    finally:
        server.stop()


def test_create_on_push_off_gives_name_unknown(tmp_path: Path) -> None:
    server = Server(tmp_path / "data", env={"CARGOBAY_CREATE_ON_PUSH": "false"}).start()
    try:
        client = Client(server)
        response = client.post("/v2/team/new/blobs/uploads/")
        assert_error(response, 404, "NAME_UNKNOWN")
        response = client.put_manifest("team/new", "v1", b"{}", None)
        assert_error(response, 404, "NAME_UNKNOWN")
    finally:
        server.stop()


def test_bad_settings_stop_start_up_with_one_line(tmp_path: Path) -> None:
    cases = [
        (["--port", "70000"], {}),
        ([], {"CARGOBAY_WORKERS": "lots"}),
        ([], {"CARGOBAY_ACCOUNT_ID": "12"}),
        (["--tls-cert", str(tmp_path / "missing.pem")], {}),
        (["--storage", "ftp://nowhere"], {}),
    ]
    for args, env in cases:
        result = subprocess.run(
            [sys.executable, "-m", "cargobay", "serve", "--data-dir", str(tmp_path / "d"), *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **env},
        )
        assert result.returncode == 2, (args, env, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("cargobay: "), (args, env, lines)


def _self_signed(directory: Path) -> tuple[Path, Path]:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls(tmp_path: Path, image) -> None:
    cert, key = _self_signed(tmp_path)
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cargobay",
            "serve",
            "--data-dir",
            str(tmp_path / "data"),
            "--port",
            str(port),
            "--workers",
            "1",
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(key),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = Server(tmp_path / "data", port=port)
    try:
        url = f"https://127.0.0.1:{port}"
        for _ in range(100):
            try:
                requests.get(f"{url}/healthz", verify=str(cert), timeout=1)
                break
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.1)
        response = requests.get(f"{url}/v2/", auth=server.credentials, verify=str(cert))
        assert response.status_code == 200
        # Plain HTTP on the TLS port gets no registry answer.
        with contextlib.suppress(requests.ConnectionError):
            plain = requests.get(f"http://127.0.0.1:{port}/v2/", timeout=2)
            assert plain.status_code == 400
        skopeo = require_tool("skopeo")
        certs = tmp_path / "certs"  # skopeo trusts every *.crt in --dest-cert-dir
        certs.mkdir()
        (certs / "ca.crt").write_bytes(cert.read_bytes())
        result = subprocess.run(
            [
                skopeo,
                "copy",
                "--dest-creds",
                server.creds_arg,
                "--dest-cert-dir",
                str(certs),
                f"oci:{image.layout}:latest",
                f"docker://127.0.0.1:{port}/tls/app:1",
            ],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        tags = requests.get(
            f"{url}/v2/tls/app/tags/list", auth=server.credentials, verify=str(cert)
        ).json()
        assert tags == {"name": "tls/app", "tags": ["1"]}
    finally:
        proc.terminate()
        proc.wait(20)


def assert_refused_everywhere(server: Server, **credentials: object) -> None:
    """Within a few seconds every worker answers 401 to these credentials (fresh connections
    spread over the workers; a revocation reaches each within about a second)."""
    deadline = time.monotonic() + 10
    statuses: list[int] = []
    while time.monotonic() < deadline:
        statuses = [requests.get(f"{server.url}/v2/", **credentials).status_code for _ in range(8)]
        if set(statuses) == {401}:
            return
        time.sleep(0.2)
    raise AssertionError(f"still accepted by some worker: {statuses}")


def test_a_deleted_key_stops_working_on_every_worker(fresh_registry: Server) -> None:
    admin(fresh_registry, "create-user", "leaver")
    key = json.loads(admin(fresh_registry, "create-access-key", "leaver"))["AccessKey"]
    auth = (key["AccessKeyId"], key["SecretAccessKey"])
    # Fresh connections spread over both workers, so each one remembers the good login.
    for _ in range(8):
        assert requests.get(f"{fresh_registry.url}/v2/", auth=auth).status_code == 200
    admin(fresh_registry, "delete-access-key", "leaver", key["AccessKeyId"])
    assert_refused_everywhere(fresh_registry, auth=auth)


def test_create_on_push_per_account(fresh_registry: Server) -> None:
    client = Client(fresh_registry)
    admin(fresh_registry, "set-create-on-push", "off")
    refused = client.post("/v2/percount/new/blobs/uploads/")
    body = assert_error(refused, 404, "NAME_UNKNOWN")
    assert "does not exist in the registry with id '000000000000'" in body["errors"][0]["message"]
    # Another account keeps the deployment's default (on).
    admin(fresh_registry, "--account-id", "111111111111", "create-user", "ops", "--admin")
    other = json.loads(
        admin(fresh_registry, "--account-id", "111111111111", "create-access-key", "ops")
    )["AccessKey"]
    other_client = Client(fresh_registry, requests.Session())
    other_client.session.auth = (other["AccessKeyId"], other["SecretAccessKey"])
    assert other_client.post("/v2/percount/new/blobs/uploads/").status_code == 202
    # Back on for account 0.
    admin(fresh_registry, "set-create-on-push", "on")
    assert client.post("/v2/percount/new/blobs/uploads/").status_code == 202


def test_tokens_end_with_their_access_key(fresh_registry: Server) -> None:
    import boto3

    admin(fresh_registry, "create-user", "ci", "--admin")
    key = json.loads(admin(fresh_registry, "create-access-key", "ci"))["AccessKey"]
    ecr = boto3.client(
        "ecr",
        endpoint_url=fresh_registry.url,
        region_name="us-east-1",
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
    )
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    headers = {"Authorization": f"Basic {token}"}
    assert requests.get(f"{fresh_registry.url}/v2/", headers=headers).status_code == 200
    admin(fresh_registry, "delete-access-key", "ci", key["AccessKeyId"])
    assert_refused_everywhere(fresh_registry, headers=headers)
