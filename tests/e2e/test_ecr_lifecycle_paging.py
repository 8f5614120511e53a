"""A lifecycle preview larger than a page, against a real server: GetLifecyclePolicyPreview
pages of maxResults (100) with nextToken, each with the whole summary, oldest push first, no
image twice; boto3's paginator reads the same; the periodic job then expires exactly those."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.ecrhelp import OCI_MANIFEST, check_shape, client, push, unique
from e2e.test_ecr_lifecycle import (
    DAY,
    policy_text,
    preview_results,
    rule,
    set_pushed_at,
    wait_for_preview,
)
from imagebuilder import Image, build_image, sha256
from server import Server

OLD, YOUNG = 205, 15  # untagged images pushed 11+ days ago, and a few days ago
POLICY = policy_text(
    rule(1, "tagged", "imageCountMoreThan", 5, tagPrefixList=["keep"]),
    rule(2, "untagged", "sinceImagePushed", 10),
)


@pytest.fixture
def fast_lifecycle(tmp_path: Path) -> Iterator[Server]:
    server = Server(
        tmp_path / "data",
        env={"CARGOBAY_LIFECYCLE_INTERVAL_SECONDS": "1", "CARGOBAY_JOBS_TICK_SECONDS": "1"},
    ).start()
    yield server
    server.discard()


@pytest.fixture
def base_image(tmp_path: Path) -> Image:
    return build_image(tmp_path / "img", [700])


def test_preview_pages_equal_what_the_job_expires(fast_lifecycle, base_image) -> None:
    server = fast_lifecycle
    ecr = client(server)
    name = unique("lifecycle/paging")
    push(server, base_image, f"{name}:keep-base")
    base = json.loads(base_image.manifest)
    now = time.time()
    times: dict[str, float] = {base_image.manifest_digest: now - 30 * DAY}
    for i in range(OLD + YOUNG):
        manifest = json.dumps({**base, "annotations": {"n": str(i)}})
        digest = sha256(manifest.encode())
        ecr.put_image(
            repositoryName=name,
            imageManifest=manifest,
            imageDigest=digest,
            imageManifestMediaType=OCI_MANIFEST,
        )
        # The old ones a second apart, in a shuffled order, so the sort is the server's.
        times[digest] = now - (11 * DAY + (i * 7919) % OLD) if i < OLD else now - DAY
    set_pushed_at(server, name, times)
    old = {d for d, when in times.items() if now - when > 10 * DAY} - {base_image.manifest_digest}
    assert len(old) == OLD

    ecr.start_lifecycle_policy_preview(repositoryName=name, lifecyclePolicyText=POLICY)
    wait_for_preview(ecr, name)
    pages, token = [], None
    while True:
        kwargs = {"nextToken": token} if token else {}
        page = ecr.get_lifecycle_policy_preview(repositoryName=name, maxResults=100, **kwargs)
        check_shape("GetLifecyclePolicyPreview", ecr.raw.bodies["GetLifecyclePolicyPreview"])
        assert page["summary"] == {"expiringImageTotalCount": OLD}
        pages.append(page["previewResults"])
        token = page.get("nextToken")
        if token is None:
            break
    assert [len(p) for p in pages] == [100, 100, 5]
    listed = [r for p in pages for r in p]
    digests = [r["imageDigest"] for r in listed]
    assert set(digests) == old and len(digests) == OLD
    pushed = [r["imagePushedAt"].timestamp() for r in listed]
    assert pushed == sorted(pushed)  # oldest first, across the pages
    assert all(r["appliedRulePriority"] == 2 and "imageTags" not in r for r in listed)
    assert preview_results(ecr, name, PaginationConfig={"PageSize": 40}) == listed

    put_at = time.time()
    ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=POLICY)
    deadline = time.monotonic() + 180
    while True:
        evaluated = ecr.get_lifecycle_policy(repositoryName=name).get("lastEvaluatedAt")
        if evaluated is not None and evaluated.timestamp() > put_at:
            break
        assert time.monotonic() < deadline, "the lifecycle job never evaluated the policy"
        time.sleep(0.5)
    remaining = set()
    for page in ecr.get_paginator("list_images").paginate(repositoryName=name):
        remaining |= {i["imageDigest"] for i in page["imageIds"]}
    assert remaining == set(times) - old
