"""ECR lifecycle policies against a real server, through boto3 (every response checked against
the botocore model by `ecrhelp.client`) and the AWS CLI: put/get/delete, previews (with the
`lifecycle_policy_preview_complete` waiter and pagination), invalid policies, and the periodic
job expiring exactly what the preview listed.

Images are pushed with skopeo (one real image) and PutImage (variants of its manifest over the
same blobs); push times are set in the server's metadata database."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ParamValidationError
from sqlalchemy import select

from cargobay.config import Settings
from cargobay.metadata import schema
from cargobay.metadata.db import Database
from e2e.ecrhelp import (
    ACCOUNT,
    OCI_MANIFEST,
    aws,
    check_shape,
    cli_error,
    client,
    push,
    raises,
    signed_post,
    skopeo,
    unique,
)
from imagebuilder import Image, build_image, build_index, sha256
from server import Server

DAY = 86400.0
PREFIX = (
    "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: "
    "'Lifecycle policy validation failure: "
)


def rule(priority: int, tag_status: str, count_type: str, count: int, **selection) -> dict:
    sel = {"tagStatus": tag_status, "countType": count_type, "countNumber": count, **selection}
    if count_type.startswith("since"):
        sel["countUnit"] = "days"
    return {
        "rulePriority": priority,
        "description": f"rule {priority}",
        "selection": sel,
        "action": {"type": "expire"},
    }


def policy_text(*rules: dict) -> str:
    return json.dumps({"rules": list(rules)})


# The policy the preview and job tests apply, and the images they apply it to.
POLICY = policy_text(
    rule(1, "tagged", "imageCountMoreThan", 2, tagPatternList=["release-*"]),
    rule(2, "untagged", "sinceImagePushed", 10),
    rule(3, "any", "imageCountMoreThan", 4),
)
# label: (days since push, tags)
IMAGES = {
    "rel1": (30, ["release-1"]),
    "rel2": (25, ["release-2", "stable"]),
    "rel3": (20, ["release-3"]),
    "u1": (40, []),
    "u2": (15, []),
    "u3": (2, []),
    "dev1": (35, ["dev-1"]),
    "dev2": (12, ["dev-2"]),
    "dev3": (3, ["dev-3"]),
}
# Worked by hand. Rule 1 (release-*, keep 2) sees rel3, rel2 | rel1: expires rel1. Rule 2
# (untagged, > 10 days) expires u1 and u2. Rule 3 (any, keep 4) counts all ten images newest
# first: base(1d), u3, dev3, dev2 | u2, rel3, rel2, rel1, dev1, u1; of those past the count,
# the release and untagged images matched rules 1 and 2, so it expires dev1 alone.
EXPECTED = {"rel1": 1, "u1": 2, "u2": 2, "dev1": 3}
SURVIVORS = {"base", "rel2", "rel3", "u3", "dev2", "dev3"}


@pytest.fixture(scope="module")
def ecr(registry):
    return client(registry)


@pytest.fixture(scope="module")
def base_image(tmp_path_factory) -> Image:
    return build_image(tmp_path_factory.mktemp("lifecycle-image") / "img", [1500])


def _db_url(server: Server) -> str:
    return server.database_url or Settings(data_dir=server.data_dir).database_url


def _with_db(server: Server, work):
    async def run():
        db = Database(_db_url(server))
        try:
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(run())


def set_pushed_at(server: Server, name: str, times: dict[str, float]) -> None:
    """Back-date pushes: {digest: epoch seconds} in repository `name`."""
    r, m = schema.repositories, schema.manifests

    async def work(db: Database) -> None:
        async with db.write() as conn:
            repo_id = (await conn.execute(select(r.c.id).where(r.c.name == name))).scalar_one()
            for digest, when in times.items():
                await conn.execute(
                    m.update()
                    .where(m.c.repository_id == repo_id, m.c.digest == digest)
                    .values(pushed_at=when)
                )

    _with_db(server, work)


def lifecycle_events(server: Server, name: str) -> list[tuple[str, list[str], int, str]]:
    e = schema.lifecycle_events

    async def work(db: Database):
        async with db.read() as conn:
            rows = await conn.execute(
                select(e.c.image_digest, e.c.image_tags, e.c.rule_priority, e.c.action)
                .where(e.c.repository_name == name, e.c.registry_id == ACCOUNT)
                .order_by(e.c.id)
            )
            return [(r[0], json.loads(r[1] or "[]"), r[2], r[3]) for r in rows]

    return _with_db(server, work)


def seed(server: Server, ecr, image: Image, name: str) -> dict[str, str]:
    """Push `base` with skopeo, then every IMAGES variant with PutImage; back-date them all.
    Returns {label: digest}."""
    push(server, image, f"{name}:base")
    base = json.loads(image.manifest)
    digests = {"base": image.manifest_digest}
    now = time.time()
    times = {image.manifest_digest: now - 1 * DAY}
    for label, (days, tags) in IMAGES.items():
        manifest = json.dumps({**base, "annotations": {"org.example.label": label}})
        digest = sha256(manifest.encode())
        if not tags:
            ecr.put_image(
                repositoryName=name,
                imageManifest=manifest,
                imageDigest=digest,
                imageManifestMediaType=OCI_MANIFEST,
            )
        for tag in tags:
            ecr.put_image(
                repositoryName=name,
                imageManifest=manifest,
                imageTag=tag,
                imageManifestMediaType=OCI_MANIFEST,
            )
        digests[label] = digest
        times[digest] = now - days * DAY
    set_pushed_at(server, name, times)
    return digests


def preview_results(ecr, name: str, **kwargs) -> list[dict]:
    pages = ecr.get_paginator("get_lifecycle_policy_preview").paginate(
        repositoryName=name, **kwargs
    )
    return [result for page in pages for result in page["previewResults"]]


def wait_for_preview(ecr, name: str) -> None:
    ecr.get_waiter("lifecycle_policy_preview_complete").wait(
        repositoryName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )


# -- put / get / delete ---------------------------------------------------------------------------


def test_put_get_delete_lifecycle_policy(ecr) -> None:
    name = unique("lifecycle/crud")
    ecr.create_repository(repositoryName=name)
    with raises("LifecyclePolicyNotFoundException") as info:
        ecr.get_lifecycle_policy(repositoryName=name)
    assert name in info.value.response["Error"]["Message"]
    with raises("LifecyclePolicyNotFoundException"):
        ecr.delete_lifecycle_policy(repositoryName=name)

    out = ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=POLICY)
    assert ecr.raw.bodies["PutLifecyclePolicy"] == {
        "registryId": ACCOUNT,
        "repositoryName": name,
        "lifecyclePolicyText": POLICY,
    }
    assert out["lifecyclePolicyText"] == POLICY
    got = ecr.get_lifecycle_policy(repositoryName=name)
    assert got["lifecyclePolicyText"] == POLICY
    assert got["repositoryName"] == name and got["registryId"] == ACCOUNT

    # Replacing keeps the new text verbatim.
    other = policy_text(rule(1, "untagged", "sinceImagePushed", 30))
    ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=other)
    assert ecr.get_lifecycle_policy(repositoryName=name)["lifecyclePolicyText"] == other

    gone = ecr.delete_lifecycle_policy(repositoryName=name)
    assert gone["lifecyclePolicyText"] == other and gone["repositoryName"] == name
    with raises("LifecyclePolicyNotFoundException"):
        ecr.get_lifecycle_policy(repositoryName=name)
    with raises("LifecyclePolicyNotFoundException"):
        ecr.delete_lifecycle_policy(repositoryName=name)


def test_lifecycle_policy_unknown_repository(ecr) -> None:
    missing = unique("lifecycle/nothing")
    with raises("RepositoryNotFoundException"):
        ecr.put_lifecycle_policy(repositoryName=missing, lifecyclePolicyText=POLICY)
    with raises("RepositoryNotFoundException"):
        ecr.get_lifecycle_policy(repositoryName=missing)
    with raises("RepositoryNotFoundException"):
        ecr.start_lifecycle_policy_preview(repositoryName=missing)
    with raises("RepositoryNotFoundException"):
        ecr.get_lifecycle_policy_preview(repositoryName=missing)


INVALID = [
    ("{not json" + " " * 100, "Could not map policyString into LifecyclePolicy."),
    (json.dumps({"rulez": [], "padding": "x" * 100}), 'missing required properties (["rules"])'),
    (
        policy_text(rule(1, "untagged", "imageCountMoreThan", 0)),
        "numeric instance is lower than the required minimum (minimum: 1, found: 0)",
    ),
    (
        policy_text(rule(1, "tagged", "imageCountMoreThan", 1)),
        "tagPrefixList or tagPatternList is required when tagStatus is 'tagged'",
    ),
    (
        policy_text(rule(1, "untagged", "imageCountMoreThan", 1, countUnit="days")),
        "countUnit is not allowed when countType is 'imageCountMoreThan'",
    ),
    (
        policy_text(rule(1, "tagged", "imageCountMoreThan", 1, tagPatternList=["a*b*c*d*e*f"])),
        "has more than 4 wildcards",
    ),
    (
        policy_text(
            rule(1, "any", "imageCountMoreThan", 5), rule(2, "untagged", "sinceImagePushed", 3)
        ),
        "must have the highest rulePriority",
    ),
    (
        policy_text(
            rule(1, "untagged", "imageCountMoreThan", 5), rule(2, "untagged", "sinceImagePushed", 3)
        ),
        "only one rule may select untagged images",
    ),
    (
        policy_text(
            rule(1, "untagged", "imageCountMoreThan", 5), rule(1, "any", "sinceImagePushed", 3)
        ),
        "rulePriority 1 is used by more than one rule",
    ),
    (
        policy_text({**rule(1, "untagged", "imageCountMoreThan", 5), "extra": 1}),
        'properties which are not allowed by the schema: (["extra"])',
    ),
    (
        policy_text(rule(1, "SOME", "imageCountMoreThan", 5)),
        "instance value (SOME) not found in enum",
    ),
]


@pytest.mark.parametrize(("text", "reason"), INVALID)
def test_invalid_policy_is_refused_with_the_reason(ecr, text: str, reason: str) -> None:
    name = unique("lifecycle/invalid")
    ecr.create_repository(repositoryName=name)
    with raises("InvalidParameterException") as info:
        ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=text)
    message = info.value.response["Error"]["Message"]
    assert message.startswith(PREFIX) and reason in message, message
    # A preview of an invalid text is refused the same way, and nothing was stored.
    with raises("InvalidParameterException") as info:
        ecr.start_lifecycle_policy_preview(repositoryName=name, lifecyclePolicyText=text)
    assert reason in info.value.response["Error"]["Message"]
    with raises("LifecyclePolicyNotFoundException"):
        ecr.get_lifecycle_policy(repositoryName=name)


def test_policy_text_length_is_checked_by_the_server(registry, ecr) -> None:
    name = unique("lifecycle/short")
    ecr.create_repository(repositoryName=name)
    short = json.dumps({"rules": []})
    # boto3 refuses it before sending; the server refuses it too.
    with pytest.raises(ParamValidationError):
        ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=short)
    response = signed_post(
        registry, "PutLifecyclePolicy", {"repositoryName": name, "lifecyclePolicyText": short}
    )
    assert response.status_code == 400
    body = response.json()
    assert body["__type"] == "InvalidParameterException"
    assert "Member must have length greater than or equal to 100" in body["message"]
    response = signed_post(registry, "PutLifecyclePolicy", {"repositoryName": name})
    assert response.json()["__type"] == "InvalidParameterException"


# -- previews -------------------------------------------------------------------------------------


def test_preview_errors(ecr) -> None:
    name = unique("lifecycle/preview-errors")
    ecr.create_repository(repositoryName=name)
    with raises("LifecyclePolicyPreviewNotFoundException"):
        ecr.get_lifecycle_policy_preview(repositoryName=name)
    # No text and no saved policy.
    with raises("LifecyclePolicyNotFoundException"):
        ecr.start_lifecycle_policy_preview(repositoryName=name)
    # An empty repository previews to nothing.
    out = ecr.start_lifecycle_policy_preview(repositoryName=name, lifecyclePolicyText=POLICY)
    assert out["lifecyclePolicyText"] == POLICY
    assert out["status"] in ("IN_PROGRESS", "COMPLETE")
    wait_for_preview(ecr, name)
    got = ecr.get_lifecycle_policy_preview(repositoryName=name)
    assert got["status"] == "COMPLETE" and got["previewResults"] == []
    assert got["summary"] == {"expiringImageTotalCount": 0}
    with raises("InvalidParameterException"):
        ecr.get_lifecycle_policy_preview(repositoryName=name, filter={"tagStatus": "SOME"})
    with raises("InvalidParameterException"):
        ecr.get_lifecycle_policy_preview(repositoryName=name, nextToken="bm90IGEgdG9rZW4=")


def test_preview_lists_what_the_policy_would_expire(registry, ecr, base_image) -> None:
    name = unique("lifecycle/preview")
    digests = seed(registry, ecr, base_image, name)
    by_digest = {digest: label for label, digest in digests.items()}

    # A preview of an unsaved policy text.
    ecr.start_lifecycle_policy_preview(repositoryName=name, lifecyclePolicyText=POLICY)
    wait_for_preview(ecr, name)
    got = ecr.get_lifecycle_policy_preview(repositoryName=name)
    assert got["status"] == "COMPLETE"
    assert got["lifecyclePolicyText"] == POLICY
    assert got["summary"] == {"expiringImageTotalCount": len(EXPECTED)}
    results = got["previewResults"]
    assert {by_digest[r["imageDigest"]]: r["appliedRulePriority"] for r in results} == EXPECTED
    for result in results:
        label = by_digest[result["imageDigest"]]
        assert result["action"] == {"type": "EXPIRE"}
        assert result.get("imageTags", []) == sorted(IMAGES[label][1])
        pushed = result["imagePushedAt"].timestamp()
        assert abs(pushed - (time.time() - IMAGES[label][0] * DAY)) < 3600
    # Oldest push first.
    assert [by_digest[r["imageDigest"]] for r in results] == ["u1", "dev1", "rel1", "u2"]
    # Nothing was deleted by a preview.
    listed = ecr.list_images(repositoryName=name)["imageIds"]
    assert {i["imageDigest"] for i in listed} == set(digests.values())

    # Pages of two, through boto3's paginator.
    paged = preview_results(ecr, name, PaginationConfig={"PageSize": 2})
    assert paged == results
    first = ecr.get_lifecycle_policy_preview(repositoryName=name, maxResults=3)
    assert len(first["previewResults"]) == 3 and "nextToken" in first
    rest = ecr.get_lifecycle_policy_preview(
        repositoryName=name, maxResults=3, nextToken=first["nextToken"]
    )
    assert len(rest["previewResults"]) == 1 and "nextToken" not in rest
    # Filters.
    untagged = ecr.get_lifecycle_policy_preview(
        repositoryName=name, filter={"tagStatus": "UNTAGGED"}
    )["previewResults"]
    assert {by_digest[r["imageDigest"]] for r in untagged} == {"u1", "u2"}
    tagged = ecr.get_lifecycle_policy_preview(repositoryName=name, filter={"tagStatus": "TAGGED"})
    assert {by_digest[r["imageDigest"]] for r in tagged["previewResults"]} == {"rel1", "dev1"}
    assert tagged["summary"] == {"expiringImageTotalCount": 4}
    chosen = ecr.get_lifecycle_policy_preview(
        repositoryName=name,
        imageIds=[{"imageTag": "dev-1"}, {"imageDigest": digests["u2"]}, {"imageTag": "dev-2"}],
    )["previewResults"]
    assert {by_digest[r["imageDigest"]] for r in chosen} == {"dev1", "u2"}

    # With no text, the saved policy is previewed.
    saved = policy_text(rule(1, "tagged", "sinceImagePushed", 22, tagPrefixList=["release"]))
    ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=saved)
    out = ecr.start_lifecycle_policy_preview(repositoryName=name)
    assert out["lifecyclePolicyText"] == saved
    wait_for_preview(ecr, name)
    got = ecr.get_lifecycle_policy_preview(repositoryName=name)
    assert got["lifecyclePolicyText"] == saved
    assert {by_digest[r["imageDigest"]] for r in got["previewResults"]} == {"rel1", "rel2"}
    ecr.delete_lifecycle_policy(repositoryName=name)


def test_preview_skips_the_images_of_a_multi_arch_index(registry, ecr, tmp_path: Path) -> None:
    """Platform images an index lists belong to the index: an untagged rule neither counts nor
    expires them (deleting them would break the index)."""
    name = unique("lifecycle/index")
    index = build_index(tmp_path / "multi", ["amd64", "arm64"], [1024])
    skopeo(
        "copy",
        "--all",
        "--dest-creds",
        registry.creds_arg,
        "--dest-tls-verify=false",
        f"oci:{index.layout}:latest",
        f"docker://{registry.host}/{name}:multi",
    )
    children = [image.manifest_digest for image in index.images.values()]
    listed = {
        i["imageDigest"]
        for i in ecr.list_images(repositoryName=name, filter={"tagStatus": "UNTAGGED"})["imageIds"]
    }
    assert listed == set(children)
    set_pushed_at(registry, name, {d: time.time() - 100 * DAY for d in [*children, index.digest]})
    text = policy_text(rule(1, "untagged", "sinceImagePushed", 1))
    ecr.start_lifecycle_policy_preview(repositoryName=name, lifecyclePolicyText=text)
    wait_for_preview(ecr, name)
    assert ecr.get_lifecycle_policy_preview(repositoryName=name)["previewResults"] == []


# -- the AWS CLI ----------------------------------------------------------------------------------


def test_lifecycle_with_the_aws_cli(registry, ecr, base_image, tmp_path: Path) -> None:
    name = unique("lifecycle/cli")
    digests = seed(registry, ecr, base_image, name)
    by_digest = {digest: label for label, digest in digests.items()}
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(POLICY)

    put = aws(
        registry,
        "ecr",
        "put-lifecycle-policy",
        "--repository-name",
        name,
        "--lifecycle-policy-text",
        f"file://{policy_file}",
    )
    check_shape("PutLifecyclePolicy", put.json, cli=True)
    assert put.json["lifecyclePolicyText"] == POLICY
    got = aws(registry, "ecr", "get-lifecycle-policy", "--repository-name", name)
    check_shape("GetLifecyclePolicy", got.json, cli=True)
    assert got.json["lifecyclePolicyText"] == POLICY

    started = aws(registry, "ecr", "start-lifecycle-policy-preview", "--repository-name", name)
    check_shape("StartLifecyclePolicyPreview", started.json, cli=True)
    aws(
        registry,
        "ecr",
        "wait",
        "lifecycle-policy-preview-complete",
        "--repository-name",
        name,
        output_json=False,
    )
    # The CLI follows nextToken itself: pages of one still give every result.
    preview = aws(
        registry,
        "ecr",
        "get-lifecycle-policy-preview",
        "--repository-name",
        name,
        "--page-size",
        "1",
    )
    check_shape("GetLifecyclePolicyPreview", preview.json, cli=True)
    assert preview.json["status"] == "COMPLETE"
    assert {
        by_digest[r["imageDigest"]]: r["appliedRulePriority"]
        for r in preview.json["previewResults"]
    } == EXPECTED

    bad = tmp_path / "bad.json"
    bad.write_text(policy_text(rule(1, "tagged", "sinceImagePushed", 3)))
    proc = aws(
        registry,
        "ecr",
        "put-lifecycle-policy",
        "--repository-name",
        name,
        "--lifecycle-policy-text",
        f"file://{bad}",
        check=False,
    )
    assert cli_error(proc) == "InvalidParameterException"
    assert "tagPrefixList or tagPatternList is required" in proc.stderr

    deleted = aws(registry, "ecr", "delete-lifecycle-policy", "--repository-name", name)
    check_shape("DeleteLifecyclePolicy", deleted.json, cli=True)
    assert deleted.json["lifecyclePolicyText"] == POLICY
    proc = aws(registry, "ecr", "get-lifecycle-policy", "--repository-name", name, check=False)
    assert cli_error(proc) == "LifecyclePolicyNotFoundException"


# -- the job --------------------------------------------------------------------------------------


@pytest.fixture
def fast_lifecycle(tmp_path: Path) -> Iterator[Server]:
    """A registry of this test's own whose lifecycle job runs every second."""
    server = Server(
        tmp_path / "data",
        env={"CARGOBAY_LIFECYCLE_INTERVAL_SECONDS": "1", "CARGOBAY_JOBS_TICK_SECONDS": "1"},
    ).start()
    yield server
    server.discard()


def test_job_expires_exactly_what_the_preview_listed(fast_lifecycle, base_image) -> None:
    server = fast_lifecycle
    ecr = client(server)
    name = unique("lifecycle/job")
    bystander = unique("lifecycle/no-policy")
    digests = seed(server, ecr, base_image, name)
    by_digest = {digest: label for label, digest in digests.items()}
    # A repository without a policy keeps everything.
    other = seed(server, ecr, base_image, bystander)

    ecr.start_lifecycle_policy_preview(repositoryName=name, lifecyclePolicyText=POLICY)
    wait_for_preview(ecr, name)
    previewed = {r["imageDigest"]: r["appliedRulePriority"] for r in preview_results(ecr, name)}
    assert {by_digest[d]: p for d, p in previewed.items()} == EXPECTED

    put_at = time.time()
    ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=POLICY)
    deadline = time.monotonic() + 120
    while True:
        got = ecr.get_lifecycle_policy(repositoryName=name)
        evaluated = got.get("lastEvaluatedAt")
        if evaluated is not None and evaluated.timestamp() > put_at:
            break
        assert time.monotonic() < deadline, "the lifecycle job never evaluated the policy"
        time.sleep(0.5)
    check_shape("GetLifecyclePolicy", ecr.raw.bodies["GetLifecyclePolicy"])

    remaining = {i["imageDigest"] for i in ecr.list_images(repositoryName=name)["imageIds"]}
    assert remaining == set(digests.values()) - set(previewed)
    assert {by_digest[d] for d in remaining} == SURVIVORS
    # The survivors keep their tags.
    tags = {
        t["imageTag"]
        for t in ecr.list_images(repositoryName=name, filter={"tagStatus": "TAGGED"})["imageIds"]
    }
    assert tags == {"base", "release-2", "stable", "release-3", "dev-2", "dev-3"}
    # Every expiry is recorded once, with its rule and the tags the image had.
    events = lifecycle_events(server, name)
    assert sorted((d, p) for d, _, p, _ in events) == sorted(previewed.items())
    for digest, image_tags, _, action in events:
        assert action == "EXPIRE"
        assert image_tags == sorted(IMAGES[by_digest[digest]][1])
    untouched = {i["imageDigest"] for i in ecr.list_images(repositoryName=bystander)["imageIds"]}
    assert untouched == set(other.values())

    # Later runs find nothing more to expire (the survivors are what the policy keeps).
    ecr.start_lifecycle_policy_preview(repositoryName=name)
    wait_for_preview(ecr, name)
    assert preview_results(ecr, name) == []
    # DeleteLifecyclePolicy returns when it was last evaluated; the job then leaves it alone.
    deleted = ecr.delete_lifecycle_policy(repositoryName=name)
    assert deleted["lastEvaluatedAt"].timestamp() > put_at
