"""Usage metering: stored bytes and bytes transferred out match what was pushed and pulled."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import requests

from conftest import require_tool
from e2e.ocihttp import Client, sha256
from server import Server


def usage(server: Server) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "cargobay", "usage", "--data-dir", str(server.data_dir), "--json"],
        capture_output=True,
        text=True,
        check=True,
        env=server.process_env,
    )
    return json.loads(out.stdout)


def test_usage_matches_bytes_pushed_and_pulled(tmp_path: Path, image) -> None:
    server = Server(tmp_path / "data", env={"CARGOBAY_JOBS_ENABLED": "false"}).start()
    try:
        skopeo = require_tool("skopeo")
        subprocess.run(
            [
                skopeo,
                "copy",
                "--dest-creds",
                server.creds_arg,
                "--dest-tls-verify=false",
                f"oci:{image.layout}:latest",
                f"docker://{server.host}/meter/app:1",
            ],
            check=True,
            capture_output=True,
        )
        client = Client(server)
        pulled = len(client.get("/v2/meter/app/manifests/1").content)
        for digest, data in image.blobs.items():
            assert client.pull_blob("meter/app", digest) == data
            pulled += len(data)
        # A ranged GET counts only the bytes sent.
        layer = max(image.layers, key=len)
        ranged = client.get(f"/v2/meter/app/blobs/{sha256(layer)}", headers={"Range": "bytes=0-99"})
        assert ranged.status_code == 206 and len(ranged.content) == 100
        pulled += 100
        # HEADs transfer nothing.
        client.head("/v2/meter/app/manifests/1")
        server.stop()  # a graceful stop flushes every worker's counters

        report = usage(server)
        repos = {r["repository"]: r for r in report["repositories"]}
        stored = sum(len(b) for b in image.blobs.values())
        assert repos["meter/app"]["stored_bytes"] == stored
        assert repos["meter/app"]["transferred_bytes"] == pulled
        admin = "arn:aws:iam::000000000000:user/admin"
        principals = {p["principal"]: p for p in report["principals"]}
        assert principals[admin]["transferred_bytes"] >= pulled
        account = report["accounts"]["000000000000"]
        assert account["stored_bytes"] == sum(r["stored_bytes"] for r in repos.values())
        assert float(repos["meter/app"]["cost"]["storage_usd_per_month"]) > 0

        # The same figures as Prometheus metrics.
        server.start()
        metrics = Client(server).get("/metrics").text
        assert (
            f'cargobay_repository_stored_bytes{{registry_id="000000000000",region="us-east-1",'
            f'repository="meter/app"}} {stored}'
        ) in metrics
        assert requests.get(f"{server.url}/metrics").status_code == 401
    finally:
        server.stop()


def test_metrics_show_an_account_only_its_own_registry(fresh_registry: Server) -> None:
    Client(fresh_registry).push_image("mine/app", "v1")
    env = fresh_registry.process_env

    def admin(*args: str) -> str:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "cargobay",
                "admin",
                "--data-dir",
                str(fresh_registry.data_dir),
                "--account-id",
                "111111111111",
                *args,
            ],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout

    admin("create-user", "ops", "--admin")
    key = json.loads(admin("create-access-key", "ops"))["AccessKey"]
    theirs = requests.get(
        f"{fresh_registry.url}/metrics", auth=(key["AccessKeyId"], key["SecretAccessKey"])
    )
    assert theirs.status_code == 200
    assert "mine/app" not in theirs.text and "000000000000" not in theirs.text
    ours = Client(fresh_registry).get("/metrics").text
    assert 'repository="mine/app"' in ours
