"""Lifecycle rules of the archive storage class against a real server: the preview lists the
images a policy archives (TRANSITION) and expires, and the periodic job then does exactly that
(boto3 with every response checked against the model, and the aws CLI)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from cargobay.metadata import schema
from cargobay.metadata.db import Database
from e2e.ecrhelp import aws, check_shape, client, unique
from e2e.test_ecr_lifecycle import (
    DAY,
    _with_db,
    lifecycle_events,
    policy_text,
    preview_results,
    rule,
    seed,
    wait_for_preview,
)
from imagebuilder import Image, build_image
from server import Server

TO_ARCHIVE = {"type": "transition", "targetStorageClass": "archive"}
POLICY = policy_text(
    {**rule(1, "untagged", "sinceImagePushed", 10), "action": TO_ARCHIVE},
    {
        **rule(2, "any", "sinceImageTransitioned", 90),
        "selection": {
            "tagStatus": "any",
            "storageClass": "archive",
            "countType": "sinceImageTransitioned",
            "countUnit": "days",
            "countNumber": 90,
        },
    },
    {**rule(3, "tagged", "imageCountMoreThan", 1, tagPrefixList=["dev-"]), "action": TO_ARCHIVE},
)
# Worked by hand over test_ecr_lifecycle's IMAGES: rule 1 archives the untagged u1 (40 days)
# and u2 (15 days), not u3 (2 days); rule 3 keeps the newest dev image (dev3) and archives dev2
# and dev1; rule 2 expires rel1, archived 120 days ago, and keeps rel2, archived today.
EXPECTED = {
    "u1": (1, "TRANSITION", "STANDARD"),
    "u2": (1, "TRANSITION", "STANDARD"),
    "dev1": (3, "TRANSITION", "STANDARD"),
    "dev2": (3, "TRANSITION", "STANDARD"),
    "rel1": (2, "EXPIRE", "ARCHIVE"),
}


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
    return build_image(tmp_path / "img", [1500])


def set_archived_at(server: Server, name: str, digest: str, when: float) -> None:
    r, a = schema.repositories, schema.image_archives

    async def work(db: Database) -> None:
        async with db.write() as conn:
            repo_id = (await conn.execute(select(r.c.id).where(r.c.name == name))).scalar_one()
            await conn.execute(
                a.update()
                .where(a.c.repository_id == repo_id, a.c.digest == digest)
                .values(archived_at=when)
            )

    _with_db(server, work)


def test_archive_preview_equals_what_the_job_does(fast_lifecycle, base_image) -> None:
    server = fast_lifecycle
    ecr = client(server)
    name = unique("lifecycle/archive")
    digests = seed(server, ecr, base_image, name)
    label_of = {digest: label for label, digest in digests.items()}
    for label in ("rel1", "rel2"):
        ecr.update_image_storage_class(
            repositoryName=name,
            imageId={"imageDigest": digests[label]},
            targetStorageClass="ARCHIVE",
        )
    set_archived_at(server, name, digests["rel1"], time.time() - 120 * DAY)

    ecr.start_lifecycle_policy_preview(repositoryName=name, lifecyclePolicyText=POLICY)
    wait_for_preview(ecr, name)
    results = preview_results(ecr, name)
    check_shape("GetLifecyclePolicyPreview", ecr.raw.bodies["GetLifecyclePolicyPreview"])
    previewed = {
        label_of[r["imageDigest"]]: (
            r["appliedRulePriority"],
            r["action"]["type"],
            r["storageClass"],
        )
        for r in results
    }
    assert previewed == EXPECTED
    for r in results:
        if r["action"]["type"] == "TRANSITION":
            assert r["action"]["targetStorageClass"] == "ARCHIVE"
        else:
            assert "targetStorageClass" not in r["action"]
    summary = ecr.get_lifecycle_policy_preview(repositoryName=name)["summary"]
    assert summary == {
        "expiringImageTotalCount": 1,
        "transitioningImageTotalCounts": [{"targetStorageClass": "ARCHIVE", "imageTotalCount": 4}],
    }
    # The aws CLI shows the same preview.
    cli = aws(server, "ecr", "get-lifecycle-policy-preview", "--repository-name", name).json
    assert {r["imageDigest"] for r in cli["previewResults"]} == {r["imageDigest"] for r in results}

    put_at = time.time()
    ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=POLICY)
    deadline = time.monotonic() + 120
    while True:
        evaluated = ecr.get_lifecycle_policy(repositoryName=name).get("lastEvaluatedAt")
        if evaluated is not None and evaluated.timestamp() > put_at:
            break
        assert time.monotonic() < deadline, "the lifecycle job never evaluated the policy"
        time.sleep(0.5)

    # What the job did is what the preview said, image by image.
    events = lifecycle_events(server, name)
    assert {label_of[d]: (p, action) for d, _, p, action in events} == {
        label: (priority, action) for label, (priority, action, _) in EXPECTED.items()
    }
    pages = ecr.get_paginator("describe_images").paginate(
        repositoryName=name, filter={"imageStatus": "ANY"}
    )
    status = {
        label_of[d["imageDigest"]]: d["imageStatus"] for p in pages for d in p["imageDetails"]
    }
    archived = {"u1", "u2", "dev1", "dev2", "rel2"}
    assert "rel1" not in status  # expired
    assert {label for label, s in status.items() if s == "ARCHIVED"} == archived
    assert set(status) - archived == {"base", "rel2", "rel3", "u3", "dev3"} - archived
    # An image the job archived cannot be pulled.
    response = server.session().get(f"{server.url}/v2/{name}/manifests/dev-1")
    assert response.status_code == 404 and "archived" in response.json()["errors"][0]["message"]

    # The next preview finds nothing more to do.
    ecr.start_lifecycle_policy_preview(repositoryName=name)
    wait_for_preview(ecr, name)
    assert preview_results(ecr, name) == []
