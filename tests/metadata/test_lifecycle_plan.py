"""`LifecycleService.plan`, which reads each rule's candidates by index, decides exactly what
`evaluate` (ECR's rules over every image, the reference) decides, on random repositories and
random policies: tags, untagged images, archived and restored images, index children, pulls."""

from __future__ import annotations

import json
import random
from types import SimpleNamespace

import pytest
from sqlalchemy import update

from cargobay.lifecycle.evaluate import evaluate
from cargobay.lifecycle.policy import DAY, LifecyclePolicyError, parse_policy
from cargobay.lifecycle.service import LifecycleService
from cargobay.metadata import schema
from cargobay.metadata.records import archives, tags
from cargobay.registry.images import ImageService
from metadata.helpers import new_manifest, new_repo

pytestmark = pytest.mark.backend
NOW = 2_000_000_000.0
TAGS = ["release-1", "release-2", "rel-x", "dev-1", "dev-2", "prod", "Release-3", "v1.0"]
PREFIXES = [["release"], ["dev"], ["rel", "prod"], ["v1"]]
PATTERNS = [["release-*"], ["*-1"], ["dev*"], ["*e*", "*1*"], ["prod"]]


def _rule(rng: random.Random, priority: int, tag_status: str) -> dict:
    count_type = rng.choice(["imageCountMoreThan", "sinceImagePushed", "sinceImagePulled"])
    selection: dict = {
        "tagStatus": tag_status,
        "countType": count_type,
        "countNumber": rng.randint(1, 6)
        if count_type == "imageCountMoreThan"
        else rng.randint(1, 40),
    }
    if count_type != "imageCountMoreThan":
        selection["countUnit"] = "days"
    if tag_status == "tagged":
        if rng.random() < 0.5:
            selection["tagPrefixList"] = rng.choice(PREFIXES)
        else:
            selection["tagPatternList"] = rng.choice(PATTERNS)
    return {"rulePriority": priority, "selection": selection, "action": {"type": "expire"}}


def _policy(rng: random.Random):
    statuses = [rng.choice(["tagged", "tagged", "untagged"]) for _ in range(rng.randint(0, 3))]
    if rng.random() < 0.6:
        statuses.append("any")
    statuses = statuses or ["any"]
    priorities = sorted(rng.sample(range(1, 50), len(statuses)))
    rules = [_rule(rng, p, s) for p, s in zip(priorities, statuses, strict=True)]
    if rng.random() < 0.3:
        rules.append(
            {
                "rulePriority": 60,
                "selection": {
                    "tagStatus": "any",
                    "storageClass": "archive",
                    "countType": "sinceImageTransitioned",
                    "countUnit": "days",
                    "countNumber": 90,
                },
                "action": {"type": "expire"},
            }
        )
    try:
        return parse_policy(json.dumps({"rules": rules}))
    except LifecyclePolicyError:
        return None


def test_plan_decides_as_evaluate_does(store) -> None:
    rng = random.Random(19)

    async def scenario(db, registry_id) -> None:
        m = schema.manifests
        async with db.write() as conn:
            repo_id = await new_repo(conn, registry_id, "lifecycle/plan")
            digests = []
            for i in range(60):
                digest = await new_manifest(conn, repo_id, f"plan-{registry_id}-{i}")
                digests.append(digest)
                pulled = NOW - rng.randint(0, 60) * DAY if rng.random() < 0.4 else None
                # Some pushed in the same second: ties broken by digest, as ECR's sort.
                pushed = NOW - rng.randint(0, 30) * DAY - rng.choice([0, 0, 5])
                await conn.execute(
                    update(m)
                    .where(m.c.repository_id == repo_id, m.c.digest == digest)
                    .values(pushed_at=pushed, last_pulled_at=pulled)
                )
                for tag in rng.sample(TAGS, rng.choice([0, 0, 1, 1, 2])):
                    await tags.put(
                        conn, repo_id, f"{tag}-{i}" if rng.random() < 0.5 else tag, digest
                    )
                if rng.random() < 0.15:
                    await archives.archive(conn, repo_id, digest, NOW - rng.randint(50, 200) * DAY)
                    if rng.random() < 0.3:
                        await archives.activate(
                            conn, repo_id, digest, NOW - rng.randint(0, 20) * DAY
                        )
            # An index listing two of the images: they are neither counted nor expired.
            await new_manifest(conn, repo_id, f"index-{registry_id}", children=tuple(digests[:2]))
        images = ImageService(db)
        service = LifecycleService(db, None, images)  # type: ignore[arg-type]
        repo = SimpleNamespace(id=repo_id)
        everything = await images.describe(repo)  # type: ignore[arg-type]
        pool = [i for i in everything if i.digest not in digests[:2]]
        checked = decided = 0
        while checked < 40:
            policy = _policy(rng)
            if policy is None:
                continue
            checked += 1
            want = [(i.digest, r.priority) for i, r in evaluate(policy, pool, NOW)]
            got = [(i.digest, r.priority) for i, r in await service.plan(repo, policy, NOW)]  # type: ignore[arg-type]
            assert got == want, policy
            decided += len(want)
        assert decided > 40  # the policies did select images, of every rule kind

    store.run(scenario)
