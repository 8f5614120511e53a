"""The servers `benchmarks.ecr_api` measures: moto's beside cargobay, a repository seeded with
the benchmark's image on either, and the server's CPU per request over a run."""

from __future__ import annotations

import http.client
import json
import os
import sys
from typing import Any

import boto3

from benchmarks import client as cl
from benchmarks.ecr_writes import REGION
from benchmarks.registries import Cargobay, Registry, process_tree

REPO = "bench/api"


class Moto(Registry):
    """moto's server (ECR and every other service it emulates), one process."""

    name = "moto"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]

    def _v2_status(self) -> int:  # moto has no /v2/; its dashboard answers
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/moto-api/")
            response = conn.getresponse()
            response.read()
            return 200 if response.status < 500 else response.status
        finally:
            conn.close()


def ecr_client(url: str, creds: tuple[str, str]) -> Any:
    return boto3.client(
        "ecr",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=creds[0],
        aws_secret_access_key=creds[1],
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its descendants (live ones)."""
    ticks = 0
    for each in process_tree(pid):
        try:
            with open(f"/proc/{each}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def seed(
    registry: Registry,
    creds: tuple[str, str],
    repo: str = REPO,
    image: cl.SmallImage | None = None,
) -> tuple[str, str, str, cl.SmallImage]:
    """A repository with one tagged image (`image`, or a new one); its (tag, manifest digest,
    layer digest, image)."""
    image = image or cl.small_image(4096, "bench-api")
    ecr = ecr_client(registry.url, creds)
    if isinstance(registry, Cargobay):
        c = cl.Client(registry)
        c.put_blob(repo, image.config)
        for layer in image.layers:
            c.put_blob(repo, layer)
        c.put_manifest(repo, "v1", image.manifest)
    else:
        ecr.create_repository(repositoryName=repo)
        ecr.put_image(repositoryName=repo, imageManifest=image.manifest.decode(), imageTag="v1")
    found = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])
    digest = found["images"][0]["imageId"]["imageDigest"]
    layer = json.loads(found["images"][0]["imageManifest"])["layers"][0]["digest"]
    return "v1", digest, layer, image


def timed(registry: Registry, run: Any) -> dict[str, Any]:
    """`run()`'s figures plus the server's CPU microseconds per request over it."""
    before = cpu_seconds(registry.pid)
    figures = dict(run())
    figures["cpu_us"] = (cpu_seconds(registry.pid) - before) * 1e6 / max(figures["requests"], 1)
    return figures
