"""Scale-out: three stateless cargobay nodes share PostgreSQL and an S3 bucket behind nginx.

skopeo pushes and pulls many images concurrently through the load balancer (so uploads hop
between nodes), tags written through one node are read through every other at once, and a node
is SIGKILLed mid-run while clients keep working through the others; afterwards every image that
was reported pushed pulls back byte-identical.
"""

from __future__ import annotations

import base64
import os
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

import pgcluster
from conftest import require_tool
from e2e.ocihttp import Client, sha256
from imagebuilder import build_image
from lb import Nginx
from server import Server

ADMIN_KEY = "AKIAMULTINODETEST000"
ADMIN_SECRET = "multinode-admin-secret-0123456789"


@pytest.fixture
def cluster(tmp_path: Path, s3_server):
    """Three nodes (one worker each) on one PostgreSQL database and one bucket, plus nginx."""
    pg = pgcluster.shared_cluster()
    database = pg.url(pg.database_for(tmp_path / "shared"))
    bucket = s3_server.create_bucket(f"multinode-{os.urandom(4).hex()}")
    shared_env = {
        **s3_server.env,
        "CARGOBAY_DATABASE": database,
        "CARGOBAY_STORAGE": s3_server.storage_url(bucket, "registry"),
        "CARGOBAY_AUTO_UPGRADE": "true",
        # Every node must open the same sealed secrets and accept the same admin key.
        "CARGOBAY_SECRET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "CARGOBAY_ADMIN_ACCESS_KEY_ID": ADMIN_KEY,
        "CARGOBAY_ADMIN_SECRET_ACCESS_KEY": ADMIN_SECRET,
    }
    nodes = []
    for i in range(3):
        node = Server(tmp_path / f"node{i}", workers=1, env=dict(shared_env))
        node.backend_env = {}  # the shared backends above, not per-node test databases
        nodes.append(node.start())
    balancer = Nginx(tmp_path / "nginx", [n.port for n in nodes]).start()
    yield nodes, balancer
    balancer.stop()
    for node in nodes:
        node.stop()
    pg.drop_database(pg.database_for(tmp_path / "shared"))


def admin_session() -> requests.Session:
    session = requests.Session()
    session.auth = (ADMIN_KEY, ADMIN_SECRET)
    return session


def skopeo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([require_tool("skopeo"), *args], capture_output=True, text=True)


def push(layout: Path, host: str, ref: str) -> bool:
    result = skopeo(
        "copy",
        "--dest-creds",
        f"{ADMIN_KEY}:{ADMIN_SECRET}",
        "--dest-tls-verify=false",
        f"oci:{layout}:latest",
        f"docker://{host}/{ref}",
    )
    return result.returncode == 0


def pull_and_compare(image, host: str, ref: str, target: Path) -> None:
    result = skopeo(
        "copy",
        "--src-creds",
        f"{ADMIN_KEY}:{ADMIN_SECRET}",
        "--src-tls-verify=false",
        f"docker://{host}/{ref}",
        f"oci:{target}:latest",
    )
    assert result.returncode == 0, result.stderr
    blobs = target / "blobs" / "sha256"
    for digest, data in image.blobs.items():
        assert (blobs / digest.split(":")[1]).read_bytes() == data
    assert (blobs / image.manifest_digest.split(":")[1]).read_bytes() == image.manifest


def test_three_nodes_behind_nginx(cluster, tmp_path: Path) -> None:
    nodes, balancer = cluster
    images = [
        build_image(tmp_path / f"img{i}", [300_000 + i, 7 * 1024 * 1024 + i]) for i in range(9)
    ]

    # 1. Concurrent pushes through the load balancer; every request may land on another node.
    with ThreadPoolExecutor(6) as pool:
        results = list(
            pool.map(
                lambda i: push(images[i].layout, balancer.host, f"scale/app{i % 3}:v{i}"), range(6)
            )
        )
    assert all(results), "a push through the load balancer failed"

    # 2. Read-after-write on every node: a tag moved through one node is seen by the others.
    clients = [Client(node, admin_session()) for node in nodes]
    for i in range(6):
        for client in clients:
            got = client.get(f"/v2/scale/app{i % 3}/manifests/v{i}")
            assert got.status_code == 200 and got.content == images[i].manifest
    moved = clients[0].put_manifest("scale/app0", "moving", images[0].manifest, None)
    assert moved.status_code == 201
    for step, client in enumerate(clients * 2):
        image = images[step % 2 * 3]  # alternate between images 0 and 3 (both in scale/app0)
        writer = clients[(step + 1) % 3]
        assert writer.put_manifest("scale/app0", "moving", image.manifest, None).status_code == 201
        assert client.get("/v2/scale/app0/manifests/moving").content == image.manifest

    # 3. A chunked upload whose PATCHes are forced onto different nodes completes correctly.
    data = os.urandom(6 * 1024 * 1024 + 123)
    location = clients[0].start_upload("scale/chunked")
    offset = 0
    for n, piece in enumerate((1024 * 1024, 5 * 1024 * 1024, 123)):
        chunk = data[offset : offset + piece]
        response = clients[(n + 1) % 3].patch(
            location,
            data=chunk,
            headers={
                "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                "Content-Type": "application/octet-stream",
            },
        )
        assert response.status_code == 202, response.text
        location = response.headers["Location"]
        offset += len(chunk)
    done = clients[2].put(location, params={"digest": sha256(data)})
    assert done.status_code == 201, done.text
    for client in clients:
        response = client.get(f"/v2/scale/chunked/blobs/{sha256(data)}")
        assert response.status_code == 200 and response.content == data

    # 4. SIGKILL a node mid-run; clients keep working through the others (retrying a push
    #    whose request was in flight on the dead node, as CI jobs do).
    reported: dict[str, int] = {f"scale/app{i % 3}:v{i}": i for i in range(6)}
    lock = threading.Lock()

    def push_with_retry(i: int) -> None:
        ref = f"scale/late{i % 2}:v{i}"
        for _attempt in range(4):
            if push(images[i].layout, balancer.host, ref):
                with lock:
                    reported[ref] = i
                return

    threads = [threading.Thread(target=push_with_retry, args=(i,)) for i in range(6, 9)]
    for thread in threads:
        thread.start()
    nodes[1].kill()
    for thread in threads:
        thread.join()
    assert len(reported) == 9, "clients could not push through the surviving nodes"

    # Every image reported pushed pulls back byte-identical through the balancer.
    for n, (ref, i) in enumerate(sorted(reported.items())):
        pull_and_compare(images[i], balancer.host, ref, tmp_path / f"back{n}")

    # The survivors answer health checks; nginx routes around the dead node.
    for node in (nodes[0], nodes[2]):
        assert requests.get(f"{node.url}/readyz", timeout=5).status_code == 200
