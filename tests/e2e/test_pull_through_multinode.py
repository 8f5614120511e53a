"""One upstream fetch per manifest and per blob across nodes: two cargobay nodes on one
PostgreSQL database and one S3 bucket, a Distribution upstream, and 20 concurrent first pulls
spread over both nodes. The upstream's access log shows the manifest and each blob fetched
once; every puller gets the right bytes."""

from __future__ import annotations

import base64
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

import pgcluster
from e2e.ecrhelp import aws
from imagebuilder import build_image
from server import Server
from upstream.distribution import Distribution

KEY = "AKIAPULLTHROUGHNODES"
SECRET = "pull-through-multinode-secret-0123456789"
ACCEPT = {"Accept": "application/vnd.oci.image.manifest.v1+json"}


@pytest.fixture
def nodes(tmp_path: Path, s3_server) -> list[Server]:
    pg = pgcluster.shared_cluster()
    database = pg.url(pg.database_for(tmp_path / "shared"))
    bucket = s3_server.create_bucket(f"ptc-{os.urandom(4).hex()}")
    env = {
        **s3_server.env,
        "CARGOBAY_DATABASE": database,
        "CARGOBAY_STORAGE": s3_server.storage_url(bucket, "registry"),
        "CARGOBAY_AUTO_UPGRADE": "true",
        "CARGOBAY_SECRET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "CARGOBAY_ADMIN_ACCESS_KEY_ID": KEY,
        "CARGOBAY_ADMIN_SECRET_ACCESS_KEY": SECRET,
    }
    started = []
    try:
        for i in range(2):
            node = Server(tmp_path / f"node{i}", workers=1, env=dict(env))
            node.backend_env = {}  # the shared backends above
            started.append(node.start(timeout=120))
        yield started
    finally:
        for node in started:
            node.stop()
        pg.drop_database(pg.database_for(tmp_path / "shared"))


def test_concurrent_first_pulls_on_two_nodes_fetch_each_blob_once(
    nodes: list[Server], tmp_path: Path
) -> None:
    upstream = Distribution(tmp_path / "upstream").start()
    try:
        image = build_image(tmp_path / "image", [4096, 3_000_000], tag="v1")
        upstream.push(f"oci:{image.layout}:v1", "team/app:v1")
        rule = {"ecrRepositoryPrefix": "mirror", "upstreamRegistryUrl": upstream.url}
        aws(
            nodes[0], "ecr", "create-pull-through-cache-rule", "--cli-input-json",
            json.dumps(rule), creds=(KEY, SECRET),
        )  # fmt: skip

        def first_pull(i: int) -> dict[str, bytes]:
            node = nodes[i % 2]
            session = requests.Session()
            session.auth = (KEY, SECRET)
            base = f"{node.url}/v2/mirror/team/app"
            manifest = session.get(f"{base}/manifests/v1", headers=ACCEPT, timeout=120)
            assert manifest.status_code == 200, manifest.text
            got = {"manifest": manifest.content}
            for digest in image.blobs:
                blob = session.get(f"{base}/blobs/{digest}", timeout=120)
                assert blob.status_code == 200, blob.text
                got[digest] = blob.content
            return got

        with ThreadPoolExecutor(20) as pool:
            results = list(pool.map(first_pull, range(20)))
        for got in results:
            assert got["manifest"] == image.manifest
            for digest, data in image.blobs.items():
                assert got[digest] == data
        log = upstream.log_path.read_text(errors="replace")
        assert log.count('"GET /v2/team/app/manifests/v1 ') == 1  # one manifest fetch too
        for digest in image.blobs:
            fetched = log.count(f'"GET /v2/team/app/blobs/{digest} ')
            assert fetched == 1, (digest, fetched)
    finally:
        upstream.discard()
