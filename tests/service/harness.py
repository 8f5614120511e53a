"""An in-process registry for service-level and door-parity tests: the real services on a
fresh SQLite database (or the PostgreSQL test cluster) and filesystem store, and the real aiohttp
application behind an aiohttp test server, reached through both doors: `/v2/` with HTTP Basic
and the ECR JSON API signed with SigV4 (botocore's signer, as the AWS CLI signs)."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import pgcluster
from cargobay.app import build_app
from cargobay.config import Settings
from cargobay.iam.bootstrap import ensure_admin
from cargobay.metadata import migrations
from cargobay.registry.services import Services
from e2e.ocihttp import sha512
from imagebuilder import OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, sha256

TARGET = "AmazonEC2ContainerRegistry_V20150921."
__all__ = [
    "OCI_INDEX",
    "OCI_MANIFEST",
    "Registry",
    "Reply",
    "index_of",
    "running",
    "sha256",
    "sha512",
]


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def oci_code(self) -> str:
        return self.json()["errors"][0]["code"]

    @property
    def aws_type(self) -> str:
        return self.json()["__type"]


class Registry:
    """Both doors of one in-process registry, authenticated as its administrator."""

    def __init__(self, client: TestClient, services: Services, key: str, secret: str) -> None:
        self.client = client
        self.services = services
        self.key, self.secret = key, secret
        self.auth = "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()

    async def v2(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> Reply:
        response = await self.client.request(
            method,
            f"/v2/{path}",
            data=body,
            params=params,
            headers={"Authorization": self.auth, **(headers or {})},
        )
        return Reply(response.status, dict(response.headers), await response.read())

    async def ecr(self, operation: str, payload: dict[str, Any]) -> Reply:
        return await self.aws_json(TARGET + operation, "ecr", payload)

    async def aws_json(self, target: str, service: str, payload: dict[str, Any]) -> Reply:
        """An AWS JSON 1.1 call signed with SigV4 for `service`, as the AWS CLI sends it."""
        body = json.dumps(payload).encode()
        url = str(self.client.make_url("/"))
        request = AWSRequest(
            method="POST",
            url=url,
            data=body,
            headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"},
        )
        SigV4Auth(Credentials(self.key, self.secret), service, "us-east-1").add_auth(request)
        response = await self.client.post(
            "/", data=body, headers={k: v for k, v in request.headers.items()}
        )
        return Reply(response.status, dict(response.headers), await response.read())

    # -- pushing content -----------------------------------------------------------------------

    async def push_blob(self, repo: str, data: bytes) -> str:
        digest = sha256(data)
        reply = await self.v2("POST", f"{repo}/blobs/uploads/", data, params={"digest": digest})
        assert reply.status == 201, reply
        return digest

    async def image(self, repo: str, seed: bytes | None = None) -> bytes:
        """An OCI image manifest whose config and layer are pushed to `repo`."""
        seed = seed or os.urandom(8)
        config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed.hex()}).encode()
        layer = b"layer-" + seed
        descriptors = []
        for data, media_type in ((config, OCI_CONFIG), (layer, OCI_LAYER)):
            descriptors.append(
                {
                    "mediaType": media_type,
                    "digest": await self.push_blob(repo, data),
                    "size": len(data),
                }
            )
        return json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": descriptors[0],
                "layers": descriptors[1:],
            }
        ).encode()


def index_of(*manifests: bytes) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": sha256(m), "size": len(m)} for m in manifests
            ],
        }
    ).encode()


async def _database_url(data_dir: Path) -> str:
    if pgcluster.backend() == "postgres":
        cluster = pgcluster.shared_cluster()
        return cluster.url(cluster.database_for(data_dir))
    return f"sqlite:///{data_dir / 'metadata.db'}"


@asynccontextmanager
async def running(data_dir: Path, **overrides: Any) -> AsyncIterator[Registry]:
    """A registry on `data_dir` with `overrides` applied to its settings."""
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = replace(
        Settings(data_dir=data_dir, jobs_enabled=False),
        database=await _database_url(data_dir),
        **overrides,
    )
    await migrations.upgrade(settings.database_url)
    services = Services.build(settings)
    key = await ensure_admin(services.credentials, settings.account_id, data_dir / "admin-creds")
    text = (data_dir / "admin-creds").read_text()
    secret = text.split("aws_secret_access_key = ")[1].strip()
    client = TestClient(TestServer(build_app(services)))
    await client.start_server()
    try:
        yield Registry(client, services, key, secret)
    finally:
        await client.close()
